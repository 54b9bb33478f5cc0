"""The model ``imgcls train`` picks when ``--model`` is not given, from what the data looks like.

- Small images (the median shorter side of a sample of the training images is at most 64 px: MNIST,
  CIFAR, icons): ``resnet20``, the CIFAR ResNet of He et al. (0.27 M parameters, 91 % on CIFAR-10 in
  its paper's recipe), at its own 32 px: small inputs lose nothing, and it trains in minutes here.
- Anything larger (photos), or shards whose images are not looked at: ``resnet18`` at 224 px — batch
  norm and plain convolutions train stably from scratch on a few hundred images, and it is the
  fastest of the 224-px nets to train per accuracy on a CPU (benchmarks/bench_cpu.md). From
  ImageNet weights (``--init resnet18.tv_in1k``) it does far better on photos, when they can be had.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..data.splits import ArraySplit, DataSource, FileSplit

SMALL_SIDE = 64  # px: at most this (median shorter side) is "small images"
SAMPLE = 32  # image files whose headers are read


def typical_side(source: DataSource) -> int | None:
    """The median shorter side of the training images (a sample of the files' headers; no pixels
    decoded), or None when they cannot be looked at (streamed shards, unreadable files)."""
    train = source.split("train")
    if isinstance(train, ArraySplit):
        return int(min(train.images.shape[1:3]))
    if not isinstance(train, FileSplit) or not len(train):
        return None
    sides = []
    for i in np.linspace(0, len(train) - 1, min(SAMPLE, len(train))).round().astype(int):
        try:
            with Image.open(train.paths[i]) as img:
                sides.append(min(img.size))
        except (OSError, UnidentifiedImageError):
            continue
    return int(np.median(sides)) if sides else None


def default_model(source: DataSource) -> tuple[str, str]:
    """(model name, why it was chosen) for this data."""
    side = typical_side(source)
    try:
        seen = f"{len(source.split('train')):,} training images"
    except TypeError:  # streamed shards of unknown length
        seen = "training images"
    if side is not None and side <= SMALL_SIDE:
        return "resnet20", (
            f"{seen} of about {side} px: the CIFAR ResNet-20 at 32 px (small images; 0.27 M parameters)"
        )
    about = f" of about {side} px" if side is not None else ""
    return "resnet18", (
        f"{seen}{about}: ResNet-18 at 224 px from scratch (photos; stable with batch norm, fast to train "
        "on a CPU); --init resnet18.tv_in1k starts it from ImageNet weights, much better on photos"
    )
