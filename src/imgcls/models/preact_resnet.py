"""Pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks"): norm and
activation come before each conv, so the shortcut path stays a clean identity. One class, three
rows: timm's ``resnetv2_50`` (ImageNet), ``preact_resnet164`` (the paper's CIFAR bottleneck net)
and ``wrn28_10`` (Zagoruyko & Komodakis 2016: pre-activation basic blocks, 10x wider, dropout).

Layout and names follow timm's ResNetV2: ``stem.conv``, ``stages.N.blocks.M.{norm1,conv1,...}``,
``norm``, ``head.fc`` (a 1x1 conv on the pooled map).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .base import Classifier, ModelConfig
from .layers import DropPath, get_act, get_norm, init_kaiming
from .registry import CIFAR_MEAN, CIFAR_STD, register_model


@dataclass(frozen=True)
class PreActConfig(ModelConfig):
    block: str = "bottleneck"  # "basic" or "bottleneck" (4x expansion)
    layers: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (256, 512, 1024, 2048)  # stage output widths
    stem: str = "imagenet"  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": 3x3/1 conv
    stem_width: int = 64
    act: str = "relu"
    norm: str = "batchnorm"
    drop_rate: float = 0.0  # dropout before the classifier
    block_drop_rate: float = 0.0  # dropout between the convs of a block (WRN uses 0.3)
    drop_path_rate: float = 0.0

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.block not in ("basic", "bottleneck") or self.stem not in ("imagenet", "cifar"):
            raise ConfigError(f"{model}: block must be basic|bottleneck and stem imagenet|cifar")
        if len(self.layers) != len(self.widths):
            raise ConfigError(
                f"{model}: layers {self.layers} and widths {self.widths} must have the same length"
            )


class DownsampleConv(nn.Module):
    """1x1 projection of the pre-activated input (no norm: the next block normalises)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PreActBlock(nn.Module):
    """Basic (two 3x3) or bottleneck (1x1, 3x3, 1x1) pre-activation block; stride on the 3x3."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, c: PreActConfig, drop_path: float) -> None:
        super().__init__()
        norm, act = get_norm(c.norm), get_act(c.act)
        self.downsample = (
            DownsampleConv(in_chs, out_chs, stride) if stride != 1 or in_chs != out_chs else None
        )
        self.bottleneck = c.block == "bottleneck"
        mid = out_chs // 4 if self.bottleneck else out_chs
        self.norm1 = norm(in_chs)
        self.act1 = act()
        if self.bottleneck:
            self.conv1 = nn.Conv2d(in_chs, mid, 1, bias=False)
            self.norm2 = norm(mid)
            self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
            self.norm3 = norm(mid)
            self.conv3 = nn.Conv2d(mid, out_chs, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_chs, mid, 3, stride, 1, bias=False)
            self.norm2 = norm(mid)
            self.conv2 = nn.Conv2d(mid, out_chs, 3, 1, 1, bias=False)
        self.act2 = act()
        self.act3 = act()
        self.dropout = nn.Dropout(c.block_drop_rate)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_preact = self.act1(self.norm1(x))
        shortcut = x if self.downsample is None else self.downsample(x_preact)
        x = self.conv1(x_preact)
        if self.bottleneck:
            x = self.conv2(self.act2(self.norm2(x)))
            x = self.conv3(self.dropout(self.act3(self.norm3(x))))
        else:
            x = self.conv2(self.dropout(self.act2(self.norm2(x))))
        return self.drop_path(x) + shortcut


class Stage(nn.Module):
    def __init__(self, blocks: list[nn.Module]) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x)


class Stem(nn.Module):
    def __init__(self, c: PreActConfig) -> None:
        super().__init__()
        if c.stem == "imagenet":
            self.conv = nn.Conv2d(c.in_chans, c.stem_width, 7, 2, 3, bias=False)
            self.pool = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv = nn.Conv2d(c.in_chans, c.stem_width, 3, 1, 1, bias=False)
            self.pool = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


class Head(nn.Module):
    def __init__(self, chs: int, num_classes: int, drop_rate: float) -> None:
        super().__init__()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Conv2d(chs, num_classes, 1) if num_classes > 0 else nn.Identity()


CIFAR = {"input_size": (3, 32, 32), "mean": CIFAR_MEAN, "std": CIFAR_STD, "crop_pct": 1.0}


@register_model(
    {"resnetv2_50": PreActConfig()},
    family="preact_resnet",
    paper="Identity Mappings in Deep Residual Networks",
    authors="He et al.",
    year=2016,
    interpolation="bicubic",
)
@register_model(
    {
        "preact_resnet164": PreActConfig(
            num_classes=10, layers=(18, 18, 18), widths=(64, 128, 256), stem="cifar", stem_width=16
        )
    },
    family="preact_resnet",
    paper="Identity Mappings in Deep Residual Networks (CIFAR)",
    authors="He et al.",
    year=2016,
    **CIFAR,
)
@register_model(
    {
        "wrn28_10": PreActConfig(
            num_classes=10,
            block="basic",
            layers=(4, 4, 4),
            widths=(160, 320, 640),
            stem="cifar",
            stem_width=16,
        )
    },
    family="preact_resnet",
    paper="Wide Residual Networks",
    authors="Zagoruyko & Komodakis",
    year=2016,
    **CIFAR,
)
class PreActResNet(Classifier):
    stem_conv = "stem.conv"
    head_layers = ("head.fc",)
    conv_head = True

    def __init__(self, cfg: PreActConfig) -> None:
        super().__init__(cfg)
        self.stem = Stem(cfg)
        chs, total, index = cfg.stem_width, sum(cfg.layers), 0
        stages = []
        for i, (depth, width) in enumerate(zip(cfg.layers, cfg.widths)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(
                    PreActBlock(chs, width, stride, cfg, cfg.drop_path_rate * index / max(total - 1, 1))
                )
                chs, index = width, index + 1
            stages.append(Stage(blocks))
        self.stages = nn.Sequential(*stages)
        self.norm = get_norm(cfg.norm)(chs)
        self.act = get_act(cfg.act)()
        self.num_features = chs
        self.head = Head(chs, cfg.num_classes, cfg.drop_rate)
        init_kaiming(self, linear_std=None)
        if isinstance(self.head.fc, nn.Conv2d):
            nn.init.normal_(self.head.fc.weight, 0.0, 0.01)
            nn.init.zeros_(self.head.fc.bias)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[self.stem], *[[block] for stage in self.stages for block in stage.blocks]]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.stages(self.stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head.drop(self.head.global_pool(x))
        return torch.flatten(x if pre_logits else self.head.fc(x), 1)
