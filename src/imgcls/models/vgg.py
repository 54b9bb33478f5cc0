"""VGG (Simonyan & Zisserman 2015): stacks of 3x3 convs between max-pools, three fully-connected
layers. Configurations A (11), B (13), D (16), E (19) of the paper's Table 1, with or without batch
norm, in torchvision's layout."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Classifier, ModelConfig, stack_groups
from .layers import get_act, get_norm, init_kaiming, linear_head
from .registry import register_model

M = 0  # a max-pool in the layer table
LAYERS: dict[int, tuple[int, ...]] = {
    11: (64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M),
    13: (64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M),
    16: (64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M),
    19: (64, 64, M, 128, 128, M, 256, 256, 256, 256, M, 512, 512, 512, 512, M, 512, 512, 512, 512, M),
}


@dataclass(frozen=True)
class VGGConfig(ModelConfig):
    layers: tuple[int, ...] = LAYERS[16]  # conv widths, 0 = max-pool
    norm: str = "none"  # "batchnorm" for the _bn variants
    act: str = "relu"
    kernel_size: int = 3  # the paper's configuration C swaps some 3x3 for 1x1; 3 everywhere here
    hidden: int = 4096
    drop_rate: float = 0.5


@register_model(
    {
        f"vgg{depth}{suffix}": VGGConfig(layers=LAYERS[depth], norm=norm)
        for depth in (11, 13, 16, 19)
        for suffix, norm in (("", "none"), ("_bn", "batchnorm"))
    },
    family="vgg",
    paper="Very Deep Convolutional Networks for Large-Scale Image Recognition",
    authors="Simonyan & Zisserman",
    year=2015,
)
class VGG(Classifier):
    stem_conv = "features.0"
    head_layers = ("classifier.6",)

    def __init__(self, cfg: VGGConfig) -> None:
        super().__init__(cfg)
        act, norm = get_act(cfg.act), get_norm(cfg.norm)
        layers: list[nn.Module] = []
        chs = cfg.in_chans
        for width in cfg.layers:
            if width == M:
                layers.append(nn.MaxPool2d(2, 2))
                continue
            layers.append(nn.Conv2d(chs, width, cfg.kernel_size, padding=cfg.kernel_size // 2))
            if cfg.norm != "none":
                layers.append(norm(width))
            layers.append(act())
            chs = width
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.num_features = cfg.hidden
        self.classifier = nn.Sequential(
            nn.Linear(chs * 49, cfg.hidden), act(), nn.Dropout(cfg.drop_rate),
            nn.Linear(cfg.hidden, cfg.hidden), act(), nn.Dropout(cfg.drop_rate),
            linear_head(cfg.hidden, cfg.num_classes),
        )  # fmt: skip
        init_kaiming(self)  # the paper pre-trained shallow nets; He init makes that unnecessary

    def layer_groups(self) -> list[list[nn.Module]]:
        return stack_groups(*self.features, *self.classifier[:6])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        x = self.classifier[:6](x)
        return x if pre_logits else self.classifier[6](x)
