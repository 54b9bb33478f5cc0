"""Image folders: ``ROOT/CLASS/...`` or ``ROOT/{train,val,test}/CLASS/...``.

Images may sit at any depth under their class folder (``cat/2019/a.jpg`` is a cat). A file counts as
an image by its extension (any case); other files, hidden files and folders (``.DS_Store``,
``__MACOSX``) and files outside a class folder are ignored and counted in the source's notes.
A class is a folder holding at least one image in any split; classes are in natural order.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..sorting import natural_key
from .splits import SPLIT_ALIASES, DataError, DataSource, FileSplit, encode_targets

IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jfif .png .bmp .gif .tif .tiff .webp .ppm .pgm .pbm .pnm .ico".split()
)


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _hidden(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"


def scan_class_folders(root: Path) -> tuple[dict[str, list[str]], int]:
    """{class: sorted image paths} under ``root`` and the number of ignored files."""
    found: dict[str, list[str]] = {}
    ignored = 0
    for entry in sorted(os.scandir(root), key=lambda e: natural_key(e.name)):
        if _hidden(entry.name):
            continue
        if not entry.is_dir():
            ignored += 1  # a file next to the class folders belongs to no class
            continue
        paths: list[str] = []
        for dirpath, dirnames, filenames in os.walk(entry.path, followlinks=True):
            dirnames[:] = [d for d in dirnames if not _hidden(d)]
            for f in filenames:
                if _hidden(f):
                    continue
                if is_image_name(f):
                    paths.append(os.path.join(dirpath, f))
                else:
                    ignored += 1
        if paths:
            found[entry.name] = sorted(paths, key=natural_key)
    return found, ignored


def open_folder(path: str, spec: str) -> DataSource:
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"image folder {path!r} does not exist")
    split_dirs = {
        SPLIT_ALIASES[d.name.lower()]: d
        for d in root.iterdir()
        if d.is_dir() and d.name.lower() in SPLIT_ALIASES
    }
    if "train" not in split_dirs and len(split_dirs) > 0:
        raise DataError(
            f"{path!r} has {', '.join(sorted(p.name for p in split_dirs.values()))} but no train folder; "
            "use ROOT/train/CLASS/... (and optionally val/ and test/) or ROOT/CLASS/..."
        )
    layout = split_dirs or {"train": root}
    scanned = {split: scan_class_folders(d) for split, d in layout.items()}
    classes = sorted({c for found, _ in scanned.values() for c in found}, key=natural_key)
    if not classes:
        raise DataError(
            f"no images in class folders under {path!r}; expected ROOT/CLASS/IMAGE "
            f"(or ROOT/train/CLASS/IMAGE), with extensions {', '.join(sorted(IMAGE_EXTENSIONS))}"
        )
    notes = []
    splits = {}
    for split, (found, ignored) in scanned.items():
        paths = [p for c in classes for p in found.get(c, [])]
        labels = [[c] for c in classes for _ in found.get(c, [])]
        splits[split] = FileSplit(paths, encode_targets(labels, classes, False), f"{path} {split}")
        if ignored:
            notes.append(f"{ignored} non-image or unfiled file(s) in {layout[split]} ignored")
        missing = [c for c in classes if c not in found]
        if missing and split != "test":
            notes.append(f"{split} has no images of {', '.join(missing)}")
    return DataSource(spec, "folder", classes, False, 3, splits, notes)
