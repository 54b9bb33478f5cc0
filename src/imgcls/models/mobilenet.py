"""MobileNets: v1 (Howard et al. 2017: depthwise-separable convs, timm's layout), v2 (Sandler et
al. 2018: inverted residuals with linear bottlenecks) and v3 (Howard et al. 2019: + squeeze-excite,
hard-swish, NAS-found widths), the latter two in torchvision's layout. ``width_mult`` scales every
width as in the papers (rounded to multiples of 8)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .base import Classifier, ModelConfig
from .layers import ConvNormActSeq, DropPath, SqueezeExcite, get_act, linear_head, make_divisible
from .registry import register_model

PAPER_V1 = "MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications"
PAPER_V2 = "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
PAPER_V3 = "Searching for MobileNetV3"

# v1: (out channels, stride) of each depthwise-separable block, grouped in timm's stages
V1_STAGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((64, 1),),
    ((128, 2), (128, 1)),
    ((256, 2), (256, 1)),
    ((512, 2), (512, 1), (512, 1), (512, 1), (512, 1), (512, 1)),
    ((1024, 2), (1024, 1)),
)
# v2: (expansion t, out channels c, repeats n, stride s) of the paper's Table 2
V2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
# v3: (kernel, expanded, out, squeeze-excite, activation, stride) of the paper's Tables 1 and 2
V3_LARGE = (
    (3, 16, 16, False, "relu", 1), (3, 64, 24, False, "relu", 2), (3, 72, 24, False, "relu", 1),
    (5, 72, 40, True, "relu", 2), (5, 120, 40, True, "relu", 1), (5, 120, 40, True, "relu", 1),
    (3, 240, 80, False, "hardswish", 2), (3, 200, 80, False, "hardswish", 1), (3, 184, 80, False, "hardswish", 1),
    (3, 184, 80, False, "hardswish", 1), (3, 480, 112, True, "hardswish", 1), (3, 672, 112, True, "hardswish", 1),
    (5, 672, 160, True, "hardswish", 2), (5, 960, 160, True, "hardswish", 1), (5, 960, 160, True, "hardswish", 1),
)  # fmt: skip
V3_SMALL = (
    (3, 16, 16, True, "relu", 2), (3, 72, 24, False, "relu", 2), (3, 88, 24, False, "relu", 1),
    (5, 96, 40, True, "hardswish", 2), (5, 240, 40, True, "hardswish", 1), (5, 240, 40, True, "hardswish", 1),
    (5, 120, 48, True, "hardswish", 1), (5, 144, 48, True, "hardswish", 1), (5, 288, 96, True, "hardswish", 2),
    (5, 576, 96, True, "hardswish", 1), (5, 576, 96, True, "hardswish", 1),
)  # fmt: skip


@dataclass(frozen=True)
class MobileNetConfig(ModelConfig):
    version: int = 2  # 1, 2 or 3 (which class builds it; not an override)
    v3_blocks: tuple[tuple, ...] = V3_LARGE  # v3 only: the block table
    width_mult: float = 1.0
    last_channels: int = 1280  # v2: 1280; v3: 1280 (large) / 1024 (small)
    act: str = "relu6"  # v1/v2; v3 uses its table's relu / hard-swish
    drop_rate: float = 0.2
    drop_path_rate: float = 0.0


def _c(channels: float, cfg: MobileNetConfig) -> int:
    return make_divisible(channels * cfg.width_mult, 8)


class DepthwiseSeparable(nn.Module):
    """v1 block: 3x3 depthwise -> BN -> act -> 1x1 pointwise -> BN -> act (timm names)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, act: str) -> None:
        super().__init__()
        self.conv_dw = nn.Conv2d(in_chs, in_chs, 3, stride, 1, groups=in_chs, bias=False)
        self.bn1 = nn.BatchNorm2d(in_chs)
        self.act1 = get_act(act)()
        self.conv_pw = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_chs)
        self.act2 = get_act(act)()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act2(self.bn2(self.conv_pw(self.act1(self.bn1(self.conv_dw(x))))))


class InvertedResidualV2(nn.Module):
    """v2 block: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes allow."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, t: int, act: str, drop_path: float) -> None:
        super().__init__()
        hidden = round(in_chs * t)
        self.use_res = stride == 1 and in_chs == out_chs
        layers: list[nn.Module] = []
        if t != 1:
            layers.append(ConvNormActSeq(in_chs, hidden, 1, act=get_act(act)))
        layers += [
            ConvNormActSeq(hidden, hidden, 3, stride, groups=hidden, act=get_act(act)),
            nn.Conv2d(hidden, out_chs, 1, bias=False),
            nn.BatchNorm2d(out_chs),
        ]
        self.conv = nn.Sequential(*layers)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.conv(x)) if self.use_res else self.conv(x)


class InvertedResidualV3(nn.Module):
    """v3 block: v2's, with optional squeeze-excite (hard-sigmoid gate) and a per-block activation."""

    def __init__(self, in_chs: int, k: int, exp: int, out_chs: int, se: bool, act: str, stride: int,
                 norm: partial, drop_path: float) -> None:  # fmt: skip
        super().__init__()
        self.use_res = stride == 1 and in_chs == out_chs
        layers: list[nn.Module] = []
        if exp != in_chs:
            layers.append(ConvNormActSeq(in_chs, exp, 1, norm=norm, act=get_act(act)))
        layers.append(ConvNormActSeq(exp, exp, k, stride, groups=exp, norm=norm, act=get_act(act)))
        if se:
            layers.append(SqueezeExcite(exp, make_divisible(exp // 4, 8), gate=nn.Hardsigmoid))
        layers.append(ConvNormActSeq(exp, out_chs, 1, norm=norm, act=None))
        self.block = nn.Sequential(*layers)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.drop_path(self.block(x)) if self.use_res else self.block(x)


def _init(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def _depth_rates(cfg: MobileNetConfig, n: int) -> list[float]:
    return [cfg.drop_path_rate * i / max(n - 1, 1) for i in range(n)]


@register_model({"mobilenet_v1": MobileNetConfig(version=1, act="relu6", drop_rate=0.0)},
                family="mobilenet", paper=PAPER_V1, authors="Howard et al.", year=2017)  # fmt: skip
class MobileNetV1(Classifier):
    stem_conv = "conv_stem"
    head_layers = ("classifier",)

    def __init__(self, cfg: MobileNetConfig) -> None:
        super().__init__(cfg)
        chs = _c(32, cfg)
        self.conv_stem = nn.Conv2d(cfg.in_chans, chs, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(chs)
        self.act1 = get_act(cfg.act)()
        stages = []
        for stage in V1_STAGES:
            blocks = []
            for out, stride in stage:
                blocks.append(DepthwiseSeparable(chs, _c(out, cfg), stride, cfg.act))
                chs = _c(out, cfg)
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = chs
        self.classifier = linear_head(chs, cfg.num_classes)
        _init(self)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.conv_stem, self.bn1], *[[block] for stage in self.blocks for block in stage]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.act1(self.bn1(self.conv_stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.classifier(x)


@register_model({"mobilenet_v2": MobileNetConfig(version=2)},
                family="mobilenet", paper=PAPER_V2, authors="Sandler et al.", year=2018)  # fmt: skip
class MobileNetV2(Classifier):
    stem_conv = "features.0.0"
    head_layers = ("classifier.1",)

    def __init__(self, cfg: MobileNetConfig) -> None:
        super().__init__(cfg)
        chs = _c(32, cfg)
        last = make_divisible(cfg.last_channels * max(1.0, cfg.width_mult), 8)
        layers: list[nn.Module] = [ConvNormActSeq(cfg.in_chans, chs, 3, 2, act=get_act(cfg.act))]
        rates = iter(_depth_rates(cfg, sum(n for _, _, n, _ in V2_STAGES)))
        for t, c, n, s in V2_STAGES:
            for i in range(n):
                layers.append(
                    InvertedResidualV2(chs, _c(c, cfg), s if i == 0 else 1, t, cfg.act, next(rates))
                )
                chs = _c(c, cfg)
        layers.append(ConvNormActSeq(chs, last, 1, act=get_act(cfg.act)))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = last
        self.classifier = nn.Sequential(nn.Dropout(cfg.drop_rate), linear_head(last, cfg.num_classes))
        _init(self)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[layer] for layer in self.features]  # the stem conv, the blocks, the last 1x1 conv

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[0](torch.flatten(self.pool(x), 1))
        return x if pre_logits else self.classifier[1](x)


@register_model(
    {
        "mobilenet_v3_large": MobileNetConfig(version=3, v3_blocks=V3_LARGE, last_channels=1280),
        "mobilenet_v3_small": MobileNetConfig(version=3, v3_blocks=V3_SMALL, last_channels=1024),
    },
    family="mobilenet",
    paper=PAPER_V3,
    authors="Howard et al.",
    year=2019,
)
class MobileNetV3(Classifier):
    stem_conv = "features.0.0"
    head_layers = ("classifier.3",)

    def __init__(self, cfg: MobileNetConfig) -> None:
        super().__init__(cfg)
        norm = partial(nn.BatchNorm2d, eps=0.001, momentum=0.01)
        chs = _c(16, cfg)
        layers: list[nn.Module] = [
            ConvNormActSeq(cfg.in_chans, chs, 3, 2, norm=norm, act=get_act("hardswish"))
        ]
        rates = iter(_depth_rates(cfg, len(cfg.v3_blocks)))
        for k, exp, out, se, act, stride in cfg.v3_blocks:
            layers.append(
                InvertedResidualV3(chs, k, _c(exp, cfg), _c(out, cfg), se, act, stride, norm, next(rates))
            )
            chs = _c(out, cfg)
        last_conv = 6 * chs
        layers.append(ConvNormActSeq(chs, last_conv, 1, norm=norm, act=get_act("hardswish")))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        last = (
            make_divisible(cfg.last_channels * cfg.width_mult, 8) if cfg.width_mult > 1 else cfg.last_channels
        )
        self.num_features = last
        self.classifier = nn.Sequential(
            nn.Linear(last_conv, last),
            nn.Hardswish(inplace=True),
            nn.Dropout(cfg.drop_rate),
            linear_head(last, cfg.num_classes),
        )
        _init(self)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[layer] for layer in self.features]  # the stem conv, the blocks, the last 1x1 conv

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.classifier[:3](torch.flatten(self.pool(x), 1))
        return x if pre_logits else self.classifier[3](x)
