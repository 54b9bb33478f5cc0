"""The datasets ``--data`` opens by name: their facts for ``imgcls data list`` and, where the dataset has
an official home, the files ``imgcls data download NAME DIR`` fetches (official URLs and published MD5s,
the same ones torchvision checks) and how they unpack. A dataset without a public download (ImageNet,
Sign Language MNIST, KMNIST here) says where to get it and which files go where."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .cifar import ARCHIVES, download_cifar
from .download import DownloadError, download, extract_tar
from .mnist import FILES, MIRRORS, download_mnist
from .splits import DataError

MEDMNIST_ZENODO = "https://zenodo.org/record/6496656/files/"
MEDMNIST = {  # MedMNIST v2 at 28 px: MD5 (as its own package checks it) and train / val / test images
    "pathmnist": ("a8b06965200029087d5bd730944a56c1", "89,996 / 10,004 / 7,180"),
    "chestmnist": ("02c8a6516a18b556561a56cbdd36c4a8", "78,468 / 11,219 / 22,433"),
    "dermamnist": ("0744692d530f8e62ec473284d019b0c7", "7,007 / 1,003 / 2,005"),
    "octmnist": ("c68d92d5b585d8d81f7112f81e2d0842", "97,477 / 10,832 / 1,000"),
    "pneumoniamnist": ("28209eda62fecd6e6a2d98b1501bb15f", "4,708 / 524 / 624"),
    "retinamnist": ("bd4c0672f1bba3e3a89f0e4e876791e4", "1,080 / 120 / 400"),
    "breastmnist": ("750601b1f35ba3300ea97c75c52ff8f6", "546 / 78 / 156"),
    "bloodmnist": ("7053d0359d879ad8a5505303e11de1dc", "11,959 / 1,712 / 3,421"),
    "tissuemnist": ("ebe78ee8b05294063de985d821c1c34b", "165,466 / 23,640 / 47,280"),
    "organamnist": ("866b832ed4eeba67bfb9edee1d5544e6", "34,581 / 6,491 / 17,778"),
    "organcmnist": ("0afa5834fb105f7705a7d93372119a21", "13,000 / 2,392 / 8,268"),
    "organsmnist": ("e5c39f1af030238290b9557d9503af9d", "13,940 / 2,452 / 8,829"),
}


@dataclass(frozen=True)
class Remote:
    """One file of a download: where from, its MD5, and whether it is a tar archive to unpack."""

    url: str
    md5: str
    unpack: bool = False
    name: str = ""  # the file name on disk (default: the URL's last part)

    @property
    def filename(self) -> str:
        return self.name or self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Dataset:
    name: str
    spec: str  # how --data names it after download
    images: str  # per split, as published
    classes: int
    size: str
    task: str
    licence: str
    files: tuple[Remote, ...] = ()
    get_it: str = ""  # where to get it by hand, when there is no download
    extra: dict[str, str] = field(default_factory=dict)

    def row(self) -> dict[str, object]:
        d = asdict(self)
        d["download"] = bool(self.files)
        d.pop("files")
        d.pop("extra")
        return d


def _idx(name: str) -> tuple[Remote, ...]:
    return tuple(Remote(MIRRORS[name][0] + f, md5) for f, md5 in FILES[name].items())


def _cifar(kind: int) -> tuple[Remote, ...]:
    return (Remote(ARCHIVES[kind][0], ARCHIVES[kind][1], True),)


DATASETS: dict[str, Dataset] = {d.name: d for d in [
    Dataset("mnist", "mnist:DIR", "60,000 / 10,000", 10, "28 × 28 grey", "multiclass", "CC BY-SA 3.0",
            _idx("mnist")),
    Dataset("fashion_mnist", "fashion_mnist:DIR", "60,000 / 10,000", 10, "28 × 28 grey", "multiclass", "MIT",
            _idx("fashion_mnist")),
    Dataset("kmnist", "kmnist:DIR", "60,000 / 10,000", 10, "28 × 28 grey", "multiclass", "CC BY-SA 4.0",
            get_it="the four MNIST-format .gz files from github.com/rois-codh/kmnist into DIR"),
    Dataset("emnist", "emnist:DIR?split=balanced", "112,800 / 18,800 (balanced)", 47, "28 × 28 grey", "multiclass",
            "none stated (NIST)",
            get_it="gzip.zip from nist.gov/itl/products-and-services/emnist-dataset, unzipped into DIR (the split "
                   "files and their mapping .txt files); splits byclass, bymerge, balanced, letters, digits, mnist"),
    Dataset("cifar10", "cifar10:DIR", "50,000 / 10,000", 10, "32 × 32", "multiclass", "none stated (cite the report)",
            _cifar(10)),
    Dataset("cifar100", "cifar100:DIR", "50,000 / 10,000", 100, "32 × 32", "multiclass", "none stated (cite the report)",
            _cifar(100)),
    Dataset("svhn", "svhn:DIR", "73,257 / 26,032 (+531,131 extra)", 10, "32 × 32", "multiclass", "non-commercial use",
            (Remote("http://ufldl.stanford.edu/housenumbers/train_32x32.mat", "e26dedcc434d2e4c54c9b2d4a06d8373"),
             Remote("http://ufldl.stanford.edu/housenumbers/test_32x32.mat", "eb5a983be6a315427106f1b164d9cef3")),
            extra={"extra_32x32.mat": "http://ufldl.stanford.edu/housenumbers/extra_32x32.mat (1.3 GB, MD5 "
                   "a93ce644f1a588dc4d68dda5feec44a7): put it in DIR and open svhn:DIR?extra=1"}),
    Dataset("stl10", "stl10:DIR", "5,000 / 8,000 (+100,000 unlabelled)", 10, "96 × 96", "multiclass", "none stated",
            (Remote("http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz", "91f7769df0f17e558f3565bffb0c7dfb", True),)),
    Dataset("flowers102", "flowers102:DIR", "1,020 / 1,020 / 6,149", 102, "photos (≥ 500 px)", "multiclass", "none stated",
            (Remote("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz", "52808999861908f626f3c1f4e79d11fa", True),
             Remote("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat", "e0620be6f572b9609742df49c70aed4d"),
             Remote("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c"))),
    Dataset("sign_mnist", "sign_mnist:DIR", "27,455 / 7,172", 24, "28 × 28 grey", "multiclass", "CC0",
            get_it="sign_mnist_train.csv and sign_mnist_test.csv from kaggle.com/datasets/datamunge/sign-language-mnist "
                   "(a Kaggle account is needed) into DIR"),
    *[Dataset(name, f"medmnist:DIR/{name}.npz", counts, 0, "28 × 28", "multilabel" if name == "chestmnist" else "",
              "CC BY 4.0", (Remote(f"{MEDMNIST_ZENODO}{name}.npz?download=1", md5, name=f"{name}.npz"),))
      for name, (md5, counts) in MEDMNIST.items()],
    Dataset("imagenet", "imagenet:DIR", "1,281,167 / 50,000", 1000, "photos (~400 × 350)", "multiclass",
            "ImageNet terms of access (non-commercial research)",
            get_it="ILSVRC-2012 has no public download: register at image-net.org (or take Kaggle's "
                   "imagenet-object-localization-challenge), then unpack train/SYNSET/*.JPEG and val/ into DIR, with "
                   "the devkit (ILSVRC2012_devkit_t12/) or Kaggle's LOC_val_solution.csv + LOC_synset_mapping.txt "
                   "beside them for a flat val/"),
]}  # fmt: skip


def _medmnist_classes() -> dict[str, int]:
    labels = json.loads((Path(__file__).with_name("medmnist_labels.json")).read_text())["labels"]
    return {k: len(v) for k, v in labels.items()}


def listing() -> list[dict[str, object]]:
    """One row per dataset, for ``imgcls data list``."""
    classes = _medmnist_classes()
    rows = []
    for d in DATASETS.values():
        row = d.row()
        if d.name in classes:
            row["classes"] = classes[d.name]
        if not row["task"]:
            row["task"] = "binary" if row["classes"] == 2 else "multiclass"
        rows.append(row)
    return rows


def fetch(name: str, root: str | Path, quiet: bool = False) -> str:
    """Download ``name`` into ``root`` (checksummed, unpacked); the ``--data`` spec that opens it."""
    if name not in DATASETS:
        from ..errors import did_you_mean

        raise DataError(
            f"no dataset named {name!r}{did_you_mean(name, DATASETS)}; `imgcls data list` shows them"
        )
    d = DATASETS[name]
    if not d.files:
        raise DataError(f"{name} cannot be downloaded by imgcls: {d.get_it}")
    root = Path(root)
    if name in FILES:  # MNIST-format: across its mirrors
        download_mnist(root, name, quiet=quiet)
        return d.spec.replace("DIR", str(root))
    if name in ("cifar10", "cifar100"):
        download_cifar(root, int(name[5:]), quiet=quiet)
        return d.spec.replace("DIR", str(root))
    for remote in d.files:
        try:
            path = download(remote.url, root / remote.filename, remote.md5, quiet=quiet)
        except DownloadError as e:
            raise DownloadError(f"{e}. {name}'s files: " + ", ".join(r.url for r in d.files)) from None
        if remote.unpack:
            extract_tar(path, root)
    return d.spec.replace("DIR", str(root))
