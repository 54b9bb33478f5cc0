"""Xception (Chollet 2017): Inception taken to the limit, every conv a depthwise-separable one,
in residual blocks. Entry flow (blocks 1-3), middle flow (8 identical blocks), exit flow.
timm's (Cadene's) layout: ``blockN.rep`` holds [relu, sep-conv, bn]... and ``skip``/``skipbn``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Classifier, ModelConfig
from .layers import get_act, linear_head
from .registry import INCEPTION_MEAN, INCEPTION_STD, register_model


@dataclass(frozen=True)
class XceptionConfig(ModelConfig):
    middle_blocks: int = 8
    act: str = "relu"
    drop_rate: float = 0.0


class SeparableConv2d(nn.Module):
    def __init__(
        self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, padding: int = 1
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chs, in_chs, kernel_size, stride, padding, groups=in_chs, bias=False)
        self.pointwise = nn.Conv2d(in_chs, out_chs, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.conv1(x))


class Block(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, reps: int, stride: int, act: str,
                 start_with_relu: bool = True, grow_first: bool = True) -> None:  # fmt: skip
        super().__init__()
        act_layer = get_act(act)
        if out_chs != in_chs or stride != 1:
            self.skip = nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)
            self.skipbn = nn.BatchNorm2d(out_chs)
        else:
            self.skip = None
        widths = [out_chs] * reps if grow_first else [in_chs] * (reps - 1) + [out_chs]
        rep: list[nn.Module] = []
        chs = in_chs
        for i, width in enumerate(widths):
            # the block's input also feeds the skip: its first activation must not be in place
            rep += [
                act_layer() if i > 0 else _not_inplace(act_layer()),
                SeparableConv2d(chs, width),
                nn.BatchNorm2d(width),
            ]
            chs = width
        if not start_with_relu:
            rep = rep[1:]
        if stride != 1:
            rep.append(nn.MaxPool2d(3, stride, 1))
        self.rep = nn.Sequential(*rep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.skip is None else self.skipbn(self.skip(x))
        return self.rep(x) + skip


def _not_inplace(m: nn.Module) -> nn.Module:
    if hasattr(m, "inplace"):
        m.inplace = False
    return m


@register_model(
    {"xception": XceptionConfig()},
    family="xception",
    paper="Xception: Deep Learning with Depthwise Separable Convolutions",
    authors="Chollet",
    year=2017,
    input_size=(3, 299, 299),
    mean=INCEPTION_MEAN,
    std=INCEPTION_STD,
    interpolation="bicubic",
    crop_pct=0.8975,
)
class Xception(Classifier):
    stem_conv = "conv1"
    head_layers = ("fc",)

    def __init__(self, cfg: XceptionConfig) -> None:
        super().__init__(cfg)
        act = get_act(cfg.act)
        self.conv1 = nn.Conv2d(cfg.in_chans, 32, 3, 2, 0, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.act1 = act()
        self.conv2 = nn.Conv2d(32, 64, 3, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.act2 = act()
        # entry flow
        self.block1 = Block(64, 128, 2, 2, cfg.act, start_with_relu=False)
        self.block2 = Block(128, 256, 2, 2, cfg.act)
        self.block3 = Block(256, 728, 2, 2, cfg.act)
        # middle flow: blocks 4 .. 3 + middle_blocks
        self.num_middle = cfg.middle_blocks
        for i in range(cfg.middle_blocks):
            self.add_module(f"block{4 + i}", Block(728, 728, 3, 1, cfg.act))
        # exit flow
        self.add_module(f"block{4 + cfg.middle_blocks}", Block(728, 1024, 2, 2, cfg.act, grow_first=False))
        self.conv3 = SeparableConv2d(1024, 1536)
        self.bn3 = nn.BatchNorm2d(1536)
        self.act3 = act()
        self.conv4 = SeparableConv2d(1536, 2048)
        self.bn4 = nn.BatchNorm2d(2048)
        self.act4 = act()
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.num_features = 2048
        self.fc = linear_head(2048, cfg.num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def layer_groups(self) -> list[list[nn.Module]]:
        blocks = [[self.get_submodule(f"block{i}")] for i in range(1, 5 + self.num_middle)]
        return [
            [self.conv1, self.bn1, self.conv2, self.bn2],
            *blocks,
            [self.conv3, self.bn3],
            [self.conv4, self.bn4],
        ]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        for i in range(1, 5 + self.num_middle):
            x = getattr(self, f"block{i}")(x)
        x = self.act3(self.bn3(self.conv3(x)))
        return self.act4(self.bn4(self.conv4(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(torch.flatten(self.global_pool(x), 1))
        return x if pre_logits else self.fc(x)
