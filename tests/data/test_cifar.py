"""CIFAR python batches (official format, real CIFAR-10 images) behind a data-only unpickler."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgcls.data import cifar
from imgcls.data.cifar import CifarError, UnsafePickleError, load_cifar, safe_unpickle
from imgcls.data.download import md5sum

FIXTURE = Path(__file__).parents[1] / "fixtures" / "cifar10"


def test_reads_the_batches_in_the_official_format() -> None:
    x, y, classes = load_cifar(FIXTURE, "train")
    assert x.shape == (20, 32, 32, 3) and x.dtype == np.uint8 and y.tolist() == [i // 2 for i in range(20)]
    assert classes[:3] == ["airplane", "automobile", "bird"] and len(classes) == 10
    xt, yt, _ = load_cifar(FIXTURE, "test")
    assert xt.shape == (10, 32, 32, 3) and yt.tolist() == list(range(10))
    # the first cat of the batch is the real CIFAR-10 image (channel-major rows undone correctly)
    cat = np.asarray(Image.open(Path(__file__).parents[1] / "fixtures" / "images" / "cifar" / "cat_0000.jpg"))
    assert np.array_equal(xt[3], cat)


def test_finds_the_batches_folder_inside_root(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "cifar-10-batches-py")
    assert load_cifar(tmp_path, "test")[0].shape == (10, 32, 32, 3)
    with pytest.raises(CifarError, match="no CIFAR-100 batches"):
        load_cifar(tmp_path, "test", kind=100)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_batch_is_refused_and_its_code_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    root = tmp_path / "evil"
    shutil.copytree(FIXTURE, root)
    (root / "test_batch").write_bytes(pickle.dumps({b"data": _RunsCode(marker), b"labels": []}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"asks to load (posix|os)\.system") as e:
        load_cifar(root, "test")
    assert "test_batch" in str(e.value) and not marker.exists()


def test_damaged_batches_are_named(tmp_path: Path) -> None:
    root = tmp_path / "c"
    shutil.copytree(FIXTURE, root)
    (root / "test_batch").write_bytes((FIXTURE / "test_batch").read_bytes()[:1000])
    with pytest.raises(CifarError, match="not a readable CIFAR batch"):
        load_cifar(root, "test")
    (root / "test_batch").write_bytes(pickle.dumps({b"labels": [1]}, protocol=2))
    with pytest.raises(CifarError, match="no 'data' entry"):
        load_cifar(root, "test")
    assert safe_unpickle(FIXTURE / "batches.meta")[b"num_vis"] == 3072


def test_download_cifar_checks_and_unpacks_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "serve" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(FIXTURE, arcname="cifar-10-batches-py")
    monkeypatch.setitem(cifar.ARCHIVES, 10, (archive.as_uri(), md5sum(archive)))
    root = cifar.download_cifar(tmp_path / "data", quiet=True)
    assert root.name == "cifar-10-batches-py" and load_cifar(tmp_path / "data", "train")[0].shape[0] == 20

    evil = tmp_path / "serve2" / "cifar-10-python.tar.gz"
    evil.parent.mkdir()
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        payload = b"outside"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    monkeypatch.setitem(cifar.ARCHIVES, 10, (evil.as_uri(), md5sum(evil)))
    with pytest.raises(tarfile.TarError):
        cifar.download_cifar(tmp_path / "data2", quiet=True)
    assert not (tmp_path / "escaped.txt").exists()
