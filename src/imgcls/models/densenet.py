"""DenseNet (Huang et al. 2017): every layer of a dense block sees the concatenation of all
earlier ones; transitions (1x1 conv + 2x2 average pool) halve width and resolution between
blocks. DenseNet-BC (bottleneck, compression 0.5), torchvision's layout."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .base import Classifier, ModelConfig
from .layers import get_act, get_norm, linear_head
from .registry import register_model


@dataclass(frozen=True)
class DenseNetConfig(ModelConfig):
    growth_rate: int = 32  # k: channels each layer adds
    block_config: tuple[int, ...] = (6, 12, 24, 16)  # layers per dense block
    num_init_features: int = 64
    bn_size: int = 4  # bottleneck width = bn_size * k
    compression: float = 0.5  # transition keeps this fraction of the channels
    act: str = "relu"
    norm: str = "batchnorm"
    drop_rate: float = 0.0  # dropout after each dense layer (the paper: 0.2 without augmentation)


class DenseLayer(nn.Module):
    def __init__(self, in_chs: int, c: DenseNetConfig) -> None:
        super().__init__()
        norm, act, mid = get_norm(c.norm), get_act(c.act), c.bn_size * c.growth_rate
        self.norm1 = norm(in_chs)
        self.relu1 = act()
        self.conv1 = nn.Conv2d(in_chs, mid, 1, bias=False)
        self.norm2 = norm(mid)
        self.relu2 = act()
        self.conv2 = nn.Conv2d(mid, c.growth_rate, 3, 1, 1, bias=False)
        self.dropout = nn.Dropout(c.drop_rate)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = self.conv1(self.relu1(self.norm1(torch.cat(features, 1))))
        return self.dropout(self.conv2(self.relu2(self.norm2(x))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, in_chs: int, c: DenseNetConfig) -> None:
        super().__init__(
            {f"denselayer{i + 1}": DenseLayer(in_chs + i * c.growth_rate, c) for i in range(num_layers)}
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_chs: int, out_chs: int, c: DenseNetConfig) -> None:
        super().__init__()
        self.norm = get_norm(c.norm)(in_chs)
        self.relu = get_act(c.act)()
        self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2)


@register_model(
    {
        "densenet121": DenseNetConfig(),
        "densenet161": DenseNetConfig(growth_rate=48, block_config=(6, 12, 36, 24), num_init_features=96),
        "densenet169": DenseNetConfig(block_config=(6, 12, 32, 32)),
        "densenet201": DenseNetConfig(block_config=(6, 12, 48, 32)),
    },
    family="densenet",
    paper="Densely Connected Convolutional Networks",
    authors="Huang et al.",
    year=2017,
)
class DenseNet(Classifier):
    stem_conv = "features.conv0"
    head_layers = ("classifier",)

    def __init__(self, cfg: DenseNetConfig) -> None:
        super().__init__(cfg)
        norm, act = get_norm(cfg.norm), get_act(cfg.act)
        chs = cfg.num_init_features
        self.features = nn.Sequential()
        self.features.add_module("conv0", nn.Conv2d(cfg.in_chans, chs, 7, 2, 3, bias=False))
        self.features.add_module("norm0", norm(chs))
        self.features.add_module("relu0", act())
        self.features.add_module("pool0", nn.MaxPool2d(3, 2, 1))
        for i, num_layers in enumerate(cfg.block_config):
            self.features.add_module(f"denseblock{i + 1}", DenseBlock(num_layers, chs, cfg))
            chs += num_layers * cfg.growth_rate
            if i != len(cfg.block_config) - 1:
                out = int(chs * cfg.compression)
                self.features.add_module(f"transition{i + 1}", Transition(chs, out, cfg))
                chs = out
        self.features.add_module("norm5", norm(chs))
        self.act = act()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = chs
        self.classifier = linear_head(chs, cfg.num_classes)
        for m in self.modules():  # the reference's init
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def layer_groups(self) -> list[list[nn.Module]]:
        f = self.features
        groups: list[list[nn.Module]] = [[f.conv0, f.norm0]]
        for name, m in f.named_children():
            if name.startswith("denseblock"):
                groups += [[layer] for layer in m.children()]
            elif name.startswith("transition"):
                groups.append([m])
        return groups  # norm5 reads the last block: the head's

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.features(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.pool(x), 1)
        return x if pre_logits else self.classifier(x)
