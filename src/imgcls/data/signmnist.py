"""Sign Language MNIST: ``sign_mnist_train.csv`` and ``sign_mnist_test.csv`` (anywhere under the folder,
as Kaggle's archive nests them, or one CSV file named directly), a header ``label,pixel1,…,pixel784``
and a row per 28 × 28 grey image. Labels are 0 … 24 with no 9 (J) and no 25 (Z): both letters need
motion. The 24 classes are named by their letters ``A`` … ``Y`` without ``J``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .splits import ArraySplit, DataError, DataSource

LETTERS = [chr(ord("A") + i) for i in range(25) if i != 9]  # A … Y without J
INDEX = np.full(26, -1, np.int64)
INDEX[[i for i in range(25) if i != 9]] = np.arange(24)


def read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), class indices int64 (N,)) of one file."""
    with path.open() as f:
        header = f.readline().strip().split(",")
        if header[:2] != ["label", "pixel1"] or len(header) != 785:
            raise DataError(
                f"{str(path)!r}: the header is not label,pixel1,…,pixel784 (it has {len(header)} columns)"
            )
    try:  # numpy's C reader: 27,455 rows in about a second
        data = np.loadtxt(path, np.int64, delimiter=",", skiprows=1, ndmin=2)
    except ValueError:
        raise DataError(f"{str(path)!r}: {_first_bad_row(path)}") from None
    if data.shape[1] != 785:
        raise DataError(f"{str(path)!r} holds no images (only its header)")
    labels, pixels = data[:, 0], data[:, 1:]
    if len(pixels) and (pixels.min() < 0 or pixels.max() > 255):
        raise DataError(f"{str(path)!r}: pixels must be 0 … 255, found {pixels.min()} … {pixels.max()}")
    bad = np.flatnonzero((labels < 0) | (labels > 24) | (labels == 9))
    if len(bad):
        raise DataError(
            f"{str(path)!r} line {bad[0] + 2}: label {labels[bad[0]]}; Sign Language MNIST's are 0 … 24 without 9 (J)"
        )
    return pixels.astype(np.uint8).reshape(-1, 28, 28), INDEX[labels]


def _first_bad_row(path: Path) -> str:
    """Where and how a file numpy could not read goes wrong (the slow path, on error only)."""
    with path.open() as f:
        for number, row in enumerate(f, start=1):
            if number == 1:
                continue
            values = row.strip().split(",")
            if len(values) != 785:
                return f"line {number} has {len(values) - 1} pixels, not 784"
            if not all(v.strip().lstrip("-").isdigit() for v in values):
                return f"line {number} holds a value that is not a whole number"
    return "it is not a CSV of whole numbers"


def open_sign_mnist(root: str, spec: str, options: dict[str, str]) -> DataSource:
    path = Path(root)
    found = {}
    for split in ("train", "test"):
        name = f"sign_mnist_{split}.csv"
        if path.is_file():
            candidates = [path] if path.name == name or (split == "train" and "test" not in path.name) else []
        else:
            candidates = sorted(path.rglob(name))
        if candidates:
            found[split] = candidates[0]
    if not found:
        raise DataError(f"no sign_mnist_train.csv or sign_mnist_test.csv in {root!r}")
    splits = {}
    for split, file in found.items():
        x, y = read_csv(file)
        splits[split] = ArraySplit(x, y, f"{spec} {split}")
    return DataSource(spec, "sign_mnist", list(LETTERS), False, 1, splits)
