"""AlexNet (Krizhevsky et al. 2012) in torchvision's single-tower layout, and ZFNet (Zeiler &
Fergus 2013), which is AlexNet with a 7x7 stride-2 first conv and a strided second conv: the two
are one class and two rows of its conv table. ZFNet's local contrast normalisation is left out,
as torchvision leaves out AlexNet's local response normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Classifier, ModelConfig, stack_groups
from .layers import get_act, linear_head
from .registry import register_model

# (out channels, kernel, stride, padding, max-pool after)
ConvSpec = tuple[int, int, int, int, bool]

ALEXNET_CONVS: tuple[ConvSpec, ...] = (
    (64, 11, 4, 2, True),
    (192, 5, 1, 2, True),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, False),
    (256, 3, 1, 1, True),
)
ZFNET_CONVS: tuple[ConvSpec, ...] = (
    (96, 7, 2, 1, True),
    (256, 5, 2, 0, True),
    (384, 3, 1, 1, False),
    (384, 3, 1, 1, False),
    (256, 3, 1, 1, True),
)


@dataclass(frozen=True)
class AlexNetConfig(ModelConfig):
    convs: tuple[ConvSpec, ...] = ALEXNET_CONVS
    hidden: int = 4096
    act: str = "relu"
    drop_rate: float = 0.5


@register_model(
    {"alexnet": AlexNetConfig()},
    family="alexnet",
    paper="ImageNet Classification with Deep Convolutional Neural Networks",
    authors="Krizhevsky et al.",
    year=2012,
)
@register_model(
    {"zfnet": AlexNetConfig(convs=ZFNET_CONVS)},
    family="alexnet",
    paper="Visualizing and Understanding Convolutional Networks",
    authors="Zeiler & Fergus",
    year=2013,
)
class AlexNet(Classifier):
    stem_conv = "features.0"
    head_layers = ("classifier.6",)

    def __init__(self, cfg: AlexNetConfig) -> None:
        super().__init__(cfg)
        act = get_act(cfg.act)
        layers: list[nn.Module] = []
        chs = cfg.in_chans
        for out, k, s, p, pool in cfg.convs:
            layers += [nn.Conv2d(chs, out, k, s, p), act()]
            if pool:
                layers.append(nn.MaxPool2d(3, 2))
            chs = out
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.num_features = cfg.hidden
        self.classifier = nn.Sequential(
            nn.Dropout(cfg.drop_rate), nn.Linear(chs * 36, cfg.hidden), act(),
            nn.Dropout(cfg.drop_rate), nn.Linear(cfg.hidden, cfg.hidden), act(),
            linear_head(cfg.hidden, cfg.num_classes),
        )  # fmt: skip
        # The paper: weights ~ N(0, 0.01); biases 1 in conv2, 4, 5 and the hidden fcs (a head start for ReLU).
        convs = [m for m in self.features if isinstance(m, nn.Conv2d)]
        for i, m in enumerate([*convs, self.classifier[1], self.classifier[4], self.classifier[6]]):
            if isinstance(m, nn.Identity):
                continue
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.constant_(m.bias, 1.0 if i in (1, 3, 4, 5, 6) else 0.0)

    def layer_groups(self) -> list[list[nn.Module]]:
        return stack_groups(*self.features, *self.classifier[:6])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.avgpool(x), 1)
        x = self.classifier[:6](x)
        return x if pre_logits else self.classifier[6](x)
