"""GoogLeNet / Inception v1 (Szegedy et al. 2015), in torchvision's layout, auxiliary heads included.

torchvision's "5x5" branch uses a 3x3 conv (kept for weight compatibility with its checkpoints);
``branch3_kernel=5`` gives the paper's 5x5.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .base import AuxClassifier, ModelConfig
from .layers import ConvNormAct, get_act, linear_head
from .registry import register_model

# (in, 1x1, 3x3 reduce, 3x3, 5x5 reduce, 5x5, pool proj) of the paper's Table 1
INCEPTIONS: dict[str, tuple[int, ...]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


@dataclass(frozen=True)
class GoogLeNetConfig(ModelConfig):
    aux_logits: bool = True
    branch3_kernel: int = 3
    act: str = "relu"
    drop_rate: float = 0.2
    aux_drop_rate: float = 0.7


class Inception(nn.Module):
    def __init__(self, widths: tuple[int, ...], conv: partial, k5: int) -> None:
        super().__init__()
        cin, c1, c3r, c3, c5r, c5, pool = widths
        self.branch1 = conv(cin, c1, 1)
        self.branch2 = nn.Sequential(conv(cin, c3r, 1), conv(c3r, c3, 3))
        self.branch3 = nn.Sequential(conv(cin, c5r, 1), conv(c5r, c5, k5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), conv(cin, pool, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin: int, num_classes: int, conv: partial, act: str, drop_rate: float) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.conv = conv(cin, 128, 1)
        self.fc1 = nn.Linear(2048, 1024)
        self.act = get_act(act)()
        self.dropout = nn.Dropout(drop_rate)
        self.fc2 = linear_head(1024, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.conv(self.pool(x)), 1)
        return self.fc2(self.dropout(self.act(self.fc1(x))))


@register_model(
    {"googlenet": GoogLeNetConfig()},
    family="googlenet",
    paper="Going Deeper with Convolutions",
    authors="Szegedy et al.",
    year=2015,
)
class GoogLeNet(AuxClassifier):
    stem_conv = "conv1.conv"
    head_layers = ("fc", "aux1.fc2", "aux2.fc2")

    def __init__(self, cfg: GoogLeNetConfig) -> None:
        super().__init__(cfg)
        conv = partial(ConvNormAct, norm=partial(nn.BatchNorm2d, eps=0.001), act=get_act(cfg.act))
        k5 = cfg.branch3_kernel
        self.conv1 = conv(cfg.in_chans, 64, 7, stride=2)
        self.maxpool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2 = conv(64, 64, 1)
        self.conv3 = conv(64, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception3a = Inception(INCEPTIONS["3a"], conv, k5)
        self.inception3b = Inception(INCEPTIONS["3b"], conv, k5)
        self.maxpool3 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.inception4a = Inception(INCEPTIONS["4a"], conv, k5)
        self.inception4b = Inception(INCEPTIONS["4b"], conv, k5)
        self.inception4c = Inception(INCEPTIONS["4c"], conv, k5)
        self.inception4d = Inception(INCEPTIONS["4d"], conv, k5)
        self.inception4e = Inception(INCEPTIONS["4e"], conv, k5)
        self.maxpool4 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.inception5a = Inception(INCEPTIONS["5a"], conv, k5)
        self.inception5b = Inception(INCEPTIONS["5b"], conv, k5)
        if cfg.aux_logits:
            self.aux1 = InceptionAux(512, cfg.num_classes, conv, cfg.act, cfg.aux_drop_rate)
            self.aux2 = InceptionAux(528, cfg.num_classes, conv, cfg.act, cfg.aux_drop_rate)
        else:
            self.head_layers = ("fc",)  # this instance has no aux heads to reset
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.drop_rate)
        self.num_features = 1024
        self.fc = linear_head(1024, cfg.num_classes)
        for m in self.modules():  # the reference's init: truncated normal, std 0.01
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=0.01, a=-2, b=2)

    def layer_groups(self) -> list[list[nn.Module]]:
        names = ["conv1", "conv2", "conv3"] + [
            f"inception{k}" for k in ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
        ]
        return [[getattr(self, n)] for n in names]  # the auxiliary heads are heads

    def _trunk(self, x: torch.Tensor, aux: list[torch.Tensor] | None) -> torch.Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if aux is not None:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if aux is not None:
            aux.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))
        return self.inception5b(self.inception5a(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)
