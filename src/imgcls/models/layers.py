"""Layers shared by the families: activations and norms by name, conv-norm-act, squeeze-excitation,
drop-path, classifier heads. Module attribute names follow the reference checkpoints."""

from __future__ import annotations

import math
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


def init_trunc_normal(
    module: nn.Module, std: float = 0.02, types: tuple[type[nn.Module], ...] = (nn.Linear,)
) -> None:
    """Truncated-normal weights (std 0.02: the ViT-era init) and zero biases for layers of ``types``."""
    for m in module.modules():
        if isinstance(m, types):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


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
            nn.Conv2d(
                in_chs,
                out_chs,
                kernel_size,
                stride,
                (kernel_size - 1) // 2 * dilation,
                dilation,
                groups,
                bias,
            )
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


class Attention(nn.Module):
    """Multi-head self-attention on (B, N, C) tokens (timm names: qkv, proj), computed by
    ``scaled_dot_product_attention``. With ``keep_attention`` set (see
    ``Classifier.forward_attention``) it computes the weights explicitly and keeps them in
    ``attention`` as (B, heads, N, N)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        if dim % num_heads:
            raise ConfigError(f"embedding dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.keep_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``bias``: an additive mask broadcastable to (B, heads, N, N) (relative positions, shifts)."""
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        x = attention(q, k, v, bias, self.attn_drop if self.training else 0.0, self)
        return self.proj_drop(self.proj(merge_heads(x, bias is not None)))


def merge_heads(x: torch.Tensor, masked: bool) -> torch.Tensor:
    """(B, heads, N, head_dim) -> (B, N, heads * head_dim). With a mask, CPU attention returns its output
    in another memory layout than the decomposition torch.export traces, which then cannot view it:
    an explicit copy first keeps the exported graph valid (ONNX export of Swin and CoAtNet)."""
    x = x.transpose(1, 2)
    if masked:
        x = x.clone(memory_format=torch.contiguous_format)
    return x.reshape(*x.shape[:2], -1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None, dropout: float,
              owner: nn.Module) -> torch.Tensor:  # fmt: skip
    """softmax(q k^T / sqrt(d) + bias) v; keeps the weights on ``owner.attention`` when asked."""
    if getattr(owner, "keep_attention", False):
        weights = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
        if bias is not None:
            weights = weights + bias
        weights = weights.softmax(-1)
        owner.attention = weights.detach()
        return nn.functional.dropout(weights, dropout, owner.training) @ v
    return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)


class Mlp(nn.Module):
    """Transformer MLP: fc1 -> act -> dropout -> fc2 -> dropout (timm names)."""

    def __init__(self, dim: int, hidden: int, act: str = "gelu", drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = get_act(act)()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


def resample_pos_embed(
    pos_embed: torch.Tensor,
    grid: tuple[int, int],
    prefix_tokens: int = 1,
    old_grid: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Learned position embeddings (1, prefix + h*w, C) of ``old_grid`` (default: square), bicubically
    resampled to a new (H, W) grid; the prefix (class) tokens are kept as they are."""
    prefix, patches = pos_embed[:, :prefix_tokens], pos_embed[:, prefix_tokens:]
    if old_grid is None:
        side = math.isqrt(patches.shape[1])
        old_grid = (side, side)
    if tuple(old_grid) == tuple(grid):
        return pos_embed
    patches = patches.reshape(1, *old_grid, -1).permute(0, 3, 1, 2).float()
    patches = nn.functional.interpolate(patches, size=grid, mode="bicubic", align_corners=False)
    return torch.cat([prefix, patches.to(pos_embed.dtype).permute(0, 2, 3, 1).flatten(1, 2)], 1)
