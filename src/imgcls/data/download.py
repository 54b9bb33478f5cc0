"""Downloads for the datasets with official homes (MNIST, Fashion-MNIST, CIFAR): streamed to a
temporary file next to the destination, checked against the published MD5, then renamed into
place, so an interrupted or corrupted download never leaves a file that looks complete."""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import urllib.request
from pathlib import Path

from ..errors import ImgclsError


class DownloadError(ImgclsError, OSError):
    """A download that failed or whose checksum does not match."""


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download(url: str, dest: str | Path, md5: str | None = None, *, quiet: bool = False) -> Path:
    """Fetch ``url`` to ``dest`` (skipped when ``dest`` exists with the right checksum)."""
    dest = Path(dest)
    if dest.exists() and (md5 is None or md5sum(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    h = hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            progress = None if quiet else _progress(dest.name, total)
            got = 0
            while block := response.read(1 << 16):
                got += len(block)
                out.write(block)
                h.update(block)
                if progress is not None:
                    progress(len(block))
            out.flush()
            os.fsync(out.fileno())
        if total and got != total:  # the server closed the connection early
            raise http.client.IncompleteRead(b"", total - got)
    except (OSError, http.client.HTTPException) as e:
        tmp.unlink(missing_ok=True)
        reason = f"the transfer stopped early: {e!r}" if isinstance(e, http.client.HTTPException) else str(e)
        raise DownloadError(
            f"could not download {url} ({reason}); check the network, or put the file at {dest}"
        ) from None
    if md5 is not None and h.hexdigest() != md5:
        tmp.unlink(missing_ok=True)
        raise DownloadError(
            f"{url} has MD5 {h.hexdigest()}, expected {md5}: the download is corrupt or the file changed; try again"
        )
    os.replace(tmp, dest)
    return dest


def extract_tar(archive: str | Path, root: str | Path) -> None:
    """Unpack a tar archive into ``root``, refusing members outside it and links (a doctored archive
    never writes anywhere else)."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(root, filter="data")  # refuses absolute paths, '..' and links out of root
        else:  # Pythons before the extraction filters: check the members ourselves
            for m in tar.getmembers():
                if m.name.startswith("/") or ".." in Path(m.name).parts or not (m.isfile() or m.isdir()):
                    raise tarfile.TarError(
                        f"{archive}: refusing member {m.name!r} (outside the folder or a link)"
                    )
            tar.extractall(root)


def _progress(name: str, total: int):  # type: ignore[no-untyped-def]
    from rich.progress import DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(*Progress.get_default_columns()[:2], DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   transient=True)  # fmt: skip
    task = bar.add_task(f"downloading {name}", total=total or None)
    bar.start()
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        bar.update(task, advance=n)
        if total and done >= total:
            bar.stop()

    return advance
