"""ConvNeXt (Liu et al. 2022, "A ConvNet for the 2020s"): a ResNet modernised step by step towards
a Swin Transformer: patchify stem, 7x7 depthwise convs, inverted bottleneck MLPs in channels-last,
LayerNorm, GELU, layer scale, stochastic depth. torchvision's layout."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from .base import Classifier, ModelConfig
from .layers import DropPath, LayerNorm2d, Permute, get_act, init_trunc_normal, linear_head
from .registry import register_model


@dataclass(frozen=True)
class ConvNeXtConfig(ModelConfig):
    dims: tuple[int, ...] = (96, 192, 384, 768)
    depths: tuple[int, ...] = (3, 3, 9, 3)
    kernel_size: int = 7
    mlp_ratio: int = 4
    layer_scale: float = 1e-6
    act: str = "gelu"
    drop_rate: float = 0.0
    drop_path_rate: float = 0.1


class CNBlock(nn.Module):
    def __init__(self, dim: int, c: ConvNeXtConfig, drop_path: float) -> None:
        super().__init__()
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), c.layer_scale))
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, c.kernel_size, padding=c.kernel_size // 2, groups=dim),
            Permute(0, 2, 3, 1),  # (N, H, W, C): LayerNorm and the MLP act on channels
            nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, c.mlp_ratio * dim),
            get_act(c.act)(),
            nn.Linear(c.mlp_ratio * dim, dim),
            Permute(0, 3, 1, 2),
        )
        self.stochastic_depth = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.stochastic_depth(self.layer_scale * self.block(x))


@register_model(
    {
        "convnext_tiny": ConvNeXtConfig(),
        "convnext_small": ConvNeXtConfig(depths=(3, 3, 27, 3), drop_path_rate=0.4),
        "convnext_base": ConvNeXtConfig(dims=(128, 256, 512, 1024), depths=(3, 3, 27, 3), drop_path_rate=0.5),
        "convnext_large": ConvNeXtConfig(
            dims=(192, 384, 768, 1536), depths=(3, 3, 27, 3), drop_path_rate=0.5
        ),
    },
    family="convnext",
    paper="A ConvNet for the 2020s",
    authors="Liu et al.",
    year=2022,
    interpolation="bilinear",
)
class ConvNeXt(Classifier):
    stem_conv = "features.0.0"
    head_layers = ("classifier.2",)

    def __init__(self, cfg: ConvNeXtConfig) -> None:
        super().__init__(cfg)
        norm = partial(LayerNorm2d, eps=1e-6)
        layers: list[nn.Module] = [
            nn.Sequential(nn.Conv2d(cfg.in_chans, cfg.dims[0], 4, 4), norm(cfg.dims[0]))
        ]
        total, index = sum(cfg.depths), 0
        for i, (dim, depth) in enumerate(zip(cfg.dims, cfg.depths)):
            blocks = []
            for _ in range(depth):
                blocks.append(CNBlock(dim, cfg, cfg.drop_path_rate * index / max(total - 1, 1)))
                index += 1
            layers.append(nn.Sequential(*blocks))
            if i + 1 < len(cfg.dims):  # downsampling between stages
                layers.append(nn.Sequential(norm(dim), nn.Conv2d(dim, cfg.dims[i + 1], 2, 2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.num_features = cfg.dims[-1]
        self.classifier = nn.Sequential(
            norm(cfg.dims[-1]), nn.Flatten(1), linear_head(cfg.dims[-1], cfg.num_classes)
        )
        self.head_drop = nn.Dropout(cfg.drop_rate)
        init_trunc_normal(self, types=(nn.Conv2d, nn.Linear))

    def layer_groups(self) -> list[list[nn.Module]]:
        stem, *rest = self.features
        groups: list[list[nn.Module]] = [[stem]]
        for i, layer in enumerate(rest):  # stages at even positions, downsampling between them
            groups += [[block] for block in layer] if i % 2 == 0 else [[layer]]
        return groups

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.classifier[1](self.classifier[0](self.avgpool(x))))
        return x if pre_logits else self.classifier[2](x)
