"""LeNet-5 (LeCun et al. 1998, "Gradient-based learning applied to document recognition"), in the
modern form: conv 6@5x5 -> pool -> conv 16@5x5 -> pool -> fc 120 -> fc 84 -> fc 10.

The paper used tanh-like squashing and trainable subsampling; ``act="tanh", pool="avg"`` comes
closest to it. The default (ReLU + max-pool) trains faster and is what people mean today.
An adaptive pool before the classifier lets it take MNIST's 28x28 as well as the paper's 32x32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .base import Classifier, ModelConfig, stack_groups
from .layers import get_act, linear_head
from .registry import MNIST_MEAN, MNIST_STD, register_model


@dataclass(frozen=True)
class LeNetConfig(ModelConfig):
    num_classes: int = 10
    in_chans: int = 1
    act: str = "relu"
    pool: str = "max"  # "max" or "avg"
    drop_rate: float = 0.0  # dropout before the last two linears

    def validate(self, model: str) -> None:
        super().validate(model)
        if self.pool not in ("max", "avg"):
            raise ConfigError(f"{model}: pool must be 'max' or 'avg', got {self.pool!r}")


@register_model(
    {"lenet5": LeNetConfig()},
    family="lenet",
    paper="Gradient-based learning applied to document recognition",
    authors="LeCun et al.",
    year=1998,
    input_size=(1, 32, 32),
    mean=MNIST_MEAN,
    std=MNIST_STD,
    crop_pct=1.0,
)
class LeNet(Classifier):
    stem_conv = "features.0"
    head_layers = ("classifier.6",)

    def __init__(self, cfg: LeNetConfig) -> None:
        super().__init__(cfg)
        act, pool = get_act(cfg.act), nn.MaxPool2d if cfg.pool == "max" else nn.AvgPool2d
        self.features = nn.Sequential(
            nn.Conv2d(cfg.in_chans, 6, 5), act(), pool(2),
            nn.Conv2d(6, 16, 5), act(), pool(2),
        )  # fmt: skip
        self.pool = nn.AdaptiveAvgPool2d(5)  # identity at 32x32; maps 28x28's 4x4 maps to 5x5
        self.num_features = 84
        self.classifier = nn.Sequential(
            nn.Linear(16 * 5 * 5, 120), act(), nn.Dropout(cfg.drop_rate),
            nn.Linear(120, 84), act(), nn.Dropout(cfg.drop_rate),
            linear_head(84, cfg.num_classes),
        )  # fmt: skip

    def layer_groups(self) -> list[list[nn.Module]]:
        return stack_groups(*self.features, *self.classifier[:6])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        x = self.classifier[:6](x)
        return x if pre_logits else self.classifier[6](x)
