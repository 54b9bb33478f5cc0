"""What ``--data`` names, opened into a ``DataSource`` (splits.py) by the reader of its kind."""

from __future__ import annotations

from pathlib import Path

from .cifar import load_cifar
from .emnist import open_emnist
from .flowers102 import open_flowers102
from .folder import open_folder
from .imagenet import looks_like_imagenet, open_imagenet
from .labelfile import open_label_file
from .medmnist import open_medmnist
from .mnist import load_mnist
from .shards import expand_urls, open_shards
from .signmnist import open_sign_mnist
from .splits import ArraySplit, DataError, DataSource, Split
from .stl10 import open_stl10
from .svhn import open_svhn

MNIST_CLASSES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": "T-shirt/top,Trouser,Pullover,Dress,Coat,Sandal,Shirt,Sneaker,Bag,Ankle boot".split(","),
    "kmnist": ["o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"],
}
# the datasets read in their own formats, and the options each takes after the path (NAME:DIR?key=value&...)
NAMED = {
    "cifar100": (lambda root, spec, options: _cifar(root, spec, 100, options.get("labels") == "coarse"),
                 {"labels": "coarse: the 20 superclasses instead of the 100 classes"}),
    "emnist": (open_emnist, {"split": "byclass | bymerge | balanced (default) | letters | digits | mnist"}),
    "svhn": (open_svhn, {"extra": "1: add extra_32x32.mat's 531,131 digits to train"}),
    "stl10": (open_stl10, {"fold": "0 … 9: train on that predefined 1,000-image fold",
                           "unlabeled": "1: add the 100,000 unlabelled images as a split named unlabeled"}),
    "flowers102": (open_flowers102, {}),
    "imagenet": (open_imagenet, {}),
    "sign_mnist": (open_sign_mnist, {}),
    "medmnist": (open_medmnist, {}),
}  # fmt: skip
PREFIXES = (*MNIST_CLASSES, "cifar10", *NAMED, "folder", "labels", "shards")


def open_source(spec: str | Path) -> DataSource:
    """Open what ``--data`` names (see docs/data.md): ``mnist:DIR``, ``fashion_mnist:DIR``,
    ``kmnist:DIR``, ``cifar10:DIR``, ``cifar100:DIR``, ``svhn:DIR``, ``stl10:DIR``, ``flowers102:DIR``,
    ``sign_mnist:DIR``, ``medmnist:FILE.npz``, ``imagenet:DIR`` (options after the path: ``stl10:DIR?fold=3``), an image
    folder, a ``.csv``/``.json`` label file,
    or tar shards (``'shards/train-{000000..000009}.tar'`` or a folder of them); a folder holding IDX
    files or CIFAR batches is recognised without the prefix."""
    spec = str(spec)
    kind, sep, rest = spec.partition(":")
    if sep and kind in NAMED:
        opener, known = NAMED[kind]
        path, options = _options(kind, rest, known)
        return opener(path, spec, options)
    if sep and kind in PREFIXES:
        return _open(kind, rest, spec)
    if sep and len(kind) > 1 and not Path(spec).exists() and "/" not in kind:
        raise DataError(f"unknown data prefix {kind + ':'!r} in {spec!r}; known: {', '.join(PREFIXES)}")
    return _open(_detect(spec), spec, spec)


def _options(kind: str, rest: str, known: dict[str, str]) -> tuple[str, dict[str, str]]:
    """``DIR?key=value&key=value`` -> (DIR, options), every key one the dataset takes."""
    path, _, query = rest.partition("?")
    options = dict(item.partition("=")[::2] for item in query.split("&") if item)
    unknown = sorted(set(options) - set(known))
    if unknown:
        takes = "; ".join(f"{k}={v}" for k, v in known.items()) or "none"
        raise DataError(f"{kind}: unknown option {unknown[0]!r} in {kind}:{rest!r}; it takes: {takes}")
    return path, options


def _detect(path: str) -> str:
    p = Path(path)
    if "{" in path or p.suffix == ".tar":
        if not expand_urls(path):
            raise DataError(f"no tar shards match {path!r}")
        return "shards"
    if p.is_file():
        if p.suffix.lower() == ".npz":
            return "medmnist"
        if p.name.startswith("sign_mnist_") and p.suffix.lower() == ".csv":
            return "sign_mnist"
        if p.suffix.lower() in (".csv", ".tsv", ".json"):
            return "labels"
        raise DataError(
            f"{path!r} is a file but not a .csv/.json label file or a .tar shard; "
            "point --data at an image folder, a label file, shards or mnist:/cifar10:/cifar100:DIR"
        )
    if not p.is_dir():
        raise DataError(f"data {path!r} does not exist")
    names = {c.name for c in p.iterdir()}
    if any("idx3-ubyte" in n or "idx3.ubyte" in n for n in names):
        return "mnist"
    if "batches.meta" in names or "cifar-10-batches-py" in names:
        return "cifar10"
    if ("meta" in names and "train" in names and (p / "train").is_file()) or "cifar-100-python" in names:
        return "cifar100"
    if "train_32x32.mat" in names or "test_32x32.mat" in names:
        return "svhn"
    if "stl10_binary" in names or {"class_names.txt", "train_X.bin"} <= names:
        return "stl10"
    if {"imagelabels.mat", "setid.mat"} <= names:
        return "flowers102"
    if {"sign_mnist_train.csv", "sign_mnist_test.csv"} & names:
        return "sign_mnist"
    if looks_like_imagenet(p):
        return "imagenet"
    if any(n.endswith(".tar") for n in names) and not any((p / n).is_dir() for n in names):
        return "shards"
    return "folder"


def _cifar(path: str, spec: str, kind: int, coarse: bool = False) -> DataSource:
    splits, classes = {}, []
    for split in ("train", "test"):
        x, y, classes = load_cifar(path, split, kind, coarse)
        splits[split] = ArraySplit(x, y, f"{spec} {split}")
    return DataSource(spec, f"cifar{kind}", classes, False, 3, splits)


def _open(kind: str, path: str, spec: str) -> DataSource:
    if kind in NAMED:
        return NAMED[kind][0](path, spec, {})
    if kind in MNIST_CLASSES:
        splits: dict[str, Split] = {}
        for split in ("train", "test"):
            x, y = load_mnist(path, split)
            splits[split] = ArraySplit(x, y, f"{spec} {split}")
        return DataSource(spec, kind, list(MNIST_CLASSES[kind]), False, 1, splits)
    if kind == "cifar10":
        return _cifar(path, spec, 10)
    if kind == "folder":
        return open_folder(path, spec)
    if kind == "labels":
        return open_label_file(path, spec)
    return open_shards(path, spec)
