"""EfficientNet (Tan & Le 2019) and EfficientNetV2 (Tan & Le 2021), torchvision's layout.

B0 is defined once, as its stage table. The other sizes come from the paper's compound scaling:
depth d = alpha^phi, width w = beta^phi, resolution r = gamma^phi (alpha=1.2, beta=1.1, gamma=1.15,
found by grid search under alpha * beta^2 * gamma^2 ~ 2, so FLOPs grow ~2^phi). The published
B1..B7 round phi's multipliers by hand; their rows (as in the reference) are registered as named
variants, and ``efficientnet_scaled(phi)`` builds the rule's own model for any phi. See
docs/efficientnet_scaling.md for where the two differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import torch
from torch import nn

from .base import Classifier, ModelConfig
from .layers import ConvNormActSeq, DropPath, SqueezeExcite, get_act, linear_head, make_divisible
from .registry import build_model, register_model

ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15
BASE_RESOLUTION = 224

# (block, expansion, kernel, stride, in, out, layers); "mb" = MBConv, "fused" = Fused-MBConv
Stage = tuple[str, int, int, int, int, int, int]
B0: tuple[Stage, ...] = (
    ("mb", 1, 3, 1, 32, 16, 1),
    ("mb", 6, 3, 2, 16, 24, 2),
    ("mb", 6, 5, 2, 24, 40, 2),
    ("mb", 6, 3, 2, 40, 80, 3),
    ("mb", 6, 5, 1, 80, 112, 3),
    ("mb", 6, 5, 2, 112, 192, 4),
    ("mb", 6, 3, 1, 192, 320, 1),
)
V2_S: tuple[Stage, ...] = (
    ("fused", 1, 3, 1, 24, 24, 2),
    ("fused", 4, 3, 2, 24, 48, 4),
    ("fused", 4, 3, 2, 48, 64, 4),
    ("mb", 4, 3, 2, 64, 128, 6),
    ("mb", 6, 3, 1, 128, 160, 9),
    ("mb", 6, 3, 2, 160, 256, 15),
)
V2_M: tuple[Stage, ...] = (
    ("fused", 1, 3, 1, 24, 24, 3),
    ("fused", 4, 3, 2, 24, 48, 5),
    ("fused", 4, 3, 2, 48, 80, 5),
    ("mb", 4, 3, 2, 80, 160, 7),
    ("mb", 6, 3, 1, 160, 176, 14),
    ("mb", 6, 3, 2, 176, 304, 18),
    ("mb", 6, 3, 1, 304, 512, 5),
)
V2_L: tuple[Stage, ...] = (
    ("fused", 1, 3, 1, 32, 32, 4),
    ("fused", 4, 3, 2, 32, 64, 7),
    ("fused", 4, 3, 2, 64, 96, 7),
    ("mb", 4, 3, 2, 96, 192, 10),
    ("mb", 6, 3, 1, 192, 224, 19),
    ("mb", 6, 3, 2, 224, 384, 25),
    ("mb", 6, 3, 1, 384, 640, 7),
)


@dataclass(frozen=True)
class EfficientNetConfig(ModelConfig):
    stages: tuple[Stage, ...] = B0
    width_mult: float = 1.0  # channels x this, rounded to multiples of 8
    depth_mult: float = 1.0  # layers per stage x this, rounded up
    last_channels: int | None = None  # None: 4x the last stage's width (v1); v2: 1280
    norm_eps: float = 1e-5  # v2: 1e-3
    act: str = "silu"
    drop_rate: float = 0.2  # dropout before the classifier
    drop_path_rate: float = 0.2  # stochastic depth, linear in block index


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> kxk depthwise -> squeeze-excite -> 1x1 project."""

    def __init__(self, in_chs: int, out_chs: int, expand: int, k: int, stride: int, norm: partial, act: str,
                 drop_path: float) -> None:  # fmt: skip
        super().__init__()
        self.use_res = stride == 1 and in_chs == out_chs
        hidden = make_divisible(in_chs * expand, 8)
        act_layer = get_act(act)
        layers: list[nn.Module] = []
        if hidden != in_chs:
            layers.append(ConvNormActSeq(in_chs, hidden, 1, norm=norm, act=act_layer))
        layers.append(ConvNormActSeq(hidden, hidden, k, stride, groups=hidden, norm=norm, act=act_layer))
        layers.append(SqueezeExcite(hidden, max(1, in_chs // 4), act=act_layer))
        layers.append(ConvNormActSeq(hidden, out_chs, 1, norm=norm, act=None))
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.stochastic_depth(self.block(x)) if self.use_res else self.block(x)


class FusedMBConv(nn.Module):
    """EfficientNetV2's early-stage block: the expand and depthwise convs fused into one kxk conv."""

    def __init__(self, in_chs: int, out_chs: int, expand: int, k: int, stride: int, norm: partial, act: str,
                 drop_path: float) -> None:  # fmt: skip
        super().__init__()
        self.use_res = stride == 1 and in_chs == out_chs
        hidden = make_divisible(in_chs * expand, 8)
        act_layer = get_act(act)
        if hidden != in_chs:
            layers = [
                ConvNormActSeq(in_chs, hidden, k, stride, norm=norm, act=act_layer),
                ConvNormActSeq(hidden, out_chs, 1, norm=norm, act=None),
            ]
        else:
            layers = [ConvNormActSeq(in_chs, out_chs, k, stride, norm=norm, act=act_layer)]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.stochastic_depth(self.block(x)) if self.use_res else self.block(x)


# The published variants: (width, depth, resolution, dropout) as torchvision and the paper's code
# round them. The rule alone gives other numbers; see compound_scaling().
PUBLISHED = {
    0: (1.0, 1.0, 224, 0.2),
    1: (1.0, 1.1, 240, 0.2),
    2: (1.1, 1.2, 260, 0.3),
    3: (1.2, 1.4, 300, 0.3),
    4: (1.4, 1.8, 380, 0.4),
    5: (1.6, 2.2, 456, 0.4),
    6: (1.8, 2.6, 528, 0.5),
    7: (2.0, 3.1, 600, 0.5),
}


def compound_scaling(phi: float) -> tuple[float, float, int]:
    """(width multiplier, depth multiplier, resolution) of the rule d = a^phi, w = b^phi, r = g^phi."""
    return BETA**phi, ALPHA**phi, int(round(BASE_RESOLUTION * GAMMA**phi / 8) * 8)


def _paper(v: int) -> dict[str, Any]:
    if v == 1:
        return {
            "paper": "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
            "year": 2019,
        }
    return {"paper": "EfficientNetV2: Smaller Models and Faster Training", "year": 2021}


def _register_published() -> None:
    for b, (w, d, res, drop) in PUBLISHED.items():
        register_model(
            # B5-B7's reference weights were ported from TensorFlow, whose batch norm eps is 1e-3
            {
                f"efficientnet_b{b}": EfficientNetConfig(
                    width_mult=w, depth_mult=d, drop_rate=drop, norm_eps=1e-3 if b >= 5 else 1e-5
                )
            },
            family="efficientnet",
            authors="Tan & Le",
            input_size=(3, res, res),
            interpolation="bicubic",
            **_paper(1),
        )(EfficientNet)
    v2 = partial(EfficientNetConfig, last_channels=1280, norm_eps=1e-3)
    for name, stages, res, drop in (("s", V2_S, 384, 0.2), ("m", V2_M, 480, 0.3), ("l", V2_L, 480, 0.4)):
        register_model(
            {f"efficientnet_v2_{name}": v2(stages=stages, drop_rate=drop)},
            family="efficientnet",
            authors="Tan & Le",
            input_size=(3, res, res),
            interpolation="bilinear",
            crop_pct=1.0,
            **_paper(2),
        )(EfficientNet)


class EfficientNet(Classifier):
    stem_conv = "features.0.0"
    head_layers = ("classifier.1",)

    def __init__(self, cfg: EfficientNetConfig) -> None:
        super().__init__(cfg)
        norm = partial(nn.BatchNorm2d, eps=cfg.norm_eps)
        act = get_act(cfg.act)
        stages = [
            (kind, e, k, s, make_divisible(cin * cfg.width_mult, 8), make_divisible(cout * cfg.width_mult, 8),
             math.ceil(n * cfg.depth_mult))
            for kind, e, k, s, cin, cout, n in cfg.stages
        ]  # fmt: skip
        first = stages[0][4]
        layers: list[nn.Module] = [ConvNormActSeq(cfg.in_chans, first, 3, 2, norm=norm, act=act)]
        total, index = sum(s[-1] for s in stages), 0
        for kind, e, k, s, cin, cout, n in stages:
            block = MBConv if kind == "mb" else FusedMBConv
            blocks = []
            for i in range(n):
                rate = cfg.drop_path_rate * index / total
                blocks.append(
                    block(cin if i == 0 else cout, cout, e, k, s if i == 0 else 1, norm, cfg.act, rate)
                )
                index += 1
            layers.append(nn.Sequential(*blocks))
        last_in = stages[-1][5]
        last = cfg.last_channels if cfg.last_channels is not None else 4 * last_in
        layers.append(ConvNormActSeq(last_in, last, 1, norm=norm, act=act))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = last
        self.classifier = nn.Sequential(
            nn.Dropout(cfg.drop_rate, inplace=True), linear_head(last, cfg.num_classes)
        )
        for m in self.modules():  # the reference's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                r = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -r, r)
                nn.init.zeros_(m.bias)

    def layer_groups(self) -> list[list[nn.Module]]:
        stem, *stages, last = self.features
        return [[stem], *[[block] for stage in stages for block in stage], [last]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.classifier[1](x)


_register_published()


def scaled_config(phi: float, **overrides: Any) -> tuple[EfficientNetConfig, int]:
    """B0 scaled by the compound rule: (config, resolution)."""
    width, depth, resolution = compound_scaling(phi)
    drop = 0.2 + 0.3 * min(phi, 7) / 7  # dropout grows with size, as in the published rows (0.2 -> 0.5)
    return replace(
        EfficientNetConfig(), width_mult=width, depth_mult=depth, drop_rate=drop, **overrides
    ), resolution


def efficientnet_scaled(phi: float, **overrides: Any) -> EfficientNet:
    """EfficientNet-B0 scaled by the compound rule for any phi (not the hand-rounded published rows).

    ``model.info.input_size`` carries the rule's resolution; overrides are config fields.
    """
    config, resolution = scaled_config(phi)
    fields = {k: getattr(config, k) for k in ("width_mult", "depth_mult", "drop_rate")}
    model = build_model("efficientnet_b0", **{**fields, **overrides})
    size = (model.in_chans, resolution, resolution)
    model.info = replace(model.info, name=f"efficientnet_scaled({phi:g})", input_size=size)
    return model
