"""What every data source becomes: class names, a task hint and splits ("train", "val", "test").

Three kinds of split hold the samples:
- ``ArraySplit``: decoded uint8 images already in memory (MNIST IDX files, CIFAR batches);
- ``FileSplit``: image files and their targets (image folders, CSV/JSON label files);
- ``ShardSplit``: tar shards in WebDataset layout, streamed (data that does not fit in memory).

Targets are class indices (int64, shape (N,)) for single-label data and multi-hot rows
(uint8, shape (N, classes)) for multi-label data. Class names are in a stable natural order
('2' before '10'), the order a run saves in ``labels.json``. The readers (folder.py, labelfile.py,
shards.py, mnist.py, cifar.py, svhn.py, stl10.py, flowers102.py, signmnist.py, medmnist.py) build these;
``source.open_source`` picks the reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ConfigError, ImgclsError
from .decode import decode_image
from .holdout import holdout_split

SPLITS = ("train", "val", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "test": "test", "testing": "test"}  # fmt: skip


class DataError(ImgclsError, ValueError):
    """A data source that cannot be opened as given."""


@dataclass
class ArraySplit:
    """Decoded images in memory: uint8 (N, H, W) for gray or (N, H, W, 3) for RGB."""

    images: np.ndarray
    targets: np.ndarray
    label: str  # how errors and reports name this split, e.g. "mnist:data/mnist train"

    def __len__(self) -> int:
        return len(self.targets)

    def name(self, i: int) -> str:
        return f"{self.label} #{i}"

    def image(self, i: int, mode: str = "RGB", draft: tuple[int, int] | None = None) -> Image.Image:
        img = Image.fromarray(self.images[i])
        return img if img.mode == mode else img.convert(mode)

    def subset(self, index: Sequence[int] | np.ndarray) -> ArraySplit:
        index = np.asarray(index, dtype=np.int64)
        return ArraySplit(self.images[index], self.targets[index], self.label)


@dataclass
class FileSplit:
    """Image files (absolute or cwd-relative paths) and their targets."""

    paths: list[str]
    targets: np.ndarray
    label: str

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        return self.paths[i]

    def read(self, i: int) -> bytes:
        return Path(self.paths[i]).read_bytes()

    def image(self, i: int, mode: str = "RGB", draft: tuple[int, int] | None = None) -> Image.Image:
        return decode_image(self.paths[i], mode, draft=draft)

    def subset(self, index: Sequence[int] | np.ndarray) -> FileSplit:
        index = np.asarray(index, dtype=np.int64)
        return FileSplit([self.paths[i] for i in index], self.targets[index], self.label)


@dataclass
class ShardSplit:
    """Tar shards, streamed. ``length`` is known when the shards came with a ``labels.json``.

    ``holdout`` = (seed, fraction, keep) makes a split of the stream by a seeded hash of each
    sample's key: keep="train" passes the samples outside the held-out fraction, "val" the others.
    """

    urls: list[str]
    length: int | None
    label: str
    holdout: tuple[int, float, str] | None = None

    def __len__(self) -> int:
        if self.length is None:
            raise TypeError(f"the number of samples in {self.label} is unknown (no labels.json with it)")
        if self.holdout is None:
            return self.length
        _, fraction, keep = self.holdout
        n_val = round(self.length * fraction)
        return n_val if keep == "val" else self.length - n_val  # expected, not exact


Split = ArraySplit | FileSplit | ShardSplit


@dataclass
class DataSource:
    spec: str  # as the user wrote it
    kind: str  # the reader: "mnist" | "cifar10" | "svhn" | "stl10" | "medmnist" | ... | "folder" | "labels" | "shards"
    classes: list[str]
    multilabel: bool
    channels: int  # of the stored images: 1 (MNIST-format) or 3
    splits: dict[str, Split] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what opening it noticed (ignored files...)
    class_ids: list[str] | None = (
        None  # the dataset's own ids of the classes (ImageNet's synsets), if it has them
    )

    def __post_init__(self) -> None:
        self.splits = {k: self.splits[k] for k in sorted(self.splits, key=lambda k: (*SPLITS, k).index(k))}

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def task(self) -> str:
        """The task the data implies: multilabel (label lists), binary (two classes) or multiclass."""
        return "multilabel" if self.multilabel else ("binary" if self.num_classes == 2 else "multiclass")

    def too_few_classes(self) -> str | None:
        """Why this data cannot train a classifier (fewer than two classes), with what to do; else None."""
        if self.multilabel or self.num_classes >= 2:
            return None
        if not self.classes:
            return f"{self.spec} has no classes: put images in one folder per class (ROOT/CLASS/*.jpg)"
        name = self.classes[0]
        return (f"{self.spec} has one class, {name!r}: a classifier needs at least two. Add a folder of other "
                f"images beside it as a second class (for example not_{name}/, with images that are not {name}) "
                "so that the model learns to tell them apart")  # fmt: skip

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(f"{self.spec} has no {name!r} split (it has: {', '.join(self.splits)})")
        return self.splits[name]

    def with_val(self, fraction: float = 0.1, seed: int = 0) -> DataSource:
        """This source with a "val" split: its own if it has one, else a seeded stratified cut of train;
        with ``fraction`` 0 and no val split of its own, as it is (every training image trains)."""
        if "val" in self.splits or fraction == 0:
            return self
        if not 0 < fraction < 1:
            raise ConfigError(
                f"the validation fraction must be in [0, 1) (0: no validation, every training image trains), got {fraction}"
            )
        train = self.split("train")
        if isinstance(train, ShardSplit):
            splits = dict(self.splits)
            splits["train"] = replace(train, holdout=(seed, fraction, "train"))
            splits["val"] = replace(train, holdout=(seed, fraction, "val"), label=train.label + " (held out)")
        else:
            train_idx, val_idx = holdout_split(train.targets, fraction, seed)
            splits = {"train": train.subset(train_idx), "val": train.subset(val_idx)}
            splits["val"].label = train.label + " (held out)"
            splits.update({k: v for k, v in self.splits.items() if k not in ("train", "val")})
        return replace(self, splits=splits)


def encode_targets(labels: Sequence[Sequence[str]], classes: list[str], multilabel: bool) -> np.ndarray:
    """Per-sample label lists -> class indices (N,) or multi-hot rows (N, C)."""
    index = {c: i for i, c in enumerate(classes)}
    if not multilabel:
        return np.fromiter((index[ls[0]] for ls in labels), dtype=np.int64, count=len(labels))
    out = np.zeros((len(labels), len(classes)), dtype=np.uint8)
    for row, ls in enumerate(labels):
        out[row, [index[c] for c in ls]] = 1
    return out
