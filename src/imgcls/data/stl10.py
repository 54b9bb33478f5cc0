"""STL-10 (Coates et al. 2011) in its binary layout, ``DIR/stl10_binary/`` (or ``DIR`` itself):
``{train,test}_X.bin`` — uint8, N × 3 × 96 × 96, each channel stored **column-major** (transposed);
``{train,test}_y.bin`` — labels 1 … 10; ``class_names.txt``; ``fold_indices.txt`` — ten lines of
0-based training indices, the predefined 1,000-image folds (``stl10:DIR?fold=K`` trains on fold K);
``unlabeled_X.bin`` — 100,000 unlabelled images, a split named ``unlabeled`` with ``?unlabeled=1``
(memory-mapped, targets -1; training reads only train / val / test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .splits import ArraySplit, DataError, DataSource

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE


def find_root(root: str | Path) -> Path:
    root = Path(root)
    for candidate in (root, root / "stl10_binary"):
        if (candidate / "class_names.txt").is_file():
            return candidate
    raise DataError(
        f"no STL-10 files in {str(root)!r} (expected stl10_binary/ with class_names.txt and the .bin files)"
    )


def read_images(path: Path, mmap: bool = False) -> np.ndarray:
    """uint8 (N, 96, 96, 3), the right way round (the file stores each channel transposed)."""
    if not path.is_file():
        raise DataError(f"{str(path)!r} is missing")
    size = path.stat().st_size
    if size % IMAGE_BYTES:
        raise DataError(
            f"{str(path)!r} holds {size:,} bytes, not a whole number of 96 × 96 × 3 images ({IMAGE_BYTES:,} bytes "
            "each): it is truncated or damaged; download it again"
        )
    raw = np.memmap(path, np.uint8, "r") if mmap else np.fromfile(path, np.uint8)
    return raw.reshape(-1, 3, SIDE, SIDE).transpose(0, 3, 2, 1)  # (N, C, W, H) -> (N, H, W, C)


def read_labels(path: Path, n: int, classes: int) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{str(path)!r} is missing")
    y = np.fromfile(path, np.uint8).astype(np.int64)
    if len(y) != n:
        raise DataError(f"{str(path)!r} holds {len(y)} labels for {n} images: one of the two is damaged")
    if n and (y.min() < 1 or y.max() > classes):
        raise DataError(f"{str(path)!r}: labels run from {y.min()} to {y.max()}; STL-10's are 1 … {classes}")
    return y - 1


def open_stl10(root: str, spec: str, options: dict[str, str]) -> DataSource:
    folder = find_root(root)
    classes = [c.strip() for c in (folder / "class_names.txt").read_text().splitlines() if c.strip()]
    splits = {}
    for split in ("train", "test"):
        x = read_images(folder / f"{split}_X.bin")
        y = read_labels(folder / f"{split}_y.bin", len(x), len(classes))
        splits[split] = ArraySplit(np.ascontiguousarray(x), y, f"{spec} {split}")
    if "fold" in options:
        fold = _fold(options["fold"])
        lines = (
            (folder / "fold_indices.txt").read_text().splitlines()
            if (folder / "fold_indices.txt").is_file()
            else []
        )
        if len(lines) != 10:
            raise DataError(
                f"{str(folder / 'fold_indices.txt')!r} is missing or has {len(lines)} lines, not 10"
            )
        index = np.array(lines[fold].split(), dtype=np.int64)
        if len(index) and (index.min() < 0 or index.max() >= len(splits["train"])):
            raise DataError(f"fold {fold} of {str(folder / 'fold_indices.txt')!r} names images outside train")
        splits["train"] = splits["train"].subset(index)
        splits["train"].label = f"{spec} train (fold {fold})"
    if options.get("unlabeled") in ("1", "true", "yes"):
        x = read_images(folder / "unlabeled_X.bin", mmap=True)
        splits["unlabeled"] = ArraySplit(x, np.full(len(x), -1, np.int64), f"{spec} unlabeled")
    return DataSource(spec, "stl10", classes, False, 3, splits)


def _fold(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 9:
        raise DataError(f"stl10 fold must be 0 … 9, got {text!r}")
    return int(text)
