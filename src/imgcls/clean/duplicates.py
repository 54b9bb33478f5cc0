"""Near-duplicate images and train/test leakage, by the cosine similarity of small thumbnails.

Each image becomes a 16 x 16 grey thumbnail (box-filtered from the decoded image), centred and scaled
to unit length, and so do its copies shifted by one pixel every way; two images match when the first's
thumbnail is close to one of the second's. Re-encoding (JPEG quality 60), a shift by a pixel, a small
resize or a change of brightness and contrast move it very little, while two different photos of the same class stay far
apart. (A trained classifier's features would not do: they are made to put every image of a class
close together.) Exact copies are ``imgcls data check``'s; these are the copies that differ in bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.splits import ArraySplit, FileSplit, ShardSplit
from ..errors import ConfigError
from ..progress import track

SIDE = 16
THRESHOLD = 0.97  # cosine similarity at or above which two thumbnails are called the same image


@dataclass(frozen=True)
class Pair:
    a: int  # index in the first set
    b: int  # index in the second (the same set for near-duplicates: a < b)
    similarity: float


SHIFTS = sorted(
    [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)], key=lambda s: s != (0, 0)
)  # (0, 0) first


def _thumbs(grey: torch.Tensor) -> torch.Tensor:
    """(N, len(SHIFTS), SIDE * SIDE) unit-length, zero-mean thumbnails of grey images (N, H, W), each
    also shifted by a pixel every way (edges repeated): a copy shifted by a pixel matches one of them."""
    x = F.pad(grey[:, None].float(), (1, 1, 1, 1), mode="replicate")
    h, w = grey.shape[1:]
    views = [x[:, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in SHIFTS]
    t = torch.stack([F.adaptive_avg_pool2d(v, SIDE).flatten(1) for v in views], 1)
    t = t - t.mean(2, keepdim=True)
    return t / t.norm(dim=2, keepdim=True).clamp_min(1e-6)


def embed(split: ArraySplit | FileSplit | ShardSplit, progress: bool = True) -> torch.Tensor:
    """(N, shifts, SIDE * SIDE) thumbnails of a split's images (``_thumbs``); index 0 is unshifted."""
    if isinstance(split, ShardSplit):
        raise ConfigError(f"near-duplicates need an indexed set, and {split.label} is streamed tar shards")
    if isinstance(split, ArraySplit):
        x = torch.from_numpy(split.images).float()
        grey = x.mean(-1) if x.ndim == 4 else x
        return torch.cat([_thumbs(g) for g in grey.split(4096)])
    out = []
    for i in track(range(len(split)), "thumbnails", disable=not progress):
        grey = torch.from_numpy(np.asarray(split.image(i, "RGB").convert("L"), dtype=np.float32))
        out.append(_thumbs(grey[None])[0])
    return torch.stack(out)


def similar_pairs(a: torch.Tensor, b: torch.Tensor | None = None, threshold: float = THRESHOLD,
                  chunk: int = 512) -> list[Pair]:  # fmt: skip
    """Pairs whose thumbnails have cosine similarity >= threshold (the best over ``b``'s shifts):
    within ``a`` (each pair once), or between ``a`` and ``b`` (leakage). Blank images (no contrast:
    every thumbnail pixel the same) are left out, as they are all alike."""
    same = b is None
    b = a if b is None else b
    a0 = a[:, 0]
    blank_a, blank_b = a0.norm(dim=1) < 0.5, b[:, 0].norm(dim=1) < 0.5
    flat_b = b.reshape(-1, b.shape[2])  # (M * shifts, D)
    pairs = []
    for start in range(0, len(a0), chunk):
        sim = (a0[start : start + chunk] @ flat_b.T).view(-1, b.shape[0], b.shape[1]).amax(2)
        sim[blank_a[start : start + chunk]] = -1
        sim[:, blank_b] = -1
        if same:
            rows = torch.arange(start, start + len(sim))[:, None]
            sim[torch.arange(len(b))[None, :] <= rows] = -1  # a < b, once
        hits = (sim >= threshold).nonzero()
        pairs += [Pair(start + int(i), int(j), float(sim[i, j])) for i, j in hits]
    return sorted(pairs, key=lambda p: -p.similarity)
