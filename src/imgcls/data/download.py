"""Downloads for the datasets with official homes (``imgcls data download``): streamed to a hidden
``.part`` file next to the destination, checked against the published MD5, then renamed into place, so
an interrupted or corrupted download never leaves a file that looks complete; a transfer cut short
resumes where it stopped."""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

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
    """Fetch ``url`` to ``dest`` (skipped when ``dest`` exists with the right checksum).

    The bytes go to a hidden ``.NAME.part`` beside ``dest`` and are renamed into place only once complete
    and checked, so nothing under ``dest``'s name is ever partial. A transfer cut short keeps its
    ``.part``: the next call asks an HTTP server for the rest (a ``Range`` request) and carries on from
    there; a server that does not resume sends the whole file again. A checksum mismatch deletes it."""
    dest = Path(dest)
    if dest.exists() and (md5 is None or md5sum(dest) == md5):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    have = tmp.stat().st_size if tmp.exists() and url.startswith(("http://", "https://")) else 0
    h = hashlib.md5(usedforsecurity=False)
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        try:
            response = urllib.request.urlopen(request, timeout=60)
        except urllib.error.HTTPError as e:
            if e.code != 416 or not have:  # 416: nothing after byte `have`, the .part is the whole file
                raise
            response = None
        resumed = bool(have) and (response is None or response.status == 206)
        if resumed:
            with open(tmp, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
        with open(tmp, "ab" if resumed else "wb") as out:
            if response is not None:
                with response:
                    _copy(response, out, h, dest.name, have if resumed else 0, quiet)
            out.flush()
            os.fsync(out.fileno())
    except (OSError, http.client.HTTPException) as e:
        kept = tmp.stat().st_size if tmp.exists() else 0
        reason = f"the transfer stopped early: {e!r}" if isinstance(e, http.client.HTTPException) else str(e)
        resume = f"; {kept:,} bytes are kept in {tmp.name}: run it again to resume" if kept else ""
        raise DownloadError(
            f"could not download {url} ({reason}){resume}; check the network, or put the file at {dest}"
        ) from None
    if md5 is not None and h.hexdigest() != md5:
        tmp.unlink(missing_ok=True)
        raise DownloadError(
            f"{url} has MD5 {h.hexdigest()}, expected {md5}: the download is corrupt or the file changed; try again"
        )
    os.replace(tmp, dest)
    return dest


def _copy(response: Any, out: Any, h: Any, name: str, start: int, quiet: bool) -> None:
    """The response's body appended to ``out`` and ``h``; an early hang-up raises IncompleteRead."""
    length = int(response.headers.get("Content-Length") or 0)
    progress = None if quiet else _progress(name, start + length, start)
    got = 0
    while block := response.read(1 << 16):
        got += len(block)
        out.write(block)
        h.update(block)
        if progress is not None:
            progress(len(block))
    if length and got != length:  # the server closed the connection early
        out.flush()
        raise http.client.IncompleteRead(b"", length - got)


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


def _progress(name: str, total: int, start: int = 0):  # type: ignore[no-untyped-def]
    from rich.progress import DownloadColumn, Progress, TimeRemainingColumn, TransferSpeedColumn

    bar = Progress(*Progress.get_default_columns()[:2], DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                   transient=True)  # fmt: skip
    task = bar.add_task(f"downloading {name}", total=total or None, completed=start)
    bar.start()
    done = start

    def advance(n: int) -> None:
        nonlocal done
        done += n
        bar.update(task, advance=n)
        if total and done >= total:
            bar.stop()

    return advance
