"""The model registry: a name -> (family class, default config, metadata) table.

A family file decorates its model class with ``@register_model(...)`` once per group of variants
that share metadata; each variant is a row of data (a config dataclass), not a subclass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from ..config import coerce
from ..errors import ConfigError, UnknownModelError, did_you_mean
from ..sorting import natural_key
from .base import Classifier, ModelConfig, skip_init

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)


@dataclass(frozen=True)
class ModelInfo:
    """Everything known about a registered model without building it."""

    name: str
    family: str
    paper: str  # title
    authors: str  # "He et al."
    year: int
    model_cls: type[Classifier]
    config: ModelConfig  # the variant's defaults
    input_size: tuple[int, int, int]  # (C, H, W) of the paper / reference
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875  # eval: resize to size / crop_pct, then center-crop `size`

    @property
    def first_conv(self) -> str:
        return self.model_cls.stem_conv

    @property
    def classifier(self) -> tuple[str, ...]:
        return self.model_cls.head_layers

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def in_chans(self) -> int:
        return self.config.in_chans

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "family": self.family,
            "paper": self.paper,
            "authors": self.authors,
            "year": self.year,
            "input_size": list(self.input_size),
            "num_classes": self.num_classes,
            "mean": list(self.mean),
            "std": list(self.std),
            "interpolation": self.interpolation,
            "crop_pct": self.crop_pct,
            "first_conv": self.first_conv,
            "classifier": list(self.classifier),
            "config": dataclasses.asdict(self.config),
        }


_REGISTRY: dict[str, ModelInfo] = {}

C = TypeVar("C", bound=type[Classifier])


def register_model(
    variants: Mapping[str, ModelConfig],
    *,
    family: str,
    paper: str,
    authors: str,
    year: int,
    input_size: tuple[int, int, int] = (3, 224, 224),
    **meta: Any,
) -> Callable[[C], C]:
    """Class decorator: register every ``name -> config`` row of ``variants`` for this class.

    Refuses a name that is already registered. ``input_size`` gives (C, H, W); its channel count
    is replaced by each config's ``in_chans``.
    """

    def decorate(cls: C) -> C:
        for name, config in variants.items():
            if name in _REGISTRY:
                raise ValueError(
                    f"model {name!r} is registered twice ({_REGISTRY[name].model_cls.__name__} and {cls.__name__})"
                )
            if not isinstance(config, ModelConfig):
                raise TypeError(
                    f"variant {name!r} of {cls.__name__}: config must be a ModelConfig, got {type(config).__name__}"
                )
            size = (config.in_chans, input_size[1], input_size[2])
            _REGISTRY[name] = ModelInfo(name, family, paper, authors, year, cls, config, size, **meta)
        return cls

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Registered names matching a shell-style pattern (``'resnet*'``), sorted naturally."""
    _ensure_loaded()
    names = [n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern)]
    return sorted(names, key=natural_key)


def model_info(name: str) -> ModelInfo:
    _ensure_loaded()
    if not isinstance(name, str) or name not in _REGISTRY:
        raise UnknownModelError(
            f"unknown model {name!r}{did_you_mean(str(name), _REGISTRY)} (`imgcls models` lists them all)"
        )
    return _REGISTRY[name]


def build_model(
    name: str,
    num_classes: int | None = None,
    in_chans: int | None = None,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> Classifier:
    """Build a registered model: the architecture alone, initialised as its paper says (no weights).
    ``imgcls.create_model`` (transfer.py) is the public entry: it calls this, then loads weights.

    ``num_classes`` / ``in_chans`` default to the variant's own (1000 / 3 for the ImageNet models,
    10 for the CIFAR ones, 10 / 1 for LeNet-5). Every field of the family's config dataclass can be
    overridden by name (``act="gelu"``, ``drop_rate=0.2`` ...); an unknown name is refused with the
    nearest valid one. ``device="meta"`` builds a shape-only model (used for FLOP counting).
    Randomly initialised: ``imgcls.create_model`` (``imgcls.transfer.create_model``) also loads weights.
    """
    info = model_info(name)
    for key, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name}: {key} must be an int, got {value!r} ({type(value).__name__})")
    if num_classes is not None:
        overrides["num_classes"] = num_classes
    if in_chans is not None:
        overrides["in_chans"] = in_chans
    config = resolve_config(info, overrides)
    if device is not None and torch.device(device).type == "meta":
        with torch.device("meta"), skip_init():  # a shape-only model: initialising it would be wasted work
            model = info.model_cls(config)
    else:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            model = info.model_cls(config)
    model.info = dataclasses.replace(info, config=config, input_size=(config.in_chans, *info.input_size[1:]))
    return model


def resolve_config(info: ModelInfo, overrides: Mapping[str, Any]) -> ModelConfig:
    """The variant's config with ``overrides`` applied and type-checked."""
    fields = {f.name: f for f in dataclasses.fields(info.config)}
    hints = typing.get_type_hints(type(info.config))
    for key, value in overrides.items():
        if key not in fields:
            raise ConfigError(
                f"{info.name} has no option {key!r}{did_you_mean(key, fields)} "
                f"(its options: {', '.join(sorted(fields))})"
            )
        overrides = {**overrides, key: coerce(value, hints[key], f"{info.name}: option {key}")}
    config = dataclasses.replace(info.config, **overrides)
    config.validate(info.name)
    return config


_loaded = False


def _ensure_loaded() -> None:
    """Import the family modules (they register themselves) on first use of the registry."""
    global _loaded
    if not _loaded:
        _loaded = True
        from . import zoo  # noqa: F401
