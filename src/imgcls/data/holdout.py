"""A seeded, stratified train/val cut for sources that come without a validation split.

Each class gives ``fraction`` of its samples (rounded, and at least one when it has two or more),
so a rare class is not left out of validation by chance. Multi-label rows are grouped by their
rarest label (rows with no label form a group of their own), which keeps every label's share
close to ``fraction`` without an iterative solver. The same targets and seed always give the same
cut, on any machine: it is saved with a run and a resumed run finds it again.
"""

from __future__ import annotations

import numpy as np


def strata(targets: np.ndarray) -> np.ndarray:
    """The group each sample is stratified by: its class, or its rarest label (-1: no label)."""
    if targets.ndim == 1:
        return targets.astype(np.int64)
    counts = targets.sum(0).astype(np.float64)
    rarity = np.where(targets > 0, counts[None, :], np.inf)  # (N, C): a label's frequency where present
    rarest = rarity.argmin(1)
    return np.where(np.isfinite(rarity.min(1)), rarest, -1).astype(np.int64)


def holdout_split(targets: np.ndarray, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, val indices), both sorted, covering every sample exactly once."""
    groups = strata(np.asarray(targets))
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        members = members[rng.permutation(len(members))]
        n_val = round(len(members) * fraction)
        if len(members) >= 2:
            n_val = min(max(n_val, 1), len(members) - 1)  # keep at least one on each side
        val.append(members[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, np.int64)
    train_mask = np.ones(len(groups), bool)
    train_mask[val_idx] = False
    return np.flatnonzero(train_mask), val_idx
