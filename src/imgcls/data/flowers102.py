"""Oxford Flowers-102 (Nilsback & Zisserman 2008): ``jpg/image_00001.jpg`` …, ``imagelabels.mat``
(``labels``: 1 × N, 1-based classes) and ``setid.mat`` (``trnid``, ``valid``, ``tstid``: 1-based image
numbers of the official train / val / test split, used as they are). The classes are named by their
numbers in the dataset, ``1`` … ``102`` (index i is the dataset's label i + 1, as in torchvision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .matfile import read_mat
from .splits import DataError, DataSource, FileSplit

SPLIT_IDS = {"train": "trnid", "val": "valid", "test": "tstid"}


def open_flowers102(root: str, spec: str, options: dict[str, str]) -> DataSource:
    folder = Path(root)
    if not (folder / "imagelabels.mat").is_file():
        for sub in ("flowers-102", "flowers102"):  # torchvision's folder name, and ours
            if (folder / sub / "imagelabels.mat").is_file():
                folder = folder / sub
    labels = read_mat(folder / "imagelabels.mat", ["labels"])["labels"].reshape(-1).astype(np.int64)
    ids = read_mat(folder / "setid.mat", list(SPLIT_IDS.values()))
    if len(labels) and (labels.min() < 1 or labels.max() > 102):
        raise DataError(
            f"{str(folder / 'imagelabels.mat')!r}: labels run from {labels.min()} to {labels.max()}, not 1 … 102"
        )
    classes = [str(c) for c in range(1, int(labels.max(initial=102)) + 1)]
    splits = {}
    for split, key in SPLIT_IDS.items():
        numbers = ids[key].reshape(-1).astype(np.int64)
        if len(numbers) and (numbers.min() < 1 or numbers.max() > len(labels)):
            raise DataError(f"{str(folder / 'setid.mat')!r}: {key} names images outside 1 … {len(labels)}")
        paths = [str(folder / "jpg" / f"image_{n:05d}.jpg") for n in numbers]
        missing = [p for p in paths[:1] + paths[-1:] if not Path(p).is_file()]
        if missing:
            raise DataError(
                f"{missing[0]!r} is missing: point flowers102:DIR at the folder holding jpg/ and the .mat files"
            )
        splits[split] = FileSplit(paths, labels[numbers - 1] - 1, f"{spec} {split}")
    return DataSource(spec, "flowers102", classes, False, 3, splits)
