"""Fetching catalogue weights the way the ecosystem does, into the caches it already uses.

- A URL (torchvision's weights, timm's release files) goes to torch hub's checkpoint folder
  (``$TORCH_HOME/hub/checkpoints``, ``torch.hub.get_dir()``), under the URL's file name: a file that
  torchvision or ``torch.hub`` already downloaded is used as it is, never fetched again. The file's
  SHA-256 is checked against the prefix its name carries before it is used, every time; a download is
  streamed into a temporary file beside it and renamed only once complete and verified, so an
  interrupted download leaves nothing behind, and a mismatch deletes the file and says so.
- A Hugging Face Hub file (timm's weights) comes through ``huggingface_hub``: found in its cache
  (``HF_HOME`` / ``HF_HUB_CACHE``; whatever timm already put there) without asking the network, else
  downloaded by ``hf_hub_download`` with the Hub's own verification; ``HF_HUB_OFFLINE=1`` is honoured.

With no network, the error is one line naming the URL to fetch by hand and the ``--init FILE`` to
use instead.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import ImgclsError
from ..progress import progress_bar
from .catalogue import WeightEntry

CHUNK = 1 << 20
TIMEOUT_S = 30.0


class WeightsDownloadError(ImgclsError):
    """Weights that could not be fetched (no network, a server error)."""


class WeightsHashError(ImgclsError):
    """A file whose SHA-256 is not the one its name promises."""


def hub_checkpoints() -> Path:
    """torch hub's checkpoint cache: ``$TORCH_HOME/hub/checkpoints`` (``~/.cache/torch`` by default)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(entry: WeightEntry) -> Path | None:
    """The local file of ``entry`` when it is already downloaded (no network touched), else None."""
    if entry.url:
        path = hub_checkpoints() / entry.filename
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(entry.hf_repo, entry.hf_file)
    return Path(hit) if isinstance(hit, str) else None


def fetch(entry: WeightEntry, progress: bool = True) -> Path:
    """The local file of ``entry``, downloaded when not cached, its hash checked."""
    if entry.url:
        return _fetch_url(entry, progress)
    return _fetch_hub(entry)


def _offline_hint(entry: WeightEntry, reason: str, folder: Path | None = None) -> str:
    """What to do without a network, as commands that work: put the file where imgcls looks (it is
    checked by its hash there), then run the same command again."""
    if folder is not None:
        fetch = f"curl -L -o {folder / entry.filename} {entry.download_url}"
    else:
        fetch = (f"hf download {entry.hf_repo} {entry.hf_file} (Hugging Face's CLI, HF_HUB_OFFLINE unset: it "
                 f"puts {entry.download_url} in the Hub cache, $HF_HUB_CACHE or ~/.cache/huggingface/hub), then copy "
                 "that folder to the same place on this machine")  # fmt: skip
    return (f"cannot download {entry.tag} ({reason}). On a machine with a network: {fetch}; with the file "
            f"in place, run this command again. To train from a copy kept elsewhere: imgcls train --init FILE")  # fmt: skip


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _fetch_url(entry: WeightEntry, progress: bool) -> Path:
    folder = hub_checkpoints()
    path = folder / entry.filename
    if path.is_file():
        _check_hash(entry, path, sha256_of(path))
        return path
    folder.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(entry.url, headers={"User-Agent": "imgcls"})
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except (urllib.error.URLError, OSError) as e:
        raise WeightsDownloadError(_offline_hint(entry, _reason(e), folder)) from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{entry.filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    h = hashlib.sha256()
    try:
        with response, os.fdopen(fd, "wb") as out, progress_bar(disable=not progress) as bar:
            total = int(response.headers.get("Content-Length") or 0) or None
            task = bar.add_task(f"{entry.tag}", total=total, rate="")
            while block := response.read(CHUNK):
                out.write(block)
                h.update(block)
                bar.advance(task, len(block))
                speed = bar.tasks[0].speed
                done = bar.tasks[0].completed
                bar.update(
                    task, rate=f"{done / 1e6:,.1f} MB" + (f", {speed / 1e6:,.1f} MB/s" if speed else "")
                )
            out.flush()
            os.fsync(out.fileno())
        if total is not None and tmp.stat().st_size != total:
            raise WeightsDownloadError(
                _offline_hint(entry, f"the download stopped at {tmp.stat().st_size} of {total} bytes", folder)
            )
        _check_hash(entry, tmp, h.hexdigest(), downloaded=True)
        os.replace(tmp, path)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise WeightsDownloadError(_offline_hint(entry, _reason(e), folder)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _reason(e: BaseException) -> str:
    reason = getattr(e, "reason", None) or e
    return str(reason).strip() or type(e).__name__


def _check_hash(entry: WeightEntry, path: Path, digest: str, downloaded: bool = False) -> None:
    if entry.sha256_prefix and not digest.startswith(entry.sha256_prefix):
        path.unlink(missing_ok=True)
        what = "the downloaded file" if downloaded else str(path)
        raise WeightsHashError(
            f"{what} for {entry.tag} has SHA-256 {digest[:16]}..., not the {entry.sha256_prefix}... its name "
            f"promises: deleted it (fetch again, or check {entry.download_url})"
        )


def _fetch_hub(entry: WeightEntry) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    cached = cached_path(entry)
    if cached is not None:  # what timm (or an earlier fetch) put in the cache: no network asked
        return cached
    try:
        return Path(hf_hub_download(entry.hf_repo, entry.hf_file))
    except LocalEntryNotFoundError:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        reason = "HF_HUB_OFFLINE is set and it is not in the Hugging Face cache" if offline else "no network"
        raise WeightsDownloadError(_offline_hint(entry, reason)) from None
    except (HfHubHTTPError, OSError) as e:
        raise WeightsDownloadError(_offline_hint(entry, _reason(e))) from None
