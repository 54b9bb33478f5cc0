"""MNIST-format IDX files (MNIST, Fashion-MNIST, KMNIST, EMNIST...): ``*-images-idx3-ubyte[.gz]``
and ``*-labels-idx1-ubyte[.gz]``, gzipped or raw, read without any third-party reader."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import ImgclsError
from .download import download

# IDX type codes -> numpy dtypes (big-endian, as the format stores them)
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
SPLIT_PREFIX = {"train": "train", "test": "t10k"}

# The official archives and their published MD5s (the same tables torchvision checks against).
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}


class IdxError(ImgclsError, ValueError):
    """A file that is not a valid IDX file."""


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzipped or raw, told by its first bytes) as a numpy array of its own shape."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise IdxError(
                f"IDX file {str(path)!r} is a damaged gzip archive ({e}); download it again"
            ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise IdxError(f"{str(path)!r} is not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise IdxError(
            f"IDX file {str(path)!r} holds {len(raw):,} bytes but its header {shape} needs {expected:,}: "
            "it is truncated or damaged; download it again"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx(root: str | Path, split: str, kind: str) -> Path:
    """``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` in ``root`` (also with '.' for '-')."""
    root, prefix = Path(root), SPLIT_PREFIX[split]
    stem = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (root / name).is_file():
            return root / name
    raise IdxError(
        f"no {stem}[.gz] in {str(root)!r}: point --data mnist:DIR at the folder with the IDX files"
    )


def load_mnist(root: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, H, W), labels int64 (N,)) of one split of an MNIST-format folder."""
    if split not in SPLIT_PREFIX:
        raise IdxError(f"split must be one of {sorted(SPLIT_PREFIX)}, got {split!r}")
    images_path, labels_path = find_idx(root, split, "images"), find_idx(root, split, "labels")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise IdxError(
            f"{str(images_path)!r} {images.shape} and {str(labels_path)!r} {labels.shape} do not pair up "
            "(expected (N, H, W) images and N labels)"
        )
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


def download_mnist(root: str | Path, name: str = "mnist", quiet: bool = False) -> Path:
    """Fetch the four archives of ``name`` ("mnist", "fashion_mnist") into ``root``, checksummed."""
    if name not in FILES:
        raise IdxError(f"unknown dataset {name!r}; choose from {sorted(FILES)}")
    root = Path(root)
    for filename, md5 in FILES[name].items():
        errors = []
        for mirror in MIRRORS[name]:
            try:
                download(mirror + filename, root / filename, md5, quiet=quiet)
                break
            except ImgclsError as e:
                errors.append(str(e))
        else:
            raise IdxError("; ".join(errors))
    return root
