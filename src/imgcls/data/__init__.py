"""Data: sources (MNIST IDX, CIFAR batches, SVHN, STL-10, Flowers-102, Sign Language MNIST, MedMNIST,
image folders, CSV/JSON label files, tar shards), the one
safe decode path, transforms, loaders with a decoded cache for small images, and ``data check``.

    source = open_source("cifar10:data/cifar-10-batches-py").with_val(0.1, seed=0)
    pre = preprocess_for(imgcls.model_info("resnet20"), source.channels)
    loader = make_loader(source, "train", pre, augment_preset("basic", pre.size, source.channels), 128)
"""

from .check import check_data
from .cifar import CifarError, UnsafePickleError, download_cifar, load_cifar, safe_unpickle
from .decode import BadImageError, decode_image
from .download import DownloadError, download
from .loader import Batch, make_loader
from .mnist import IdxError, download_mnist, load_mnist, read_idx
from .pipeline import AugmentConfig, Preprocess, augment_preset, preprocess_for
from .samples import BadImageLog, TooManyBadImagesError
from .shards import write_shards
from .source import open_source
from .splits import DataError, DataSource

__all__ = [
    "AugmentConfig",
    "BadImageError",
    "BadImageLog",
    "Batch",
    "CifarError",
    "DataError",
    "DataSource",
    "DownloadError",
    "IdxError",
    "Preprocess",
    "TooManyBadImagesError",
    "UnsafePickleError",
    "augment_preset",
    "check_data",
    "decode_image",
    "download",
    "download_cifar",
    "download_mnist",
    "load_cifar",
    "load_mnist",
    "make_loader",
    "open_source",
    "preprocess_for",
    "read_idx",
    "safe_unpickle",
    "write_shards",
]
