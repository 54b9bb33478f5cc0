"""Swin Transformer (Liu et al. 2021): self-attention inside 7x7 windows that shift by half a
window every other block, patch merging between stages (a hierarchy like a conv net's), and a
learned relative position bias per head. torchvision's layout (v1)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, ModelConfig
from .layers import DropPath, Permute, attention, get_act, init_trunc_normal, linear_head, merge_heads
from .registry import register_model


@dataclass(frozen=True)
class SwinConfig(ModelConfig):
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (3, 6, 12, 24)
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    act: str = "gelu"
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.2


def relative_position_index(window: int) -> torch.Tensor:
    """For each pair of positions in a window, the row of the bias table of their offset: (window^4,)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # offsets >= 0
    return (rel[..., 0] * (2 * window - 1) + rel[..., 1]).flatten()


def shift_mask(
    pad_h: int, pad_w: int, window: int, shift: tuple[int, int], device: torch.device
) -> torch.Tensor:
    """-100 between positions that the cyclic shift brought together from different image regions:
    (windows, window^2, window^2)."""
    regions = torch.zeros(pad_h, pad_w, device=device)
    count = 0
    for h in ((0, -window), (-window, -shift[0]), (-shift[0], None)):
        for w in ((0, -window), (-window, -shift[1]), (-shift[1], None)):
            regions[h[0] : h[1], w[0] : w[1]] = count
            count += 1
    regions = (
        regions.view(pad_h // window, window, pad_w // window, window)
        .permute(0, 2, 1, 3)
        .reshape(-1, window**2)
    )
    diff = regions.unsqueeze(1) - regions.unsqueeze(2)
    return diff.masked_fill(diff != 0, -100.0)


class ShiftedWindowAttention(nn.Module):
    def __init__(
        self, dim: int, window: int, shift: int, num_heads: int, attn_drop: float, proj_drop: float
    ) -> None:
        super().__init__()
        self.window, self.shift, self.num_heads = window, shift, num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop, self.proj_drop = attn_drop, proj_drop
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        self.register_buffer("relative_position_index", relative_position_index(window))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.keep_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        ws = self.window
        x = F.pad(x, (0, 0, 0, (ws - W % ws) % ws, 0, (ws - H % ws) % ws))
        _, pad_h, pad_w, _ = x.shape
        shift = (0 if ws >= pad_h else self.shift, 0 if ws >= pad_w else self.shift)  # no shift in one window
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        n_windows = (pad_h // ws) * (pad_w // ws)
        x = (
            x.view(B, pad_h // ws, ws, pad_w // ws, ws, C)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(B * n_windows, ws * ws, C)
        )

        qkv = (
            self.qkv(x)
            .reshape(x.shape[0], ws * ws, 3, self.num_heads, C // self.num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        q, k, v = qkv.unbind(0)  # (B * windows, heads, ws^2, head_dim)
        bias = self.relative_position_bias_table[self.relative_position_index]
        bias = bias.view(ws * ws, ws * ws, -1).permute(2, 0, 1).unsqueeze(0)  # (1, heads, ws^2, ws^2)
        if any(shift):
            mask = shift_mask(pad_h, pad_w, ws, shift, x.device)  # (windows, ws^2, ws^2)
            bias = (bias + mask.unsqueeze(1)).repeat(B, 1, 1, 1)  # (B * windows, heads, ws^2, ws^2)
        bias = bias.to(q.dtype)
        x = attention(q, k, v, bias, self.attn_drop if self.training else 0.0, self)
        x = F.dropout(self.proj(merge_heads(x, True)), self.proj_drop, self.training)

        x = (
            x.view(B, pad_h // ws, pad_w // ws, ws, ws, C)
            .permute(0, 1, 3, 2, 4, 5)
            .reshape(B, pad_h, pad_w, C)
        )
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :H, :W, :].contiguous()


class SwinBlock(nn.Module):
    def __init__(self, dim: int, heads: int, shift: int, c: SwinConfig, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = ShiftedWindowAttention(dim, c.window_size, shift, heads, c.attn_drop_rate, c.drop_rate)
        self.stochastic_depth = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * c.mlp_ratio)
        self.mlp = nn.Sequential(
            nn.Linear(dim, hidden),
            get_act(c.act)(),
            nn.Dropout(c.drop_rate),
            nn.Linear(hidden, dim),
            nn.Dropout(c.drop_rate),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H, W, C)
        x = x + self.stochastic_depth(self.attn(self.norm1(x)))
        return x + self.stochastic_depth(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """Concatenate each 2x2 neighbourhood (4C channels), normalise, project to 2C: halves H and W."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x))


@register_model(
    {
        "swin_t": SwinConfig(),
        "swin_s": SwinConfig(depths=(2, 2, 18, 2), drop_path_rate=0.3),
        "swin_b": SwinConfig(
            embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.5
        ),
    },
    family="swin",
    paper="Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
    authors="Liu et al.",
    year=2021,
    interpolation="bicubic",
)
class SwinTransformer(Classifier):
    stem_conv = "features.0.0"
    head_layers = ("head",)

    def __init__(self, cfg: SwinConfig) -> None:
        super().__init__(cfg)
        dim = cfg.embed_dim
        layers: list[nn.Module] = [
            nn.Sequential(
                nn.Conv2d(cfg.in_chans, dim, cfg.patch_size, cfg.patch_size),
                Permute(0, 2, 3, 1),
                nn.LayerNorm(dim),
            )
        ]
        total, index = sum(cfg.depths), 0
        for i, (depth, heads) in enumerate(zip(cfg.depths, cfg.num_heads)):
            blocks = []
            for j in range(depth):
                rate = cfg.drop_path_rate * index / max(total - 1, 1)
                blocks.append(SwinBlock(dim, heads, 0 if j % 2 == 0 else cfg.window_size // 2, cfg, rate))
                index += 1
            layers.append(nn.Sequential(*blocks))
            if i + 1 < len(cfg.depths):
                layers.append(PatchMerging(dim))
                dim *= 2
        self.features = nn.Sequential(*layers)
        self.norm = nn.LayerNorm(dim)
        self.permute = Permute(0, 3, 1, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = dim
        self.head = linear_head(dim, cfg.num_classes)
        init_trunc_normal(self)

    def layer_groups(self) -> list[list[nn.Module]]:
        stem, *rest = self.features
        groups: list[list[nn.Module]] = [[stem]]
        for i, layer in enumerate(rest):  # stages at even positions, patch merging between them
            groups += [[block] for block in layer] if i % 2 == 0 else [[layer]]
        return groups

    def no_weight_decay(self) -> set[str]:
        return {f"{name}.relative_position_bias_table" for name, m in self.named_modules()
                if isinstance(m, ShiftedWindowAttention)}  # fmt: skip

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.permute(self.norm(self.features(x)))  # (B, C, H, W)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.flatten(self.avgpool(x)))
        return x if pre_logits else self.head(x)
