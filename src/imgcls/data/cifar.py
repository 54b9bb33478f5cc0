"""CIFAR-10 / CIFAR-100 "python version" batches (``data_batch_1..5``/``test_batch`` with
``batches.meta``; ``train``/``test`` with ``meta``).

The batches are pickles. A pickle can run any code when loaded, so they are read with an
unpickler that resolves only the names plain data and numpy arrays need and refuses everything else: a
file that asks for ``os.system`` raises ``UnsafePickleError`` before anything runs.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImgclsError
from .download import download, extract_tar

ARCHIVES = {
    10: ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    100: ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: a pure str -> bytes function
}


class UnsafePickleError(ImgclsError, pickle.UnpicklingError):
    """A pickle that asks for something other than plain data and numpy arrays."""


class CifarError(ImgclsError, ValueError):
    """Missing or malformed CIFAR batch files."""


class _DataOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, label: str) -> None:
        super().__init__(file, encoding="bytes")  # the official batches were pickled by Python 2
        self.label = label

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self.label!r} asks to load {module}.{name}, which a data file never needs; refusing it "
            "(the file may be malicious: a pickle can run code when loaded)"
        )


def safe_unpickle(path: str | Path) -> Any:
    """Load a pickle of plain data and numpy arrays only; anything else is refused unrun."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return _DataOnlyUnpickler(f, str(path)).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise CifarError(f"{str(path)!r} is not a readable CIFAR batch ({e}); download it again") from None


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _get(d: dict, key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise CifarError(f"{str(path)!r} has no {key!r} entry: not a CIFAR python batch")


def find_root(root: str | Path, kind: int) -> Path:
    """``root`` itself or its ``cifar-10-batches-py`` / ``cifar-100-python`` folder."""
    root = Path(root)
    for candidate in (root, root / ("cifar-10-batches-py" if kind == 10 else "cifar-100-python")):
        if (candidate / ("batches.meta" if kind == 10 else "meta")).is_file():
            return candidate
    raise CifarError(
        f"no CIFAR-{kind} batches in {str(root)!r} (expected batches.meta / meta and the batch files)"
    )


def load_cifar(
    root: str | Path, split: str = "train", kind: int = 10, coarse: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, 32, 32, 3), labels int64 (N,), class names) of one split; ``coarse``: CIFAR-100's
    20 superclasses instead of its 100 classes."""
    if coarse and kind != 100:
        raise CifarError("coarse labels are CIFAR-100's; CIFAR-10 has one set of labels")
    level = "coarse" if coarse else "fine"
    if kind not in (10, 100) or split not in ("train", "test"):
        raise CifarError(f"kind must be 10 or 100 and split train or test, got {kind}, {split!r}")
    root = find_root(root, kind)
    meta_path = root / ("batches.meta" if kind == 10 else "meta")
    classes = [
        _text(c)
        for c in _get(
            safe_unpickle(meta_path), "label_names" if kind == 10 else f"{level}_label_names", meta_path
        )
    ]
    if kind == 10:
        files = sorted(root.glob("data_batch_*")) if split == "train" else [root / "test_batch"]
    else:
        files = [root / split]
    if not files or not all(f.is_file() for f in files):
        raise CifarError(f"the {split} batches of CIFAR-{kind} are missing from {str(root)!r}")
    images, labels = [], []
    for f in files:
        batch = safe_unpickle(f)
        data = np.asarray(_get(batch, "data", f), dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise CifarError(f"{str(f)!r}: data has shape {data.shape}, expected (N, 3072)")
        images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(
            np.asarray(_get(batch, "labels" if kind == 10 else f"{level}_labels", f), dtype=np.int64)
        )
    x, y = np.concatenate(images), np.concatenate(labels)
    if len(x) != len(y) or (len(y) and (y.min() < 0 or y.max() >= len(classes))):
        raise CifarError(
            f"labels of {str(root)!r} do not match its {len(x)} images and {len(classes)} classes"
        )
    return np.ascontiguousarray(x), y, classes


def download_cifar(root: str | Path, kind: int = 10, quiet: bool = False) -> Path:
    """Fetch and unpack the official archive into ``root`` (tar members are checked before extraction)."""
    url, md5 = ARCHIVES[kind]
    archive = download(url, Path(root) / url.rsplit("/", 1)[-1], md5, quiet=quiet)
    extract_tar(archive, root)
    return find_root(root, kind)
