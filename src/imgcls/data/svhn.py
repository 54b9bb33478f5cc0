"""SVHN's cropped digits (Netzer et al. 2011): ``train_32x32.mat``, ``test_32x32.mat`` and, optional,
``extra_32x32.mat`` (531,131 easier digits; ``svhn:DIR?extra=1`` adds them to train). Each holds ``X``,
uint8 (32, 32, 3, N), and ``y`` (N, 1), where **10 stands for the digit 0** (as torchvision maps it);
the classes are ``0`` … ``9``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .matfile import read_mat
from .splits import ArraySplit, DataError, DataSource

CLASSES = [str(d) for d in range(10)]


def load_svhn(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 32, 32, 3), digits int64 (N,)) of ``train``, ``test`` or ``extra``."""
    path = Path(root) / f"{split}_32x32.mat"
    mat = read_mat(path, ["X", "y"])
    x, y = mat["X"], mat["y"].reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != len(y):
        raise DataError(
            f"{str(path)!r}: X is {x.dtype} {x.shape} and y has {len(y)} labels; SVHN's are uint8 "
            "(32, 32, 3, N) with N labels"
        )
    y = y.astype(np.int64)
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise DataError(f"{str(path)!r}: labels run from {y.min()} to {y.max()}; SVHN's are 1 … 10 (10 is 0)")
    y[y == 10] = 0
    return np.ascontiguousarray(x.transpose(3, 0, 1, 2)), y


def open_svhn(root: str, spec: str, options: dict[str, str]) -> DataSource:
    folder = Path(root)
    if not (folder / "train_32x32.mat").is_file() and not (folder / "test_32x32.mat").is_file():
        raise DataError(
            f"no train_32x32.mat or test_32x32.mat in {root!r}: point svhn:DIR at the folder with them"
        )
    splits = {}
    for split in ("train", "test"):
        if (folder / f"{split}_32x32.mat").is_file():
            x, y = load_svhn(folder, split)
            if split == "train" and options.get("extra") in ("1", "true", "yes"):
                ex, ey = load_svhn(folder, "extra")
                x, y = np.concatenate([x, ex]), np.concatenate([y, ey])
            splits[split] = ArraySplit(x, y, f"{spec} {split}")
    return DataSource(spec, "svhn", list(CLASSES), False, 3, splits)
