"""Data: the one safe decode path, MNIST-format IDX files, checksummed downloads
(more to come: CIFAR batches, folders, label files, shards, transforms, loaders)."""

from .decode import BadImageError, decode_image
from .download import DownloadError, download
from .mnist import IdxError, download_mnist, load_mnist, read_idx

__all__ = [
    "BadImageError",
    "DownloadError",
    "IdxError",
    "decode_image",
    "download",
    "download_mnist",
    "load_mnist",
    "read_idx",
]
