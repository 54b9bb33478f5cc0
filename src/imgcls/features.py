"""Pooled features of a backbone (``forward_head(pre_logits=True)``: what the classifier sees), for
``imgcls features`` and the linear probe. Extracted once per (weights, model, data split,
preprocessing) and cached as ``.npz`` in the cache folder, so a second probe or export is instant."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .amp import autocast
from .data.loader import Batch, BatchPlan, IndexedLoader, make_loader
from .data.pipeline import Preprocess, preprocess_for
from .data.splits import DataSource
from .errors import ConfigError
from .run import RunFolder


def _weights_stamp(init: str) -> str:
    if not init:
        return "random-init"
    p = Path(init)
    if not p.exists():
        from .pretrained import cached_path, find, is_weight_name

        if is_weight_name(init):  # catalogue weights: the file they were fetched to (hash-named)
            p = cached_path(find(init)) or p
    p = RunFolder(p).weights if p.is_dir() else p
    st = p.stat()
    return f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def backbone(
    weights: str, channels: int, model: str | None = None, img_size: int | None = None
) -> tuple[torch.nn.Module, Preprocess, str]:
    """(the model of ``weights`` — a run folder, a weights file or a catalogue name — loaded, in eval
    mode; its preprocessing for data of ``channels``; a key naming model and config, for caches)."""
    from .models import build_model, model_info
    from .models.base import skip_init
    from .pretrained import find, is_weight_name, preprocess_of
    from .transfer import load_pretrained, read_state_dict

    named = not Path(weights).exists() and is_weight_name(weights, model)
    entry = find(weights, model) if named else None
    meta = None if entry else read_state_dict(weights)[1]
    name = model or (meta.model if meta else entry.model if entry else None)
    if not name:
        raise ConfigError(f"{weights!r} does not say which model it is: give --model NAME")
    pre = preprocess_for(model_info(name), channels, img_size)
    if entry and pre.color_space == "rgb":  # the weights' own preprocessing
        pre = preprocess_of(entry, channels, pre.size)
    model_args = meta.model_args if meta else {}
    with torch.no_grad():
        with skip_init():
            net = build_model(name, num_classes=meta.num_outputs if meta else None, in_chans=pre.channels,
                               **model_args)  # fmt: skip
        load_pretrained(net, weights, verbose=False)
    return net.eval(), pre, f"{name}:{json.dumps(model_args, sort_keys=True)}"


@torch.no_grad()
def extract(
    model: torch.nn.Module,
    source: DataSource,
    split: str,
    pre: Preprocess,
    *,
    init: str = "",
    key: str = "",
    batch_size: int = 128,
    precision: str = "fp32",
    progress: bool = True,
    cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(features (N, D) float32, targets) of one split, in the split's order (eval preprocessing)."""
    from .progress import track

    stamp = json.dumps(
        [_weights_stamp(init), key, source.spec, split, pre.to_dict(), precision], sort_keys=True
    )
    folder = Path(os.environ.get("IMGCLS_CACHE") or Path.home() / ".cache" / "imgcls") / "features"
    path = folder / (hashlib.sha256(stamp.encode()).hexdigest()[:24] + ".npz")
    if cache and path.is_file():
        with np.load(path) as f:
            return f["features"], f["targets"]
    loader = make_loader(source, split, pre, None, batch_size)
    model.eval()
    device = next(model.parameters()).device
    feats, targets = [], []
    for batch in track(loader, f"features of {split}", disable=not progress, unit="batch"):
        with autocast(device, precision):
            f = model.forward_head(model.forward_features(batch.images.to(device)), pre_logits=True)
        feats.append(f.float().cpu().numpy())
        targets.append(batch.targets.numpy())
    features, target = np.concatenate(feats), np.concatenate(targets)
    if cache:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp-{os.getpid()}.npz")
        np.savez(tmp, features=features, targets=target)
        os.replace(tmp, path)
    return features, target


def classifier_layer(model: torch.nn.Module) -> torch.nn.Module:
    """The final layer that maps pooled features to outputs (the first of ``head_layers``)."""
    heads = getattr(model, "head_layers", ())
    if not heads:
        raise ValueError(f"{type(model).__name__} names no classifier layer")
    return model.get_submodule(heads[0])


def save_npz(
    path: str | Path, splits: dict[str, tuple[np.ndarray, np.ndarray]], meta: dict[str, Any]
) -> None:
    arrays = {}
    for name, (f, t) in splits.items():
        arrays[f"{name}_features"], arrays[f"{name}_targets"] = f, t
    np.savez(path, **arrays, meta=np.array(json.dumps(meta)))


class FeatureLoader(IndexedLoader):
    """Batches of cached features (N, D) and their targets, with the loaders' interface and their
    ``BatchPlan`` (seeded order, rank share): a linear probe trains through the same loop."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor, batch_size: int, train: bool, seed: int = 0,
                 rank: int = 0, world: int = 1) -> None:  # fmt: skip
        self.features, self.targets, self.epoch = features, targets, 0
        self.plan = BatchPlan(batch_size, train, seed, False, rank, world, evaluation=not train)

    @property
    def size(self) -> int:
        return len(self.targets)

    def iter_from(self, start: int) -> Iterator[Batch]:
        for idx in self.plan.batches(len(self.targets), self.epoch, start):
            i = torch.from_numpy(idx.astype(np.int64))
            yield Batch(self.features[i], self.targets[i], i)
