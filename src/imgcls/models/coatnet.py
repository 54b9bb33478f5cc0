"""CoAtNet (Dai et al. 2021, "CoAtNet: Marrying Convolution and Attention for All Data Sizes"):
a conv stem, two stages of MBConv blocks, then two stages of transformer blocks whose attention
carries a learned 2-D relative position bias (convolution's translation equivariance, in
attention). Pre-norm everywhere; each stage's first block downsamples both its shortcut
(pool + 1x1 projection) and its residual branch. CoAtNet-0 as in the paper's Table 3."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .base import Classifier, ModelConfig
from .layers import (
    Attention,
    DropPath,
    Mlp,
    SqueezeExcite,
    get_act,
    init_kaiming,
    init_trunc_normal,
    linear_head,
)
from .registry import register_model


@dataclass(frozen=True)
class CoAtNetConfig(ModelConfig):
    img_size: int = 224
    depths: tuple[int, ...] = (2, 2, 3, 5, 2)  # S0 (stem convs), S1..S4
    dims: tuple[int, ...] = (64, 96, 192, 384, 768)
    blocks: tuple[str, ...] = ("C", "C", "T", "T")  # S1..S4: MBConv ("C") or transformer ("T")
    expand_ratio: int = 4  # MBConv expansion (of the input width) and transformer MLP ratio
    head_dim: int = 32
    se_ratio: float = 0.25
    act: str = "gelu"
    drop_rate: float = 0.0
    drop_path_rate: float = 0.2


class MBConvBlock(nn.Module):
    """Pre-norm inverted bottleneck: x -> BN -> 1x1 (4x the input width) -> 3x3 depthwise -> SE -> 1x1, + shortcut.

    A downsampling block strides its first 1x1 conv, as the paper's Conv(DepthConv(Conv(Norm(x),
    stride=2))): expanding at full resolution and striding the depthwise conv instead computes
    four times as many expansion FLOPs, at ~10 GFLOP/s on a CPU (measured: 1.3 s of a 7.4 s batch).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int, c: CoAtNetConfig, drop_path: float) -> None:
        super().__init__()
        act, mid = get_act(c.act), in_chs * c.expand_ratio
        self.shortcut = (
            nn.Sequential(
                nn.MaxPool2d(3, stride, 1) if stride > 1 else nn.Identity(), nn.Conv2d(in_chs, out_chs, 1)
            )
            if stride > 1 or in_chs != out_chs
            else nn.Identity()
        )
        self.norm = nn.BatchNorm2d(in_chs)
        self.conv1 = nn.Conv2d(in_chs, mid, 1, stride, bias=False)
        self.norm1 = nn.BatchNorm2d(mid)
        self.act1 = act()
        self.conv2 = nn.Conv2d(mid, mid, 3, 1, 1, groups=mid, bias=False)
        self.norm2 = nn.BatchNorm2d(mid)
        self.act2 = act()
        self.se = SqueezeExcite(mid, max(1, int(in_chs * c.se_ratio)), act=nn.SiLU)
        self.conv3 = nn.Conv2d(mid, out_chs, 1)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act1(self.norm1(self.conv1(self.norm(x))))
        y = self.se(self.act2(self.norm2(self.conv2(y))))
        return self.shortcut(x) + self.drop_path(self.conv3(y))


class RelativeAttention(Attention):
    """Self-attention over a (H, W) grid with a learned bias per head for every 2-D offset."""

    def __init__(self, dim: int, num_heads: int, grid: tuple[int, int]) -> None:
        super().__init__(dim, num_heads)
        self.grid = grid
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros(num_heads, 2 * grid[0] - 1, 2 * grid[1] - 1)
        )
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def bias(self, h: int, w: int) -> torch.Tensor:
        """(1, heads, h*w, h*w) bias of a h x w grid (the table is resampled for a larger grid)."""
        table = self.relative_position_bias_table
        if h > self.grid[0] or w > self.grid[1]:
            table = F.interpolate(table.unsqueeze(0), size=(2 * h - 1, 2 * w - 1), mode="bicubic").squeeze(0)
        ch, cw = (table.shape[1] - 1) // 2, (table.shape[2] - 1) // 2  # the zero offset
        ys, xs = torch.meshgrid(
            torch.arange(h, device=table.device), torch.arange(w, device=table.device), indexing="ij"
        )
        ys, xs = ys.flatten(), xs.flatten()
        dy, dx = ys[:, None] - ys[None, :] + ch, xs[:, None] - xs[None, :] + cw
        return table[:, dy, dx].unsqueeze(0)

    def forward_grid(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, H*W, C)
        h, w = x.shape[2:]
        return super().forward(x.flatten(2).transpose(1, 2), self.bias(h, w).to(x.dtype))


class TransformerBlock(nn.Module):
    """Pre-norm: x + attention(LN(x)), x + MLP(LN(x)); the first block of a stage pools to half size."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, grid: tuple[int, int], c: CoAtNetConfig,
                 drop_path: float) -> None:  # fmt: skip
        super().__init__()
        self.pool = nn.MaxPool2d(3, 2, 1) if stride > 1 else nn.Identity()
        self.shortcut = nn.Conv2d(in_chs, out_chs, 1) if in_chs != out_chs else nn.Identity()
        self.norm1 = nn.LayerNorm(in_chs)
        self.expand = nn.Linear(in_chs, out_chs) if in_chs != out_chs else nn.Identity()
        self.attn = RelativeAttention(out_chs, out_chs // c.head_dim, grid)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(out_chs)
        self.mlp = Mlp(out_chs, out_chs * c.expand_ratio, c.act, c.drop_rate)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        x = self.pool(x)
        B, _, H, W = x.shape
        y = self.expand(self.norm1(x.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
        tokens = self.shortcut(x).flatten(2).transpose(1, 2) + self.drop_path1(self.attn.forward_grid(y))
        tokens = tokens + self.drop_path2(self.mlp(self.norm2(tokens)))
        return tokens.transpose(1, 2).reshape(B, -1, H, W)


@register_model(
    {"coatnet_0": CoAtNetConfig()},
    family="coatnet",
    paper="CoAtNet: Marrying Convolution and Attention for All Data Sizes",
    authors="Dai et al.",
    year=2021,
    interpolation="bicubic",
    crop_pct=0.95,
)
class CoAtNet(Classifier):
    stem_conv = "stem.0"
    head_layers = ("head",)

    def __init__(self, cfg: CoAtNetConfig) -> None:
        super().__init__(cfg)
        act, d0 = get_act(cfg.act), cfg.dims[0]
        stem: list[nn.Module] = []
        for i in range(cfg.depths[0]):  # S0: 3x3 convs, the first with stride 2
            stem += [nn.Conv2d(cfg.in_chans if i == 0 else d0, d0, 3, 2 if i == 0 else 1, 1, bias=False),
                     nn.BatchNorm2d(d0), act()]  # fmt: skip
        self.stem = nn.Sequential(*stem)
        total, index, chs, size = sum(cfg.depths[1:]), 0, d0, cfg.img_size // 2
        stages = []
        for kind, depth, dim in zip(cfg.blocks, cfg.depths[1:], cfg.dims[1:]):
            size //= 2
            blocks = []
            for j in range(depth):
                rate, stride = cfg.drop_path_rate * index / max(total - 1, 1), 2 if j == 0 else 1
                if kind == "C":
                    blocks.append(MBConvBlock(chs, dim, stride, cfg, rate))
                else:
                    blocks.append(TransformerBlock(chs, dim, stride, (size, size), cfg, rate))
                chs, index = dim, index + 1
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(chs)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = chs
        self.head = linear_head(chs, cfg.num_classes)
        init_trunc_normal(self)
        init_kaiming(self, linear_std=None)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.stem], *[[block] for stage in self.stages for block in stage]]

    def no_weight_decay(self) -> set[str]:
        return {f"{name}.relative_position_bias_table" for name, m in self.named_modules()
                if isinstance(m, RelativeAttention)}  # fmt: skip

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.norm(x.mean((2, 3))))
        return x if pre_logits else self.head(x)
