"""ILSVRC-2012 (ImageNet-1k) as people have it: ``train/SYNSET/*.JPEG`` and the validation images either
in ``val/SYNSET/`` folders or **flat** in ``val/``, labelled by the devkit
(``ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt`` + ``meta.mat``) or by Kaggle's
files (``LOC_val_solution.csv`` + ``LOC_synset_mapping.txt``). Kaggle's ``ILSVRC/Data/CLS-LOC/`` image
root is found by itself.

Classes are in sorted-synset order — the order of every published ImageNet checkpoint, so class i here
is output i of torchvision's and timm's weights — and named by the synset's first name ("tench",
"goldfish", …; for the 1,000 standard synsets exactly the catalogue's names, which tell apart the two
"crane"s and "maillot"s). The synset ids are kept (``DataSource.class_ids``, a run's ``labels.json``).

Listing is one ``os.scandir`` per folder (no stat per file): 1.28 M files list in seconds, not minutes.
For training under torchrun, write shards once (``imgcls data shard imagenet:DIR OUT``) and train from
them: every process then streams its own shards instead of listing and opening a million files."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from .folder import is_image_name
from .matfile import read_mat
from .splits import DataError, DataSource, FileSplit

HERE = Path(__file__).parent
STANDARD = HERE.joinpath("imagenet_synsets.txt").read_text().split()  # the 1,000 synsets, sorted
DEVKIT = "ILSVRC2012_devkit_t12"


def standard_names() -> dict[str, str]:
    """The catalogue's ImageNet-1k names by synset (the names pretrained weights' outputs carry)."""
    names = (HERE.parent / "pretrained" / "imagenet_1k.txt").read_text().splitlines()
    return dict(zip(STANDARD, names))


def image_root(root: Path) -> Path:
    for candidate in (root, root / "ILSVRC" / "Data" / "CLS-LOC"):
        if (candidate / "train").is_dir() or (candidate / "val").is_dir():
            return candidate
    raise DataError(
        f"no train/ or val/ folder in {str(root)!r}: point imagenet:DIR at the folder that holds them"
    )


def looks_like_imagenet(root: Path) -> bool:
    """An ILSVRC-style tree: Kaggle's CLS-LOC layout, or a train/ folder of synset-named folders."""
    if (root / "ILSVRC" / "Data" / "CLS-LOC").is_dir():
        return True
    train = root / "train"
    if not train.is_dir():
        return False
    with os.scandir(train) as it:
        first = next((e.name for e in it if e.is_dir() and not e.name.startswith(".")), "")
    return len(first) == 9 and first.startswith("n") and first[1:].isdigit()


def list_images(folder: str) -> list[str]:
    """The image files directly in ``folder``, sorted by name (one scandir, no stat)."""
    with os.scandir(folder) as it:
        return sorted(e.path for e in it if is_image_name(e.name) and not e.name.startswith("."))


def synset_folders(split_dir: Path) -> dict[str, str]:
    with os.scandir(split_dir) as it:
        return {e.name: e.path for e in it if e.is_dir() and e.name.startswith("n") and e.name[1:].isdigit()}


def _mapping_names(root: Path) -> dict[str, str]:
    """First names of synsets from the files that come with the download (Kaggle's mapping, the devkit)."""
    for folder in (root, root.parent, root.parent.parent.parent):
        kaggle = folder / "LOC_synset_mapping.txt"
        if kaggle.is_file():
            rows = [line.split(" ", 1) for line in kaggle.read_text().splitlines() if line.strip()]
            return {r[0]: r[1].split(",")[0].strip() for r in rows if len(r) == 2}
    meta = _devkit(root) / "data" / "meta.mat"
    if meta.is_file():
        synsets = read_mat(meta, ["synsets"])["synsets"].reshape(-1)
        return {str(s["WNID"].item()): str(s["words"].item()).split(",")[0].strip() for s in synsets}
    return {}


def _devkit(root: Path) -> Path:
    for folder in (root, root.parent):
        if (folder / DEVKIT).is_dir():
            return folder / DEVKIT
    return root / DEVKIT


def _flat_val_labels(root: Path, files: list[str]) -> dict[str, str]:
    """{file name: synset} of a flat val/ folder, from Kaggle's solution file or the devkit."""
    for folder in (root, root.parent, root.parent.parent.parent):
        solution = folder / "LOC_val_solution.csv"
        if solution.is_file():
            with solution.open(newline="") as f:
                return {
                    row["ImageId"] + ".JPEG": row["PredictionString"].split()[0] for row in csv.DictReader(f)
                }
    devkit = _devkit(root) / "data"
    truth = devkit / "ILSVRC2012_validation_ground_truth.txt"
    if truth.is_file():
        ids = [int(v) for v in truth.read_text().split()]
        synsets = read_mat(devkit / "meta.mat", ["synsets"])["synsets"].reshape(-1)
        by_id = {int(s["ILSVRC2012_ID"].item()): str(s["WNID"].item()) for s in synsets}
        # the ground truth's line k labels ILSVRC2012_val_{k:08d}.JPEG
        return {f"ILSVRC2012_val_{k:08d}.JPEG": by_id[i] for k, i in enumerate(ids, start=1)}
    raise DataError(
        f"{str(root / 'val')!r} holds {len(files)} images but no labels for them: add the devkit "
        f"({DEVKIT}/data/ILSVRC2012_validation_ground_truth.txt and meta.mat) or Kaggle's "
        "LOC_val_solution.csv + LOC_synset_mapping.txt beside the image folders, or sort val/ into val/SYNSET/ folders"
    )


def open_imagenet(path: str, spec: str, options: dict[str, str]) -> DataSource:
    root = image_root(Path(path))
    listed: dict[str, list[tuple[str, str]]] = {}  # split -> (path, synset)
    for split in ("train", "val"):
        split_dir = root / split
        if not split_dir.is_dir():
            continue
        folders = synset_folders(split_dir)
        if folders:
            listed[split] = [(p, s) for s in sorted(folders) for p in list_images(folders[s])]
        else:  # flat val/
            files = list_images(str(split_dir))
            if not files:
                continue
            labels = _flat_val_labels(root, files)
            unlabelled = [f for f in files if os.path.basename(f) not in labels]
            if unlabelled:
                raise DataError(
                    f"{unlabelled[0]!r} has no label in the validation labels found ({len(unlabelled)} of "
                    f"{len(files)} images have none): the labels file belongs to another copy, or the image does not"
                )
            listed[split] = [(f, labels[os.path.basename(f)]) for f in files]
    if "train" not in listed and "val" not in listed:
        raise DataError(f"no images in {str(root / 'train')!r} or {str(root / 'val')!r}")
    synsets = sorted({s for rows in listed.values() for _, s in rows})
    standard = standard_names()
    found = _mapping_names(root) if not set(synsets) <= set(standard) else {}
    names = [standard.get(s) or found.get(s) or s for s in synsets]
    names = [
        n if names.count(n) == 1 else f"{n} ({s})" for n, s in zip(names, synsets)
    ]  # unique, as outputs must be
    index = {s: i for i, s in enumerate(synsets)}
    splits = {
        split: FileSplit([p for p, _ in rows], np.fromiter((index[s] for _, s in rows), np.int64, len(rows)), f"{spec} {split}")
        for split, rows in listed.items()
    }  # fmt: skip
    return DataSource(spec, "imagenet", names, False, 3, splits, class_ids=synsets)
