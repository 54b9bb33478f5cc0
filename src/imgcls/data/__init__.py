"""Data: the one safe decode path, MNIST-format IDX files, CIFAR batches behind a data-only
unpickler, checksummed downloads (more to come: folders, label files, shards, transforms, loaders)."""

from .cifar import CifarError, UnsafePickleError, download_cifar, load_cifar, safe_unpickle
from .decode import BadImageError, decode_image
from .download import DownloadError, download
from .mnist import IdxError, download_mnist, load_mnist, read_idx

__all__ = [
    "BadImageError",
    "CifarError",
    "DownloadError",
    "IdxError",
    "UnsafePickleError",
    "decode_image",
    "download",
    "download_cifar",
    "download_mnist",
    "load_cifar",
    "load_mnist",
    "read_idx",
    "safe_unpickle",
]
