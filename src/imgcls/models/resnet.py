"""ResNet (He et al. 2016) and the families that are ResNet plus one idea, each a row of data:
ResNeXt (grouped 3x3, Xie et al. 2017), Wide ResNet-50 (wider bottleneck, Zagoruyko & Komodakis
2016), SENet (a squeeze-excitation layer passed into the block, Hu et al. 2018), and the CIFAR
ResNets of the paper's section 4.2 (3x3 stem, three stages of 16/32/64, option-A shortcuts).

ImageNet variants follow torchvision's layout (seresnet50: timm's, which adds ``se.fc1/fc2``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Classifier, ModelConfig
from .layers import DropPath, SqueezeExcite, get_act, get_norm, init_kaiming, linear_head, make_divisible
from .registry import CIFAR_MEAN, CIFAR_STD, register_model


@dataclass(frozen=True)
class ResNetConfig(ModelConfig):
    block: str = "bottleneck"  # "basic" (two 3x3) or "bottleneck" (1x1, 3x3, 1x1 with 4x expansion)
    layers: tuple[int, ...] = (3, 4, 6, 3)  # blocks per stage
    widths: tuple[int, ...] = (64, 128, 256, 512)  # stage widths (before expansion)
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": 3x3/1 conv
    shortcut: str = "B"  # "A": strided identity + zero channels (no parameters); "B": 1x1 conv + norm
    groups: int = 1  # ResNeXt cardinality
    width_per_group: int = 64  # ResNeXt bottleneck width per group; 128 = Wide ResNet-50-2
    se_ratio: float = 0.0  # > 0: SENet, squeeze-excitation with this reduction (1/16 in the paper)
    act: str = "relu"
    norm: str = "batchnorm"
    drop_rate: float = 0.0  # dropout before the classifier
    drop_path_rate: float = 0.0  # stochastic depth, growing linearly to this value at the last block
    zero_init_last: bool = False  # zero the last norm of each block: every block starts as identity

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.block not in ("basic", "bottleneck"):
            raise ConfigError(f"{model}: block must be 'basic' or 'bottleneck', got {self.block!r}")
        if self.stem not in ("imagenet", "cifar") or self.shortcut not in ("A", "B"):
            raise ConfigError(
                f"{model}: stem must be imagenet|cifar and shortcut A|B, got {self.stem!r}, {self.shortcut!r}"
            )
        if len(self.layers) != len(self.widths):
            raise ConfigError(
                f"{model}: layers {self.layers} and widths {self.widths} must have the same length"
            )


class ShortcutA(nn.Module):
    """Option A of the paper: subsample by striding, pad the new channels with zeros (no parameters)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, out_chs - in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_chs: int, planes: int, stride: int, downsample: nn.Module | None, c: ResNetConfig,
                 attn: Callable[[int], nn.Module] | None, drop_path: float) -> None:  # fmt: skip
        super().__init__()
        norm, act = get_norm(c.norm), get_act(c.act)
        self.conv1 = nn.Conv2d(in_chs, planes, 3, stride, 1, bias=False)
        self.bn1 = norm(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = norm(planes)
        if attn is not None:
            self.se = attn(planes)
        self.act = act()
        self.downsample = downsample
        self.drop_path = DropPath(drop_path)

    def last_norm(self) -> nn.Module:
        return self.bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if hasattr(self, "se"):
            out = self.se(out)
        return self.act(self.drop_path(out) + shortcut)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_chs: int, planes: int, stride: int, downsample: nn.Module | None, c: ResNetConfig,
                 attn: Callable[[int], nn.Module] | None, drop_path: float) -> None:  # fmt: skip
        super().__init__()
        norm, act = get_norm(c.norm), get_act(c.act)
        width = int(planes * (c.width_per_group / 64.0)) * c.groups
        out_chs = planes * self.expansion
        self.conv1 = nn.Conv2d(in_chs, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2d(
            width, width, 3, stride, 1, groups=c.groups, bias=False
        )  # stride here: "ResNet v1.5"
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, out_chs, 1, bias=False)
        self.bn3 = norm(out_chs)
        if attn is not None:
            self.se = attn(out_chs)
        self.act = act()
        self.downsample = downsample
        self.drop_path = DropPath(drop_path)

    def last_norm(self) -> nn.Module:
        return self.bn3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if hasattr(self, "se"):
            out = self.se(out)
        return self.act(self.drop_path(out) + shortcut)


IMAGENET_RESNETS: dict[str, ResNetConfig] = {
    "resnet18": ResNetConfig(block="basic", layers=(2, 2, 2, 2)),
    "resnet34": ResNetConfig(block="basic", layers=(3, 4, 6, 3)),
    "resnet50": ResNetConfig(layers=(3, 4, 6, 3)),
    "resnet101": ResNetConfig(layers=(3, 4, 23, 3)),
    "resnet152": ResNetConfig(layers=(3, 8, 36, 3)),
}
RESNEXTS: dict[str, ResNetConfig] = {
    "resnext50_32x4d": ResNetConfig(layers=(3, 4, 6, 3), groups=32, width_per_group=4),
    "resnext101_32x8d": ResNetConfig(layers=(3, 4, 23, 3), groups=32, width_per_group=8),
}
WIDE_RESNETS: dict[str, ResNetConfig] = {
    "wide_resnet50_2": ResNetConfig(layers=(3, 4, 6, 3), width_per_group=128),
    "wide_resnet101_2": ResNetConfig(layers=(3, 4, 23, 3), width_per_group=128),
}
SE_RESNETS: dict[str, ResNetConfig] = {
    "seresnet50": ResNetConfig(layers=(3, 4, 6, 3), se_ratio=1 / 16),
}
# depth = 6n + 2 with n blocks per stage
CIFAR_RESNETS: dict[str, ResNetConfig] = {
    f"resnet{6 * n + 2}": ResNetConfig(
        num_classes=10, block="basic", layers=(n, n, n), widths=(16, 32, 64), stem="cifar", shortcut="A"
    )
    for n in (3, 5, 7, 9, 18)
}


@register_model(IMAGENET_RESNETS, family="resnet", year=2016,
                paper="Deep Residual Learning for Image Recognition", authors="He et al.")  # fmt: skip
@register_model(RESNEXTS, family="resnet", year=2017,
                paper="Aggregated Residual Transformations for Deep Neural Networks", authors="Xie et al.")  # fmt: skip
@register_model(
    WIDE_RESNETS, family="resnet", year=2016, paper="Wide Residual Networks", authors="Zagoruyko & Komodakis"
)
@register_model(SE_RESNETS, family="resnet", year=2018, paper="Squeeze-and-Excitation Networks", authors="Hu et al.",
                interpolation="bicubic")  # fmt: skip
@register_model(CIFAR_RESNETS, family="cifar_resnet", year=2016, input_size=(3, 32, 32), mean=CIFAR_MEAN,
                std=CIFAR_STD, crop_pct=1.0, paper="Deep Residual Learning for Image Recognition (CIFAR)", authors="He et al.")  # fmt: skip
class ResNet(Classifier):
    stem_conv = "conv1"
    head_layers = ("fc",)

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__(cfg)
        block = BasicBlock if cfg.block == "basic" else Bottleneck
        attn = None
        if cfg.se_ratio > 0:
            attn = lambda chs: SqueezeExcite(chs, make_divisible(chs * cfg.se_ratio, 8), act=get_act(cfg.act))
        chs = cfg.widths[0]
        if cfg.stem == "imagenet":
            self.conv1 = nn.Conv2d(cfg.in_chans, chs, 7, 2, 3, bias=False)
        else:
            self.conv1 = nn.Conv2d(cfg.in_chans, chs, 3, 1, 1, bias=False)
        self.bn1 = get_norm(cfg.norm)(chs)
        self.relu = get_act(cfg.act)()
        self.maxpool = nn.MaxPool2d(3, 2, 1) if cfg.stem == "imagenet" else nn.Identity()

        total, index = sum(cfg.layers), 0
        for i, (depth, planes) in enumerate(zip(cfg.layers, cfg.widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                out_chs = planes * block.expansion
                downsample = None
                if stride != 1 or chs != out_chs:
                    downsample = (
                        ShortcutA(chs, out_chs, stride)
                        if cfg.shortcut == "A"
                        else nn.Sequential(
                            nn.Conv2d(chs, out_chs, 1, stride, bias=False), get_norm(cfg.norm)(out_chs)
                        )
                    )
                dpr = cfg.drop_path_rate * index / max(total - 1, 1)
                blocks.append(block(chs, planes, stride, downsample, cfg, attn, dpr))
                chs, index = out_chs, index + 1
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_stages = len(cfg.layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.drop_rate)
        self.num_features = chs
        self.fc = linear_head(chs, cfg.num_classes)

        init_kaiming(self, linear_std=None)  # He init (fan_out), as the paper's reference code
        if cfg.zero_init_last:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)) and isinstance(m.last_norm(), nn.BatchNorm2d):
                    nn.init.zeros_(m.last_norm().weight)

    def layer_groups(self) -> list[list[nn.Module]]:
        layers = [self.get_submodule(f"layer{i + 1}") for i in range(self.num_stages)]
        return [[self.conv1, self.bn1], *[[block] for layer in layers for block in layer]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(self.num_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)
