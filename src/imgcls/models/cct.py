"""Compact Convolutional Transformers (Hassani et al. 2021, "Escaping the Big Data Paradigm with
Compact Transformers"): a small conv tokenizer instead of patches, a transformer encoder, and
*sequence pooling* (an attention-weighted average of the tokens) instead of a class token.
Trains from scratch on small data: CCT-7/3x1 reaches ~95 % on CIFAR-10 with 3.76M parameters.

Names: ``cct_{layers}_{kernel}x{conv layers}``. Layout after the authors' code."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn

from .base import Classifier, ModelConfig
from .layers import Attention, DropPath, get_act, init_trunc_normal, linear_head, resample_pos_embed
from .registry import CIFAR_MEAN, CIFAR_STD, register_model


@dataclass(frozen=True)
class CCTConfig(ModelConfig):
    img_size: int = 32
    embed_dim: int = 256
    depth: int = 7
    num_heads: int = 4
    mlp_ratio: float = 2.0
    kernel_size: int = 3
    conv_layers: int = 1
    conv_width: int = 64  # width of the tokenizer's inner conv layers
    act: str = "gelu"
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.1
    drop_path_rate: float = 0.1


class Tokenizer(nn.Module):
    """conv -> ReLU -> 3x3/2 max-pool, ``conv_layers`` times: (B, C, H, W) -> (B, dim, h, w)."""

    def __init__(self, c: CCTConfig) -> None:
        super().__init__()
        stride, padding = max(1, c.kernel_size // 2 - 1), max(1, c.kernel_size // 2)
        widths = [c.in_chans] + [c.conv_width] * (c.conv_layers - 1) + [c.embed_dim]
        self.conv_layers = nn.Sequential(
            *(
                nn.Sequential(
                    nn.Conv2d(cin, cout, c.kernel_size, stride, padding, bias=False),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(3, 2, 1),
                )
                for cin, cout in itertools.pairwise(widths)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_layers(x)  # (B, dim, h, w)


class EncoderLayer(nn.Module):
    """The authors' layer: x + attn(pre_norm(x)), normalised, then + MLP (no norm after)."""

    def __init__(self, c: CCTConfig, drop_path: float) -> None:
        super().__init__()
        self.pre_norm = nn.LayerNorm(c.embed_dim)
        self.self_attn = Attention(c.embed_dim, c.num_heads, False, c.attn_drop_rate, c.drop_rate)
        self.norm1 = nn.LayerNorm(c.embed_dim)
        hidden = int(c.embed_dim * c.mlp_ratio)
        self.linear1 = nn.Linear(c.embed_dim, hidden)
        self.activation = get_act(c.act)()
        self.dropout1 = nn.Dropout(c.drop_rate)
        self.linear2 = nn.Linear(hidden, c.embed_dim)
        self.dropout2 = nn.Dropout(c.drop_rate)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.drop_path(self.self_attn(self.pre_norm(x))))
        return x + self.drop_path(
            self.dropout2(self.linear2(self.dropout1(self.activation(self.linear1(x)))))
        )


@register_model(
    {"cct_7_3x1": CCTConfig(num_classes=10)},
    family="cct",
    paper="Escaping the Big Data Paradigm with Compact Transformers",
    authors="Hassani et al.",
    year=2021,
    input_size=(3, 32, 32),
    mean=CIFAR_MEAN,
    std=CIFAR_STD,
    crop_pct=1.0,
)
@register_model(
    {
        "cct_14_7x2": CCTConfig(
            img_size=224, embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0, kernel_size=7, conv_layers=2
        )
    },
    family="cct",
    paper="Escaping the Big Data Paradigm with Compact Transformers",
    authors="Hassani et al.",
    year=2021,
    interpolation="bicubic",
    crop_pct=0.9,
)
class CCT(Classifier):
    stem_conv = "tokenizer.conv_layers.0.0"
    head_layers = ("fc",)

    def __init__(self, cfg: CCTConfig) -> None:
        super().__init__(cfg)
        self.tokenizer = Tokenizer(cfg)
        self.grid = self._grid(cfg.img_size)
        self.positional_emb = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1], cfg.embed_dim))
        self.dropout = nn.Dropout(cfg.drop_rate)
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]
        self.blocks = nn.Sequential(*(EncoderLayer(cfg, r) for r in rates))
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.attention_pool = nn.Linear(cfg.embed_dim, 1)
        self.num_features = cfg.embed_dim
        self.fc = linear_head(cfg.embed_dim, cfg.num_classes)
        nn.init.trunc_normal_(self.positional_emb, std=0.2)
        init_trunc_normal(self)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def _grid(self, size: int) -> tuple[int, int]:
        with torch.device("meta"):
            shape = self.tokenizer.conv_layers(torch.empty(1, self.cfg.in_chans, size, size)).shape
        return shape[2], shape[3]

    def layer_groups(self) -> list[list[nn.Module | nn.Parameter]]:
        return [[self.tokenizer, self.positional_emb], *[[block] for block in self.blocks]]

    def no_weight_decay(self) -> set[str]:
        return {"positional_emb"}

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.tokenizer(x)
        grid = (x.shape[2], x.shape[3])
        tokens = x.flatten(2).transpose(1, 2)  # (B, tokens, dim)
        pos = self.positional_emb
        if grid != self.grid:  # another input size: resample the learned grid
            pos = resample_pos_embed(pos, grid, prefix_tokens=0, old_grid=self.grid)
        return self.norm(self.blocks(self.dropout(tokens + pos)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        weights = self.attention_pool(x).softmax(1)  # (B, tokens, 1): sequence pooling
        x = (weights.transpose(1, 2) @ x).squeeze(1)
        return x if pre_logits else self.fc(x)
