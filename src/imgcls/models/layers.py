"""Layers shared by the families: activations and norms by name, conv-norm-act, squeeze-excitation,
drop-path, classifier heads. Module attribute names follow the reference checkpoints."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from ..errors import ConfigError, did_you_mean

LayerFactory = Callable[..., nn.Module]
RELU: LayerFactory = partial(nn.ReLU, inplace=True)

_ACTS: dict[str, LayerFactory] = {
    "relu": partial(nn.ReLU, inplace=True),
    "relu6": partial(nn.ReLU6, inplace=True),
    "leaky_relu": partial(nn.LeakyReLU, 0.1, inplace=True),
    "elu": partial(nn.ELU, inplace=True),
    "gelu": nn.GELU,
    "silu": partial(nn.SiLU, inplace=True),
    "swish": partial(nn.SiLU, inplace=True),
    "mish": partial(nn.Mish, inplace=True),
    "hardswish": partial(nn.Hardswish, inplace=True),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def get_act(name: str) -> LayerFactory:
    """An activation factory by name: ``get_act('gelu')()``."""
    if name not in _ACTS:
        raise ConfigError(
            f"unknown activation {name!r}{did_you_mean(name, _ACTS)} (choose from {', '.join(_ACTS)})"
        )
    return _ACTS[name]


def _group_norm(channels: int, eps: float = 1e-5) -> nn.GroupNorm:
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels, eps=eps)


def _no_norm(channels: int, eps: float = 1e-5) -> nn.Module:
    return nn.Identity()


_NORMS: dict[str, Callable[..., nn.Module]] = {
    "batchnorm": nn.BatchNorm2d,
    "groupnorm": _group_norm,  # 32 groups (fewer when the width is not a multiple of 32)
    "none": _no_norm,
}


def get_norm(name: str, eps: float = 1e-5) -> Callable[[int], nn.Module]:
    """A 2-D normalisation factory by name, called with the channel count."""
    if name not in _NORMS:
        raise ConfigError(
            f"unknown norm {name!r}{did_you_mean(name, _NORMS)} (choose from {', '.join(_NORMS)})"
        )
    return partial(_NORMS[name], eps=eps)


class ConvNormAct(nn.Module):
    """conv -> norm -> act, as torchvision's ``BasicConv2d`` / timm's ``ConvNormAct`` (names: conv, bn)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] | None = None,
        groups: int = 1,
        norm: Callable[[int], nn.Module] = nn.BatchNorm2d,
        act: LayerFactory | None = RELU,
    ) -> None:
        super().__init__()
        if padding is None:  # 'same' for odd kernels at stride 1
            padding = (
                tuple(k // 2 for k in kernel_size) if isinstance(kernel_size, tuple) else kernel_size // 2
            )
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = norm(out_chs)
        self.act = act() if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation (Hu et al. 2018): x * gate(fc2(act(fc1(mean(x))))). Names: fc1, fc2."""

    def __init__(
        self,
        channels: int,
        rd_channels: int,
        act: LayerFactory = RELU,
        gate: LayerFactory = nn.Sigmoid,
    ) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(channels, rd_channels, 1, bias=True)
        self.act = act()
        self.fc2 = nn.Conv2d(rd_channels, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(s))))


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth (Huang et al. 2016): zero whole residual branches per sample, rescale the rest."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def linear_head(in_features: int, num_classes: int) -> nn.Module:
    """A Linear classifier, or Identity when ``num_classes == 0`` (the model then returns features)."""
    return nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of ``divisor``, never going more than 10 % below ``v``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def init_kaiming(module: nn.Module, mode: str = "fan_out", linear_std: float | None = 0.01) -> None:
    """He init for convs (ReLU gain), unit/zero norms, N(0, linear_std) or PyTorch default for linears."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear) and linear_std is not None:
            nn.init.normal_(m.weight, 0.0, linear_std)
            nn.init.zeros_(m.bias)


class ConvNormActSeq(nn.Sequential):
    """conv -> norm -> act as a Sequential: torchvision's ``Conv2dNormActivation`` (names: 0, 1, 2)."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        norm: Callable[[int], nn.Module] | None = nn.BatchNorm2d,
        act: LayerFactory | None = RELU,
        bias: bool = False,
        dilation: int = 1,
    ) -> None:
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, (kernel_size - 1) // 2 * dilation, dilation, groups, bias)
        ]
        if norm is not None:
            layers.append(norm(out_chs))
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an (N, C, H, W) map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = nn.functional.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


class Permute(nn.Module):
    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)
