"""Decoded uint8 caches of small-image data sets (model input <= 64 px), the fast path of training.

Images are decoded once, through the eval ``Preprocess`` (the one decode path and geometry), into
an array (N, C, S, S). Arrays from MNIST/CIFAR files are already decoded and stay in memory. Image
folders and label files are decoded by worker processes and the result is saved in the cache folder
(``$IMGCLS_CACHE`` or ``~/.cache/imgcls``) under a key made of every file's path, size and
modification time and the preprocessing, so a second run (or a second epoch of another run) reads
it back in a fraction of a second — memory-mapped when it is larger than ``max_memory`` bytes.
Within a process every loader of the same split and preprocessing shares one array (a run's augmented
training loader and its plain one, for batch-norm statistics, hold the pixels once).
Files that do not decode are left out (under ``on_bad_image=skip``) and remembered with the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from .pipeline import Preprocess
from .samples import BadImageLog, SampleDataset, collate_samples, seed_worker
from .splits import ArraySplit, FileSplit

CACHE_VERSION = 1
_IN_USE: weakref.WeakValueDictionary[str, np.ndarray] = weakref.WeakValueDictionary()  # cache file -> array


def cache_dir() -> Path:
    return Path(os.environ.get("IMGCLS_CACHE") or Path.home() / ".cache" / "imgcls")


def cache_key(split: FileSplit, pre: Preprocess) -> str:
    h = hashlib.sha256(
        json.dumps(
            [
                CACHE_VERSION,
                pre.size,
                pre.crop_pct,
                pre.interpolation,
                pre.mode,
                *([pre.resize] if pre.resize else []),
            ]
        ).encode()
    )
    for p in split.paths:
        try:
            st = os.stat(p)
            h.update(f"{os.path.abspath(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{os.path.abspath(p)}\0missing\n".encode())
    return h.hexdigest()[:32]


def decoded_pixels(
    split: ArraySplit | FileSplit,
    pre: Preprocess,
    bad_log: BadImageLog,
    *,
    workers: int = 0,
    folder: Path | None = None,
    max_memory: int = 4 << 30,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 pixels (N, C, S, S), indices of the samples that decoded)."""
    if isinstance(split, ArraySplit):
        return _from_arrays(split, pre), np.arange(len(split))
    folder = folder or cache_dir()
    key = cache_key(split, pre)
    data, meta = folder / f"{key}.npy", folder / f"{key}.json"
    if data.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        bad_log.add([(b["file"], b["reason"]) for b in info["bad"]])
        pixels = _IN_USE.get(str(data))
        if pixels is None:
            pixels = np.load(data, mmap_mode="r" if data.stat().st_size > max_memory else None)
            _IN_USE[str(data)] = pixels
        return pixels, np.asarray(info["keep"], dtype=np.int64)
    pixels, keep, bad = _decode_files(split, pre, bad_log, workers, progress)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{key}.{os.getpid()}.tmp.npy"
    np.save(tmp, pixels)
    os.replace(tmp, data)
    meta_tmp = meta.with_suffix(f".{os.getpid()}.tmp")
    meta_tmp.write_text(json.dumps({"source": split.label, "keep": keep.tolist(), "bad": bad}))
    os.replace(meta_tmp, meta)
    _IN_USE[str(data)] = pixels
    return pixels, keep


def _from_arrays(split: ArraySplit, pre: Preprocess) -> np.ndarray:
    images = split.images
    n, h, w = images.shape[:3]
    channels = 1 if images.ndim == 3 else images.shape[3]
    want = 1 if pre.mode == "L" else 3
    if channels == want and (h, w) == (pre.size, pre.size):
        return np.ascontiguousarray(images.reshape(n, h, w, want).transpose(0, 3, 1, 2))
    if (
        channels == want
        and pre.pad_small
        and h <= pre.size
        and w <= pre.size
        and min(h, w) * 4 >= pre.size * 3
    ):
        # the geometry pads a small image onto a black canvas (MNIST's 28 px for LeNet-5's 32): one
        # array operation gives what Pillow's CenterCrop gives image by image
        top, left = (pre.size - h) // 2, (pre.size - w) // 2
        out = np.zeros((n, want, pre.size, pre.size), np.uint8)
        out[:, :, top : top + h, left : left + w] = images.reshape(n, h, w, want).transpose(0, 3, 1, 2)
        return out
    out = np.empty((n, want, pre.size, pre.size), np.uint8)
    for i in range(n):  # Pillow's conversions and geometry, exactly as the predict path
        out[i] = pre.pixels(split.image(i, pre.mode)).numpy()
    return out


def _decode_files(
    split: FileSplit, pre: Preprocess, bad_log: BadImageLog, workers: int, progress: bool
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    from ..progress import track

    want = 1 if pre.mode == "L" else 3
    pixels = np.empty((len(split), want, pre.size, pre.size), np.uint8)
    ok = np.zeros(len(split), bool)
    bad: list[dict] = []
    dataset = SampleDataset(split, pre, None, 0)
    chunks = [[(0, i) for i in range(s, min(s + 256, len(split)))] for s in range(0, len(split), 256)]
    loader = DataLoader(
        dataset, batch_sampler=chunks, num_workers=workers, collate_fn=collate_samples,
        worker_init_fn=seed_worker if workers else None, generator=torch.Generator(),
    )  # fmt: skip
    for x, index, failed in track(loader, f"decoding {split.label}", total=len(chunks), disable=not progress):
        found = [(split.name(i), r) for i, r in failed]
        bad_log.add(found)
        bad += [{"file": n, "reason": r} for n, r in found]
        if x is not None:
            idx = np.asarray(index)
            pixels[idx] = x.numpy()
            ok[idx] = True
    keep = np.flatnonzero(ok)
    return pixels, keep, bad
