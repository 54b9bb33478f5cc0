"""The loaders a training run reads, one per (split, input size, augmented): image loaders over the
data source (the training split shuffled, augmented and spread over the ranks), or for a linear probe
loaders over the backbone's cached pooled features. Built on first use and kept."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch

from ..data.loader import make_loader
from ..features import FeatureLoader, extract

if TYPE_CHECKING:
    from .resolve import ResolvedConfig


class Loaders:
    """``loaders(split, size, augment=True)``: the split's loader at this input size; the training
    split's augments and shuffles unless not ``augment``."""

    def __init__(self, r: ResolvedConfig) -> None:
        self.r = r
        self.built: dict[tuple[str, int, bool], Any] = {}

    def __call__(self, split: str, size: int, augment: bool = True) -> Any:
        key = (split, size, augment)
        if key not in self.built:
            probe = self.r.cfg.model.linear_probe
            self.built[key] = self._features(split) if probe else self._images(split, size, augment)
        return self.built[key]

    def first_images(self, size: int, n: int) -> torch.Tensor:
        """The first ``n`` training images, not augmented, in the seeded order of epoch 0."""
        clean = self("train", size, augment=False)
        clean.set_epoch(0)
        per_batch = max(1, self.r.cfg.batch_size)
        return torch.cat([b.images for b in itertools.islice(clean.iter_from(0), math.ceil(n / per_batch))])[
            :n
        ]

    def merge_bad_images(self, train: Any) -> None:
        """With several ranks each met its own bad files: rank 0 writes them all into ``train``'s report."""
        dist = self.r.dist
        if not dist.enabled or self.r.cfg.data.on_bad_image != "skip" or self.r.cfg.model.linear_probe:
            return
        mine = {
            k: v for ld in self.built.values() if hasattr(ld, "bad_log") for k, v in ld.bad_log.bad.items()
        }
        merged = {k: v for part in dist.gather(mine) for k, v in part.items()}
        if dist.is_main and merged:
            train.bad_log.bad.update(merged)
            train.bad_log.write()

    def _images(self, split: str, size: int, augment: bool) -> Any:
        r, cfg, dist = self.r, self.r.cfg, self.r.dist
        training = split == "train" and augment
        pre = r.pre if size == r.pre.size else replace(r.pre, size=size)
        try:
            more_than_a_batch = len(r.source.split(split)) > cfg.batch_size
        except TypeError:  # streamed shards of unknown length
            more_than_a_batch = True
        return make_loader(
            r.source, split, pre, r.aug if training else None, cfg.batch_size, seed=cfg.seed,
            shuffle=split == "train", workers=r.workers, drop_last=training and more_than_a_batch, rank=dist.rank,
            world=dist.world, on_bad_image=cfg.data.on_bad_image, max_bad_fraction=cfg.data.max_bad_fraction,
            bad_report=r.run.bad_images if dist.is_main else None,
            smoothing=cfg.task.label_smoothing if r.task.kind == "multiclass" else 0.0,
            sample_weights=r.sample_weights if training else None,
            progress=cfg.progress and dist.is_main, device=dist.device,
        )  # fmt: skip

    def _features(self, split: str) -> Any:
        r, cfg = self.r, self.r.cfg
        key = f"{cfg.model.arch}:{json.dumps(cfg.model.model_args, sort_keys=True)}:{r.task.num_outputs}"
        x, y = extract(r.model, r.source, split, r.pre, init=cfg.model.init, key=key,
                       batch_size=max(cfg.batch_size, 128), progress=cfg.progress and r.dist.is_main)  # fmt: skip
        return FeatureLoader(torch.from_numpy(x), torch.from_numpy(y), cfg.batch_size, train=split == "train",
                             seed=cfg.seed, rank=r.dist.rank, world=r.dist.world)  # fmt: skip
