"""Pretrained weights by name: the catalogue (``catalogue``), the download into the ecosystem's caches
(``download``), and what a weight brings with it — its preprocessing and its class names.

``imgcls.create_model("resnet50", pretrained=True)``, ``imgcls train --pretrained``, ``--init
torchvision:resnet50`` and ``imgcls predict resnet50 photo.jpg`` all come through ``resolve_weights``.
"""

from __future__ import annotations

from pathlib import Path

from .catalogue import UnknownWeightsError, WeightEntry, catalogue, entries, find, is_weight_name, labels
from .download import WeightsDownloadError, WeightsHashError, cached_path, fetch, hub_checkpoints

__all__ = [
    "UnknownWeightsError",
    "WeightEntry",
    "WeightsDownloadError",
    "WeightsHashError",
    "cached_path",
    "catalogue",
    "entries",
    "fetch",
    "find",
    "hub_checkpoints",
    "is_weight_name",
    "labels",
    "preprocess_of",
    "resolve_weights",
]


def resolve_weights(
    spec: str | Path, model: str | None = None, progress: bool = True
) -> tuple[Path, WeightEntry | None]:
    """A weights argument made a local file: an existing path as it is; otherwise a catalogue name
    (``resnet50.tv2_in1k``, ``torchvision:resnet50``, ``timm:TAG``), fetched (or found cached) and
    checked, with its entry."""
    path = Path(spec)
    if path.exists() or not is_weight_name(str(spec), model):
        return path, None
    entry = find(str(spec), model)
    return fetch(entry, progress=progress), entry


def preprocess_of(entry: WeightEntry, source_channels: int = 3, size: int | None = None):
    """The weight's own eval preprocessing as a ``Preprocess`` (at ``size``, the resize scaled with it)."""
    from ..data.pipeline import Preprocess

    pre = entry.preprocess
    size = size or pre.size
    resize = round(pre.resize * size / pre.size)
    return Preprocess(size=size, crop_pct=min(1.0, size / resize), resize=resize, interpolation=pre.interpolation,
                      mean=pre.mean, std=pre.std, source_channels=source_channels, pad_small=False)  # fmt: skip
