"""EMNIST (Cohen et al. 2017) in its MNIST-format release: ``emnist-SPLIT-{train,test}-images-idx3-ubyte[.gz]``,
``…-labels-idx1-ubyte[.gz]`` and ``emnist-SPLIT-mapping.txt`` (``label ascii [ascii]`` per line), for the
splits byclass, bymerge, balanced, letters, digits and mnist (``emnist:DIR?split=letters``; default
balanced). The images are stored **transposed** (column by column) and are turned the right way round
here; the classes are the characters the mapping names, in its order (letters: ``A`` … ``Z``, their
labels 1 … 26 mapped to 0 … 25)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .mnist import read_idx
from .splits import ArraySplit, DataError, DataSource

SPLITS = ("byclass", "bymerge", "balanced", "letters", "digits", "mnist")


def _find(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        for folder in (root, root / "gzip"):  # the official archive unpacks into gzip/
            if (folder / name).is_file():
                return folder / name
    raise DataError(
        f"no {stem}[.gz] in {str(root)!r}: point emnist:DIR at the folder with EMNIST's IDX files"
    )


def open_emnist(root: str, spec: str, options: dict[str, str]) -> DataSource:
    split = options.get("split", "balanced")
    if split not in SPLITS:
        raise DataError(f"emnist split must be one of {', '.join(SPLITS)}, got {split!r}")
    folder = Path(root)
    mapping_path = _find(folder, f"emnist-{split}-mapping.txt")
    rows = [line.split() for line in mapping_path.read_text().splitlines() if line.strip()]
    labels = [int(r[0]) for r in rows]
    classes = [chr(int(r[1])) for r in rows]
    index = np.full(max(labels) + 1, -1, np.int64)
    index[labels] = np.arange(len(labels))
    splits = {}
    for part in ("train", "test"):
        x = read_idx(_find(folder, f"emnist-{split}-{part}-images-idx3-ubyte"))
        y = read_idx(_find(folder, f"emnist-{split}-{part}-labels-idx1-ubyte")).astype(np.int64)
        if x.ndim != 3 or len(x) != len(y):
            raise DataError(f"EMNIST {split} {part}: {x.shape} images and {len(y)} labels do not pair up")
        if len(y) and (y.min() < 0 or y.max() >= len(index) or (index[y] < 0).any()):
            raise DataError(f"EMNIST {split} {part}: a label that {str(mapping_path)!r} does not name")
        splits[part] = ArraySplit(np.ascontiguousarray(x.transpose(0, 2, 1)), index[y], f"{spec} {part}")
    return DataSource(spec, "emnist", classes, False, 1, splits)
