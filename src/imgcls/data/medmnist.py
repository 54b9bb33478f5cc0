"""MedMNIST v2 (Yang et al. 2023): one ``.npz`` per dataset (``pathmnist.npz``, ``chestmnist_64.npz`` …)
holding ``train_images``, ``train_labels``, ``val_images``, ``val_labels``, ``test_images``,
``test_labels`` — grey (N, S, S) or colour (N, S, S, 3) uint8 at S = 28, 64, 128 or 224. The official
splits are used as they are. Labels (N, 1) are classes; (N, K) with K > 1 (ChestMNIST's 14 findings)
are multi-label. Class names are the dataset's published ones where the file name says which dataset
it is (``medmnist_labels.json``), else ``0`` … ``K-1``. The ``.npz`` is read with ``allow_pickle=False``:
a file that holds objects is refused, not run."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .splits import ArraySplit, DataError, DataSource

LABELS = json.loads((Path(__file__).with_name("medmnist_labels.json")).read_text())["labels"]


def dataset_name(path: Path) -> str | None:
    """``chestmnist_64.npz`` -> ``chestmnist``; None for a name MedMNIST does not publish."""
    name = re.sub(r"_(28|64|128|224)$", "", path.stem.lower())
    return name if name in LABELS else None


def open_medmnist(root: str, spec: str, options: dict[str, str]) -> DataSource:
    path = Path(root)
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if len(files) != 1:
            raise DataError(
                f"{root!r} holds {len(files)} .npz files: name the one to read, medmnist:{root}/NAME.npz"
            )
        path = files[0]
    if not path.is_file():
        raise DataError(f"{root!r} does not exist: medmnist:FILE.npz names a MedMNIST file")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        raise DataError(f"{str(path)!r} is not a plain .npz of arrays ({e})") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{str(path)!r} is not a readable .npz file ({e}); download it again") from None
    splits, width = {}, None
    for split in ("train", "val", "test"):
        if f"{split}_images" not in arrays:
            continue
        x, y = arrays[f"{split}_images"], arrays.get(f"{split}_labels")
        if y is None:
            raise DataError(f"{str(path)!r} has {split}_images but no {split}_labels")
        y = y.reshape(len(y), -1)
        if (
            x.dtype != np.uint8
            or x.ndim not in (3, 4)
            or (x.ndim == 4 and x.shape[3] != 3)
            or len(x) != len(y)
        ):
            raise DataError(
                f"{str(path)!r}: {split}_images is {x.dtype} {x.shape} with {len(y)} labels; MedMNIST's are uint8 "
                "(N, S, S) or (N, S, S, 3) with N labels"
            )
        if width is not None and y.shape[1] != width:
            raise DataError(f"{str(path)!r}: {split}_labels has {y.shape[1]} columns, the others {width}")
        width = y.shape[1]
        splits[split] = (x, y.astype(np.int64))
    if "train" not in splits:
        raise DataError(f"{str(path)!r} has no train_images: it is not a MedMNIST file")
    multilabel = width is not None and width > 1
    name = dataset_name(path)
    k = width if multilabel else int(max(int(y.max(initial=0)) for _, y in splits.values()) + 1)
    classes = LABELS[name] if name and len(LABELS[name]) >= k else [str(i) for i in range(k)]
    out = {}
    for split, (x, y) in splits.items():
        if multilabel:
            if y.min(initial=0) < 0 or y.max(initial=0) > 1:
                raise DataError(f"{str(path)!r}: multi-label {split}_labels must be 0 or 1")
            targets = y.astype(np.uint8)
        else:
            targets = y[:, 0]
            if len(targets) and targets.min() < 0:
                raise DataError(f"{str(path)!r}: {split}_labels has negative classes")
        out[split] = ArraySplit(x, targets, f"{spec} {split}")
    channels = 3 if splits["train"][0].ndim == 4 else 1
    return DataSource(spec, "medmnist", list(classes), multilabel, channels, out)
