"""Inception v3 (Szegedy et al. 2016, torchvision's layout, with its auxiliary head) and
Inception v4 (Szegedy et al. 2017, timm's layout). Blocks are named as in the papers' figures."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from .base import AuxClassifier, Classifier, ModelConfig
from .layers import ConvNormAct, get_act, linear_head
from .registry import INCEPTION_MEAN, INCEPTION_STD, register_model


@dataclass(frozen=True)
class InceptionConfig(ModelConfig):
    aux_logits: bool = True  # Inception v3 only
    act: str = "relu"
    drop_rate: float = 0.5  # v3: 0.5 (torchvision); v4: 0.2 (paper keeps 0.8)


def _conv_factory(act: str) -> partial:
    # 'valid' padding unless given: the papers' stems shrink 299 -> 35 without padding
    return partial(ConvNormAct, padding=0, norm=partial(nn.BatchNorm2d, eps=0.001), act=get_act(act))


# ---------------------------------------------------------------------------------------- v3 blocks
class InceptionA(nn.Module):  # Figure 5: 35x35 grid
    def __init__(self, cin: int, pool_features: int, conv: partial) -> None:
        super().__init__()
        self.branch1x1 = conv(cin, 64, 1)
        self.branch5x5_1 = conv(cin, 48, 1)
        self.branch5x5_2 = conv(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = conv(cin, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv(96, 96, 3, padding=1)
        self.branch_pool = conv(cin, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.branch1x1(x), b5, b3, bp], 1)


class InceptionB(nn.Module):  # grid reduction 35 -> 17
    def __init__(self, cin: int, conv: partial) -> None:
        super().__init__()
        self.branch3x3 = conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = conv(cin, 64, 1)
        self.branch3x3dbl_2 = conv(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = conv(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, 3, 2)], 1)


class InceptionC(nn.Module):  # Figure 6: 17x17 grid, factorised 7x7
    def __init__(self, cin: int, c7: int, conv: partial) -> None:
        super().__init__()
        self.branch1x1 = conv(cin, 192, 1)
        self.branch7x7_1 = conv(cin, c7, 1)
        self.branch7x7_2 = conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = conv(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = conv(cin, c7, 1)
        self.branch7x7dbl_2 = conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = conv(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = conv(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = conv(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        d = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(d))))
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.branch1x1(x), b7, d, bp], 1)


class InceptionD(nn.Module):  # grid reduction 17 -> 8
    def __init__(self, cin: int, conv: partial) -> None:
        super().__init__()
        self.branch3x3_1 = conv(cin, 192, 1)
        self.branch3x3_2 = conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = conv(cin, 192, 1)
        self.branch7x7x3_2 = conv(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = conv(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = conv(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)


class InceptionE(nn.Module):  # Figure 7: 8x8 grid, expanded filter banks
    def __init__(self, cin: int, conv: partial) -> None:
        super().__init__()
        self.branch1x1 = conv(cin, 320, 1)
        self.branch3x3_1 = conv(cin, 384, 1)
        self.branch3x3_2a = conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = conv(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = conv(cin, 448, 1)
        self.branch3x3dbl_2 = conv(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = conv(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = conv(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = conv(cin, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.branch1x1(x), b3, d, bp], 1)


class InceptionAux(nn.Module):
    def __init__(self, cin: int, num_classes: int, conv: partial) -> None:
        super().__init__()
        self.conv0 = conv(cin, 128, 1)
        self.conv1 = conv(128, 768, 5)
        self.conv1.conv.stddev = 0.01  # type: ignore[assignment]  # init scale, read by InceptionV3
        self.fc = linear_head(768, num_classes)
        self.fc.stddev = 0.001  # type: ignore[assignment]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(self.conv0(F.avg_pool2d(x, 5, 3)))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model(
    {"inception_v3": InceptionConfig()},
    family="inception",
    paper="Rethinking the Inception Architecture for Computer Vision",
    authors="Szegedy et al.",
    year=2016,
    input_size=(3, 299, 299),
    crop_pct=299 / 342,
)
class InceptionV3(AuxClassifier):
    stem_conv = "Conv2d_1a_3x3.conv"
    head_layers = ("fc", "AuxLogits.fc")

    def __init__(self, cfg: InceptionConfig) -> None:
        super().__init__(cfg)
        conv = _conv_factory(cfg.act)
        self.Conv2d_1a_3x3 = conv(cfg.in_chans, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, 3)
        self.Conv2d_2b_3x3 = conv(32, 64, 3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, 2)
        self.Conv2d_3b_1x1 = conv(64, 80, 1)
        self.Conv2d_4a_3x3 = conv(80, 192, 3)
        self.maxpool2 = nn.MaxPool2d(3, 2)
        self.Mixed_5b = InceptionA(192, 32, conv)
        self.Mixed_5c = InceptionA(256, 64, conv)
        self.Mixed_5d = InceptionA(288, 64, conv)
        self.Mixed_6a = InceptionB(288, conv)
        self.Mixed_6b = InceptionC(768, 128, conv)
        self.Mixed_6c = InceptionC(768, 160, conv)
        self.Mixed_6d = InceptionC(768, 160, conv)
        self.Mixed_6e = InceptionC(768, 192, conv)
        if cfg.aux_logits:
            self.AuxLogits = InceptionAux(768, cfg.num_classes, conv)
        else:
            self.head_layers = ("fc",)
        self.Mixed_7a = InceptionD(768, conv)
        self.Mixed_7b = InceptionE(1280, conv)
        self.Mixed_7c = InceptionE(2048, conv)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(cfg.drop_rate)
        self.num_features = 2048
        self.fc = linear_head(2048, cfg.num_classes)
        for m in self.modules():  # the reference's init: truncated normal, std 0.1 unless a layer says
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(m.weight, std=float(getattr(m, "stddev", 0.1)), a=-2, b=2)

    def layer_groups(self) -> list[list[nn.Module]]:
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "Mixed_5b", "Mixed_5c",
                 "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]  # fmt: skip
        return [[getattr(self, n)] for n in names]  # AuxLogits is a head

    def _trunk(self, x: torch.Tensor, aux: list[torch.Tensor] | None) -> torch.Tensor:
        x = self.maxpool1(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))))
        x = self.maxpool2(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)))
        x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
        x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))))
        if aux is not None:
            aux.append(self.AuxLogits(x))
        return self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.dropout(torch.flatten(self.avgpool(x), 1))
        return x if pre_logits else self.fc(x)


# ---------------------------------------------------------------------------------------- v4 blocks
def _avg_pool_conv(conv: partial, cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), conv(cin, cout, 1))


class Mixed3a(nn.Module):
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.maxpool = nn.MaxPool2d(3, 2)
        self.conv = conv(64, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.maxpool(x), self.conv(x)], 1)


class Mixed4a(nn.Module):
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(conv(160, 64, 1), conv(64, 96, 3))
        self.branch1 = nn.Sequential(
            conv(160, 64, 1),
            conv(64, 64, (1, 7), padding=(0, 3)),
            conv(64, 64, (7, 1), padding=(3, 0)),
            conv(64, 96, 3),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x)], 1)


class Mixed5a(nn.Module):
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.conv = conv(192, 192, 3, stride=2)
        self.maxpool = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.maxpool(x)], 1)


class BlockA(nn.Module):  # Figure 4: 35x35
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.branch0 = conv(384, 96, 1)
        self.branch1 = nn.Sequential(conv(384, 64, 1), conv(64, 96, 3, padding=1))
        self.branch2 = nn.Sequential(conv(384, 64, 1), conv(64, 96, 3, padding=1), conv(96, 96, 3, padding=1))
        self.branch3 = _avg_pool_conv(conv, 384, 96)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ReductionA(nn.Module):  # Figure 7, k=192 l=224 m=256 n=384
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.branch0 = conv(384, 384, 3, stride=2)
        self.branch1 = nn.Sequential(
            conv(384, 192, 1), conv(192, 224, 3, padding=1), conv(224, 256, 3, stride=2)
        )
        self.branch2 = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class BlockB(nn.Module):  # Figure 5: 17x17
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.branch0 = conv(1024, 384, 1)
        self.branch1 = nn.Sequential(
            conv(1024, 192, 1), conv(192, 224, (1, 7), padding=(0, 3)), conv(224, 256, (7, 1), padding=(3, 0))
        )
        self.branch2 = nn.Sequential(
            conv(1024, 192, 1),
            conv(192, 192, (7, 1), padding=(3, 0)),
            conv(192, 224, (1, 7), padding=(0, 3)),
            conv(224, 224, (7, 1), padding=(3, 0)),
            conv(224, 256, (1, 7), padding=(0, 3)),
        )
        self.branch3 = _avg_pool_conv(conv, 1024, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)], 1)


class ReductionB(nn.Module):  # Figure 8
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.branch0 = nn.Sequential(conv(1024, 192, 1), conv(192, 192, 3, stride=2))
        self.branch1 = nn.Sequential(
            conv(1024, 256, 1),
            conv(256, 256, (1, 7), padding=(0, 3)),
            conv(256, 320, (7, 1), padding=(3, 0)),
            conv(320, 320, 3, stride=2),
        )
        self.branch2 = nn.MaxPool2d(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch0(x), self.branch1(x), self.branch2(x)], 1)


class BlockC(nn.Module):  # Figure 6: 8x8
    def __init__(self, conv: partial) -> None:
        super().__init__()
        self.branch0 = conv(1536, 256, 1)
        self.branch1_0 = conv(1536, 384, 1)
        self.branch1_1a = conv(384, 256, (1, 3), padding=(0, 1))
        self.branch1_1b = conv(384, 256, (3, 1), padding=(1, 0))
        self.branch2_0 = conv(1536, 384, 1)
        self.branch2_1 = conv(384, 448, (3, 1), padding=(1, 0))
        self.branch2_2 = conv(448, 512, (1, 3), padding=(0, 1))
        self.branch2_3a = conv(512, 256, (1, 3), padding=(0, 1))
        self.branch2_3b = conv(512, 256, (3, 1), padding=(1, 0))
        self.branch3 = _avg_pool_conv(conv, 1536, 256)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1 = self.branch1_0(x)
        b2 = self.branch2_2(self.branch2_1(self.branch2_0(x)))
        return torch.cat(
            [
                self.branch0(x),
                self.branch1_1a(b1),
                self.branch1_1b(b1),
                self.branch2_3a(b2),
                self.branch2_3b(b2),
                self.branch3(x),
            ],
            1,
        )


@register_model(
    {"inception_v4": InceptionConfig(aux_logits=False, drop_rate=0.2)},
    family="inception",
    paper="Inception-v4, Inception-ResNet and the Impact of Residual Connections on Learning",
    authors="Szegedy et al.",
    year=2017,
    input_size=(3, 299, 299),
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    interpolation="bicubic",
)
class InceptionV4(Classifier):
    stem_conv = "features.0.conv"
    head_layers = ("last_linear",)

    def __init__(self, cfg: InceptionConfig) -> None:
        super().__init__(cfg)
        conv = _conv_factory(cfg.act)
        self.features = nn.Sequential(
            conv(cfg.in_chans, 32, 3, stride=2),
            conv(32, 32, 3),
            conv(32, 64, 3, padding=1),
            Mixed3a(conv),
            Mixed4a(conv),
            Mixed5a(conv),
            *(BlockA(conv) for _ in range(4)),
            ReductionA(conv),
            *(BlockB(conv) for _ in range(7)),
            ReductionB(conv),
            *(BlockC(conv) for _ in range(3)),
        )
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = 1536
        self.last_linear = linear_head(1536, cfg.num_classes)

    def layer_groups(self) -> list[list[nn.Module]]:
        return [[layer] for layer in self.features]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.last_linear(x)
