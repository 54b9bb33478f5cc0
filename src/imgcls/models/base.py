"""The one interface every model has, and the config every family's config extends.

``forward(x) = forward_head(forward_features(x))``; ``forward_head(x, pre_logits=True)`` gives the
pooled feature vector; ``reset_classifier(n)`` swaps the head(s) named in ``head_layers``;
``stem_conv`` names the stem conv (for adapting ``in_chans`` of pretrained weights).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ..errors import ConfigError, InputShapeError

if TYPE_CHECKING:
    from .registry import ModelInfo


@dataclass(frozen=True)
class ModelConfig:
    """Fields every family has. Family configs subclass this and add their own."""

    num_classes: int = 1000
    in_chans: int = 3

    def validate(self, model: str) -> None:
        for key in ("num_classes", "in_chans"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{model}: {key} must be an int, got {value!r} ({type(value).__name__})")
        if self.num_classes < 0:
            raise ConfigError(
                f"{model}: num_classes must be >= 0 (0 = no classifier), got {self.num_classes}"
            )
        if self.in_chans < 1:
            raise ConfigError(f"{model}: in_chans must be >= 1, got {self.in_chans}")
        for key in ("drop_rate", "drop_path_rate"):
            value = getattr(self, key, None)
            if value is not None and not 0.0 <= value < 1.0:
                raise ConfigError(f"{model}: {key} must be in [0, 1), got {value}")


class Classifier(nn.Module):
    """Base class of every registered model."""

    stem_conv: ClassVar[str] = ""  # dotted name of the stem conv ("first_conv" in the metadata)
    head_layers: ClassVar[tuple[str, ...]] = ()  # dotted names of the head layer(s), main head first
    conv_head: ClassVar[bool] = False  # the main head is a 1x1 conv on the pooled (N, C, 1, 1) map
    info: ModelInfo  # set by build_model

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.in_chans = cfg.in_chans

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.jit.is_scripting() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()):
            self.check_input(x)
        return self.forward_head(self.forward_features(x))

    def forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Main logits and the auxiliary heads' logits (empty for models without them); for training."""
        if not (torch.jit.is_scripting() or torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export()):
            self.check_input(x, aux=True)
        return self._forward_with_aux(x)

    def _forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.forward_head(self.forward_features(x)), []

    @property
    def has_attention(self) -> bool:
        return any(hasattr(m, "keep_attention") for m in self.modules())

    def forward_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and every attention layer's weights, in forward order: (B, heads, N, N) for
        global attention, (B * windows, heads, N, N) for Swin's windows. Conv nets have none
        (use Grad-CAM on ``stem_conv``'s side of the network instead)."""
        layers = [m for m in self.modules() if hasattr(m, "keep_attention")]
        if not layers:
            name = getattr(getattr(self, "info", None), "name", type(self).__name__)
            raise ConfigError(f"{name} has no attention layers (attention maps are for transformers)")
        for m in layers:
            m.keep_attention = True
        try:
            logits = self(x)
            maps = [m.attention for m in layers]
        finally:
            for m in layers:
                m.keep_attention, m.attention = False, None
        return logits, maps

    num_features: int  # width of the pooled feature vector the main head reads; set by each family

    # ---- structure: what freezing and layer-wise rates count -------------------------------------
    def layer_groups(self) -> list[list[nn.Module | nn.Parameter]]:
        """The stem, then each block, in forward order; each group a list of modules (or parameters
        of the model itself, such as ViT's position embedding). Every parameter in no group is the
        head: the classifier and what reads the last block (final norm, pre-logits layers).

        ``--freeze stages:N`` freezes the first N groups (the stem and N-1 blocks); ``--layer-decay d``
        gives group i the rate ``lr * d ** (head - i)``. One definition, declared by each family, so the
        two always agree. (Named after fastai's layer groups: ``blocks`` is a module name in the
        reference layouts of ViT, CCT and MobileNet v1, which a method of that name would hide.)"""
        raise NotImplementedError(f"{type(self).__name__} does not declare its layer groups")

    # ---- what training asks of a model beyond its weights (no-ops unless a family needs them) --------
    fits_data: ClassVar[bool] = False  # True: fit_data() sets layers from the training images before step 1

    @torch.no_grad()
    def fit_data(self, images: torch.Tensor) -> None:
        """Set the layers that are fitted, not learned, from normalised training images (N, C, H, W):
        airbench's whitening filters. Called once before the first step of a run trained from scratch
        when ``fits_data`` is True."""

    def held_parameters(self, epoch: int) -> list[str]:
        """Names of parameters that do not train in ``epoch`` (airbench's batch-norm scales, its whitening
        bias after the first epochs); the rest train as the optimiser says."""
        return []

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that get no weight decay beyond biases and norm weights (which never
        do): learned position embeddings, class tokens, relative-position bias tables."""
        return set()

    def group_ids(self) -> tuple[dict[str, int], int]:
        """({parameter name: group index}, the head's index). 0 is the stem, 1 .. head-1 the blocks of
        ``layer_groups()``, ``head`` = the number of groups, for every parameter in none of them."""
        groups = self.layer_groups()
        owner: dict[int, int] = {}
        for i, group in enumerate(groups):
            for item in group:
                for p in [item] if isinstance(item, nn.Parameter) else item.parameters():
                    owner.setdefault(id(p), i)
        head = len(groups)
        return {name: owner.get(id(p), head) for name, p in self.named_parameters()}, head

    def reset_classifier(self, num_classes: int) -> None:
        """Replace every head with a fresh one of ``num_classes`` outputs (0: identity, pre-logits)."""
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ConfigError(f"num_classes must be an int >= 0, got {num_classes!r}")
        if not hasattr(self, "_head_in"):  # in-features of each head, remembered before any is removed
            self._head_in = {
                name: (self.num_features, self.conv_head)
                if isinstance(self.get_submodule(name), nn.Identity)
                else _head_shape(self.get_submodule(name))
                for name in self.head_layers
            }
        for name in self.head_layers:
            parent, _, leaf = name.rpartition(".")
            setattr(
                self.get_submodule(parent) if parent else self,
                leaf,
                _make_head(*self._head_in[name], num_classes),
            )
        self.num_classes = num_classes

    def check_input(self, x: torch.Tensor, aux: bool = False) -> None:
        """One clear error for an input this model cannot take, instead of a deep shape traceback."""
        name = getattr(getattr(self, "info", None), "name", type(self).__name__)
        if not isinstance(x, torch.Tensor):
            raise InputShapeError(
                f"{name} expects a tensor of shape (N, {self.in_chans}, H, W), got {type(x).__name__}"
            )
        if x.ndim != 4:
            raise InputShapeError(
                f"{name} expects a batch of shape (N, {self.in_chans}, H, W), got shape {tuple(x.shape)}"
                + (" (add a batch dimension: x.unsqueeze(0))" if x.ndim == 3 else "")
            )
        if x.shape[1] != self.in_chans:
            raise InputShapeError(
                f"{name} was built for {self.in_chans}-channel input, got {x.shape[1]} channels "
                f"(shape {tuple(x.shape)}); build it with in_chans={x.shape[1]} or convert the images"
            )
        default = getattr(getattr(self, "info", None), "input_size", None)
        if default is not None and x.shape[2] >= default[1] and x.shape[3] >= default[2]:
            return  # at or above the reference size: nothing to check
        low = min_input_size(self, aux)
        if x.shape[2] < low or x.shape[3] < low:
            raise InputShapeError(
                f"{name} needs inputs of at least {low}x{low} pixels, got {x.shape[2]}x{x.shape[3]}; "
                f"resize the images (its reference size is {default[1]}x{default[2]})"
                if default
                else f"{name} needs inputs of at least {low}x{low} pixels, got {x.shape[2]}x{x.shape[3]}"
            )


class AuxClassifier(Classifier):
    """A classifier with auxiliary heads on intermediate features, used in training only
    (GoogLeNet, Inception v3). The family defines ``_trunk(x, aux)``, which appends the auxiliary
    logits to ``aux`` when it is a list, and a config with ``aux_logits``."""

    def _trunk(self, x: torch.Tensor, aux: list[torch.Tensor] | None) -> torch.Tensor:
        raise NotImplementedError

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x, None)

    def _forward_with_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        aux: list[torch.Tensor] | None = [] if getattr(self.cfg, "aux_logits", False) else None
        logits = self.forward_head(self._trunk(x, aux))
        return logits, aux or []


def stack_groups(*layers: nn.Module) -> list[list[nn.Module]]:
    """Layer groups of a plain stack (LeNet, AlexNet, VGG): each layer with parameters opens a group,
    and a norm joins the group of the layer before it."""
    groups: list[list[nn.Module]] = []
    for m in layers:
        if not any(True for _ in m.parameters()):
            continue
        if groups and isinstance(m, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
            groups[-1].append(m)
        else:
            groups.append([m])
    return groups


def _head_shape(head: nn.Module) -> tuple[int, bool]:
    """(in-features, is a 1x1 conv) of a head layer."""
    if isinstance(head, nn.Linear):
        return head.in_features, False
    if isinstance(head, nn.Conv2d):
        return head.in_channels, True
    raise TypeError(f"classifier layer must be Linear or Conv2d, got {type(head).__name__}")


def _make_head(in_features: int, conv: bool, num_classes: int) -> nn.Module:
    if num_classes == 0:
        return nn.Identity()
    if conv:
        return nn.Conv2d(in_features, num_classes, 1, bias=True)
    return nn.Linear(in_features, num_classes)


def min_input_size(model: Classifier, aux: bool = False) -> int:
    """Smallest square input the model's layers accept (with ``aux``: its auxiliary heads too),
    found by shape-only (meta device) forward passes; cached per architecture and config."""
    return _min_input_size(type(model), model.cfg, aux)


@functools.lru_cache(maxsize=256)
def _min_input_size(cls: type[Classifier], cfg: ModelConfig, aux: bool) -> int:
    with torch.device("meta"), skip_init():
        probe = strip_shape_preserving(cls(cfg).eval())

    def fits(size: int) -> bool:
        x = torch.empty(2, cfg.in_chans, size, size, device="meta")
        try:
            with torch.no_grad():
                probe._forward_with_aux(x) if aux else probe.forward_head(probe.forward_features(x))
            return True
        except RuntimeError:
            return False

    hi = 1  # double up to the first size that fits (failures stop early, so they cost little)
    while not fits(hi):
        hi *= 2
        if hi > 4096:
            return hi
    lo = 0  # does not fit (or is nothing)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


# Layers that keep their input's shape and do no FLOPs in the counter's sense. On the meta device
# their shape rules run as slow Python decompositions (batch norm above all), so shape-only probes
# (minimum input size, FLOP counting) replace them with identities.
SHAPE_PRESERVING = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Hardswish, nn.Hardsigmoid,
                    nn.Sigmoid, nn.Tanh, nn.Mish, nn.ELU, nn.LeakyReLU, nn.Dropout)  # fmt: skip


def strip_shape_preserving(model: nn.Module) -> nn.Module:
    """Replace the ``SHAPE_PRESERVING`` layers of a (meta) probe model by identities, in place."""
    for name, module in list(model.named_modules()):
        if name and isinstance(module, SHAPE_PRESERVING):
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, leaf, nn.Identity())
    return model


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Make the ``torch.nn.init`` functions no-ops for the duration (meta models have no values)."""
    names = [n for n in dir(nn.init) if n.endswith("_") and not n.startswith("_")]
    saved = {n: getattr(nn.init, n) for n in names}
    try:
        for n in names:
            setattr(nn.init, n, _return_tensor)
        yield
    finally:
        for n, fn in saved.items():
            setattr(nn.init, n, fn)


def _return_tensor(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return tensor
