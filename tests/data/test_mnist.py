"""MNIST-format IDX files (real MNIST cut to 64 images) and the checksummed download code, run
against local files through file:// URLs."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from imgcls.data import mnist
from imgcls.data.download import DownloadError, download, md5sum
from imgcls.data.mnist import IdxError, load_mnist, read_idx

FIXTURE = Path(__file__).parents[1] / "fixtures" / "mnist"


def test_reads_the_real_mnist_test_set() -> None:
    images, labels = load_mnist(FIXTURE, "test")
    assert images.shape == (64, 28, 28) and images.dtype == np.uint8 and labels.dtype == np.int64
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST's famous first test digits
    assert images.max() == 255 and images[0, :4].sum() == 0  # ink on a black border
    train_images, train_labels = load_mnist(FIXTURE, "train")
    assert train_images.shape == (64, 28, 28) and train_labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_raw_and_gzipped_files_read_the_same() -> None:
    gz_images, gz_labels = load_mnist(FIXTURE, "test")
    raw_images, raw_labels = load_mnist(FIXTURE / "raw", "test")
    assert np.array_equal(gz_images, raw_images) and np.array_equal(gz_labels, raw_labels)


def test_damaged_files_are_named(tmp_path: Path) -> None:
    raw = (FIXTURE / "raw" / "t10k-images-idx3-ubyte").read_bytes()
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(raw[:-100])
    with pytest.raises(IdxError, match="truncated or damaged") as e:
        read_idx(tmp_path / "t10k-images-idx3-ubyte")
    assert "t10k-images-idx3-ubyte" in str(e.value)
    (tmp_path / "x").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(IdxError, match="not an IDX file"):
        read_idx(tmp_path / "x")
    (tmp_path / "y.gz").write_bytes(gzip.compress(raw)[:50])
    with pytest.raises(IdxError, match="damaged gzip"):
        read_idx(tmp_path / "y.gz")
    with pytest.raises(IdxError, match="no train-images-idx3-ubyte"):
        load_mnist(tmp_path, "train")


def test_download_checks_the_md5_and_leaves_nothing_half_written(tmp_path: Path) -> None:
    src = FIXTURE / "t10k-labels-idx1-ubyte.gz"
    url, good = src.resolve().as_uri(), md5sum(src)
    dest = download(url, tmp_path / "a" / "labels.gz", good, quiet=True)
    assert dest.read_bytes() == src.read_bytes()
    stamp = dest.stat().st_mtime_ns
    os.utime(dest, ns=(stamp - 10**9, stamp - 10**9))
    download(url, dest, good, quiet=True)  # present and correct: not fetched again
    assert dest.stat().st_mtime_ns == stamp - 10**9

    with pytest.raises(DownloadError, match=r"expected 0{32}"):
        download(url, tmp_path / "b" / "labels.gz", "0" * 32, quiet=True)
    assert list((tmp_path / "b").iterdir()) == []  # no file, no .part
    with pytest.raises(DownloadError, match="could not download"):
        download((tmp_path / "missing.gz").as_uri(), tmp_path / "c.gz", quiet=True)


def test_download_mnist_falls_back_across_mirrors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = {name: md5sum(FIXTURE / name) for name in mnist.FILES["mnist"]}
    monkeypatch.setitem(mnist.FILES, "mnist", files)
    monkeypatch.setitem(
        mnist.MIRRORS, "mnist", [(tmp_path / "dead").as_uri() + "/", FIXTURE.resolve().as_uri() + "/"]
    )
    root = mnist.download_mnist(tmp_path / "data", quiet=True)
    images, labels = load_mnist(root, "test")
    assert images.shape == (64, 28, 28) and labels[0] == 7
