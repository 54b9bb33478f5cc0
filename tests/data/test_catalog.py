"""`imgcls data list` and `imgcls data download` (issue 32): every dataset --data opens by name is listed;
downloads are checked against the published MD5 and unpacked, tested against files served on a loopback
port — a match opens with the printed spec, a mismatch and an interrupted transfer leave nothing behind,
and a dataset without a public download says where to get it."""

from __future__ import annotations

import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from imgcls.cli import main
from imgcls.data import catalog
from imgcls.data.catalog import Dataset, Remote
from imgcls.data.download import DownloadError, md5sum
from imgcls.data.source import MNIST_CLASSES, NAMED, open_source
from imgcls.data.splits import DataError


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus /flaky/NAME: asked for the whole file it promises all of it, sends a tenth and
    hangs up; asked for a range (``Range: bytes=N-``) it sends the rest, as HTTP servers that resume do."""

    def do_GET(self) -> None:
        if not self.path.startswith("/flaky/"):
            return super().do_GET()
        body = (Path(self.directory) / self.path.removeprefix("/flaky/")).read_bytes()
        asked = self.headers.get("Range")
        if asked:
            start = int(asked.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:])
            return None
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 10])
        self.wfile.flush()
        self.close_connection = True
        return None

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "www"
    folder.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_the_list_names_every_dataset_the_readers_open(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    prefixes = {str(r["spec"]).split(":")[0] for r in rows}
    assert set(NAMED) | set(MNIST_CLASSES) | {"cifar10", "cifar100"} <= prefixes
    by_name = {r["name"]: r for r in rows}
    assert by_name["svhn"]["download"] and not by_name["imagenet"]["download"]
    assert by_name["chestmnist"]["task"] == "multilabel" and by_name["pneumoniamnist"]["task"] == "binary"
    assert by_name["dermamnist"]["classes"] == 7 and by_name["imagenet"]["classes"] == 1000
    assert main(["data", "list"]) == 0
    assert "svhn:DIR" in capsys.readouterr().out


def svhn_files(folder: Path) -> None:
    from scipy.io import savemat

    x = np.zeros((32, 32, 3, 4), np.uint8)
    for split in ("train", "test"):
        savemat(folder / f"{split}_32x32.mat", {"X": x, "y": np.array([[1], [2], [10], [3]])})


def test_download_checks_unpacks_and_prints_the_spec(
    tmp_path: Path,
    served: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    www, url = served
    svhn_files(www)
    files = tuple(Remote(f"{url}/{n}", md5sum(www / n)) for n in ("train_32x32.mat", "test_32x32.mat"))
    monkeypatch.setitem(catalog.DATASETS, "svhn", Dataset("svhn", "svhn:DIR", "", 10, "", "", "", files))
    out = tmp_path / "svhn"
    assert main(["data", "download", "svhn", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert f"imgcls train --data svhn:{out}" in printed
    assert open_source(f"svhn:{out}").split("train").targets.tolist() == [1, 2, 0, 3]

    bad = (Remote(f"{url}/train_32x32.mat", "0" * 32),)
    monkeypatch.setitem(catalog.DATASETS, "svhn", Dataset("svhn", "svhn:DIR", "", 10, "", "", "", bad))
    with pytest.raises(DownloadError, match=r"has MD5 .* expected 0{32}"):
        catalog.fetch("svhn", tmp_path / "bad", quiet=True)
    assert not any((tmp_path / "bad").iterdir())  # nothing that looks complete, no partial file


def test_an_interrupted_transfer_resumes_and_nothing_looks_whole_meanwhile(
    tmp_path: Path, served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    www, url = served
    svhn_files(www)
    whole = (www / "train_32x32.mat").read_bytes()
    flaky = (Remote(f"{url}/flaky/train_32x32.mat", md5sum(www / "train_32x32.mat"), name="train_32x32.mat"),)
    monkeypatch.setitem(catalog.DATASETS, "svhn", Dataset("svhn", "svhn:DIR", "", 10, "", "", "", flaky))
    with pytest.raises(
        DownloadError, match=r"transfer stopped early.*bytes are kept in .train_32x32.mat.part: run it again"
    ):
        catalog.fetch("svhn", tmp_path / "cut", quiet=True)
    assert [p.name for p in (tmp_path / "cut").iterdir()] == [
        ".train_32x32.mat.part"
    ]  # nothing under the real name
    assert (tmp_path / "cut" / ".train_32x32.mat.part").read_bytes() == whole[: len(whole) // 10]
    catalog.fetch("svhn", tmp_path / "cut", quiet=True)  # asks for the rest only
    assert (tmp_path / "cut" / "train_32x32.mat").read_bytes() == whole
    assert [p.name for p in (tmp_path / "cut").iterdir()] == ["train_32x32.mat"]


def test_an_archive_is_unpacked_and_a_doctored_one_refused(
    tmp_path: Path, served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import tarfile

    www, url = served
    src = tmp_path / "stl"
    (src / "stl10_binary").mkdir(parents=True)
    (src / "stl10_binary" / "class_names.txt").write_text("a\nb\n")
    np.zeros((2, 3, 96, 96), np.uint8).tofile(src / "stl10_binary" / "train_X.bin")
    np.zeros((2, 3, 96, 96), np.uint8).tofile(src / "stl10_binary" / "test_X.bin")
    np.array([1, 2], np.uint8).tofile(src / "stl10_binary" / "train_y.bin")
    np.array([2, 1], np.uint8).tofile(src / "stl10_binary" / "test_y.bin")
    with tarfile.open(www / "stl10_binary.tar.gz", "w:gz") as tar:
        tar.add(src / "stl10_binary", arcname="stl10_binary")
    files = (Remote(f"{url}/stl10_binary.tar.gz", md5sum(www / "stl10_binary.tar.gz"), True),)
    monkeypatch.setitem(catalog.DATASETS, "stl10", Dataset("stl10", "stl10:DIR", "", 10, "", "", "", files))
    spec = catalog.fetch("stl10", tmp_path / "got", quiet=True)
    assert open_source(spec).classes == ["a", "b"]

    with tarfile.open(www / "evil.tar.gz", "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    files = (Remote(f"{url}/evil.tar.gz", md5sum(www / "evil.tar.gz"), True),)
    monkeypatch.setitem(catalog.DATASETS, "stl10", Dataset("stl10", "stl10:DIR", "", 10, "", "", "", files))
    with pytest.raises(tarfile.TarError):
        catalog.fetch("stl10", tmp_path / "evil", quiet=True)
    assert not (tmp_path / "escaped.txt").exists()


def test_no_public_download_says_where_to_get_it() -> None:
    with pytest.raises(
        DataError, match=r"imagenet cannot be downloaded by imgcls: ILSVRC-2012 has no public download"
    ):
        catalog.fetch("imagenet", "/nonexistent")
    with pytest.raises(DataError, match=r"no dataset named 'svnh'.*svhn"):
        catalog.fetch("svnh", "/nonexistent")
