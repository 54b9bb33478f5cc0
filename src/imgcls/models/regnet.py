"""RegNet (Radosavovic et al. 2020, "Designing Network Design Spaces"): networks whose per-block
widths follow a quantised linear rule, u_j = w_0 + w_a * j, snapped to w_0 * w_m^k. RegNetY adds
squeeze-excitation. Every size is one row of (depth, w_0, w_a, w_m, group width); the generator
below turns it into stages. torchvision's layout."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .base import Classifier, ModelConfig
from .layers import ConvNormActSeq, DropPath, SqueezeExcite, get_act, linear_head, make_divisible
from .registry import register_model

QUANT = 8  # widths are multiples of 8


@dataclass(frozen=True)
class RegNetConfig(ModelConfig):
    depth: int = 16
    w_0: int = 48  # initial width
    w_a: float = 27.89  # slope
    w_m: float = 2.09  # quantisation base
    group_width: int = 8
    bottleneck_multiplier: float = 1.0
    se_ratio: float = 0.25  # RegNetY; 0 = RegNetX
    stem_width: int = 32
    act: str = "relu"
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0


def stage_params(c: RegNetConfig) -> list[tuple[int, int, int]]:
    """(width, depth, group width) of each stage, from the linear rule (the paper's section 3.3)."""
    widths_cont = [j * c.w_a + c.w_0 for j in range(c.depth)]
    ks = [round(math.log(u / c.w_0) / math.log(c.w_m)) for u in widths_cont]
    widths = [int(round(c.w_0 * c.w_m**k / QUANT) * QUANT) for k in ks]
    stages: list[list[int]] = []  # [width, depth]
    for w in widths:
        if stages and stages[-1][0] == w:
            stages[-1][1] += 1
        else:
            stages.append([w, 1])
    out = []
    for w, d in stages:  # make the bottleneck width divisible by the group width
        w_bot = int(w * c.bottleneck_multiplier)
        g = min(c.group_width, w_bot)
        w_bot = make_divisible(w_bot, g)
        out.append((int(w_bot / c.bottleneck_multiplier), d, g))
    return out


class BottleneckTransform(nn.Sequential):
    def __init__(self, w_in: int, w_out: int, stride: int, group_width: int, c: RegNetConfig) -> None:
        super().__init__()
        act = get_act(c.act)
        w_b = round(w_out * c.bottleneck_multiplier)
        self.a = ConvNormActSeq(w_in, w_b, 1, act=act)
        self.b = ConvNormActSeq(w_b, w_b, 3, stride, groups=w_b // group_width, act=act)
        if c.se_ratio > 0:
            self.se = SqueezeExcite(w_b, round(c.se_ratio * w_in), act=act)
        self.c = ConvNormActSeq(w_b, w_out, 1, act=None)


class ResBottleneckBlock(nn.Module):
    def __init__(
        self, w_in: int, w_out: int, stride: int, group_width: int, c: RegNetConfig, drop_path: float
    ) -> None:
        super().__init__()
        self.proj = ConvNormActSeq(w_in, w_out, 1, stride, act=None) if w_in != w_out or stride != 1 else None
        self.f = BottleneckTransform(w_in, w_out, stride, group_width, c)
        self.drop_path = DropPath(drop_path)
        self.activation = get_act(c.act)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return self.activation(shortcut + self.drop_path(self.f(x)))


def _y(depth: int, w_0: int, w_a: float, w_m: float, group_width: int) -> RegNetConfig:
    return RegNetConfig(depth=depth, w_0=w_0, w_a=w_a, w_m=w_m, group_width=group_width)


# The paper's Table (appendix) RegNetY rows, as torchvision builds them
REGNET_Y = {
    "regnet_y_400mf": _y(16, 48, 27.89, 2.09, 8),
    "regnet_y_800mf": _y(14, 56, 38.84, 2.4, 16),
    "regnet_y_1_6gf": _y(27, 48, 20.71, 2.65, 24),
    "regnet_y_3_2gf": _y(21, 80, 42.63, 2.66, 24),
    "regnet_y_8gf": _y(17, 192, 76.82, 2.19, 56),
    "regnet_y_16gf": _y(18, 200, 106.23, 2.48, 112),
    "regnet_y_32gf": _y(20, 232, 115.89, 2.53, 232),
}


@register_model(REGNET_Y, family="regnet", paper="Designing Network Design Spaces", authors="Radosavovic et al.",
                year=2020)  # fmt: skip
class RegNet(Classifier):
    stem_conv = "stem.0"
    head_layers = ("fc",)

    def __init__(self, cfg: RegNetConfig) -> None:
        super().__init__(cfg)
        self.stem = ConvNormActSeq(cfg.in_chans, cfg.stem_width, 3, 2, act=get_act(cfg.act))
        params = stage_params(cfg)
        total, index = sum(d for _, d, _ in params), 0
        w_in = cfg.stem_width
        stages = nn.Sequential()
        for i, (w, d, g) in enumerate(params):
            stage = nn.Sequential()
            for j in range(d):
                rate = cfg.drop_path_rate * index / max(total - 1, 1)
                stage.add_module(
                    f"block{i + 1}-{j}", ResBottleneckBlock(w_in, w, 2 if j == 0 else 1, g, cfg, rate)
                )
                w_in, index = w, index + 1
            stages.add_module(f"block{i + 1}", stage)
        self.trunk_output = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.drop_rate)
        self.num_features = w_in
        self.fc = linear_head(w_in, cfg.num_classes)
        for m in self.modules():  # the reference's init
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.stem], *[[block] for stage in self.trunk_output for block in stage]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk_output(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)
