"""Files that survive being killed, and weight files that cannot run code (the ground floor: every
layer that writes or reads weights uses these).

``atomic_write`` writes to a temporary file beside the target, fsyncs it, renames it over the target
and fsyncs the folder: at every instant the target is either the previous complete file or the new
complete file. A kill mid-write leaves only a ``*.tmp-PID`` file, which ``clean_temp`` removes.

``load_safe`` is ``torch.load(weights_only=True)``: tensors, numbers, strings and containers only. A
file whose pickle asks for anything else (``os.system``...) is refused with ``UnsafeWeightsError``
before any of it runs; there is no fallback to a full unpickle. ``save_safetensors`` /
``load_safetensors`` write and read safetensors (no pickle at all) with JSON metadata.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from .errors import ImgclsError


class UnsafeWeightsError(ImgclsError, pickle.UnpicklingError):
    """A weight or checkpoint file that would run code (or is not a weights file at all)."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(f)`` on a temporary file, then put it in place of ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def save_atomic(obj: Any, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def write_text_atomic(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def clean_temp(folder: str | Path) -> list[Path]:
    """Remove the temporary files of interrupted saves; returns what was removed."""
    removed = []
    for p in Path(folder).glob("*.tmp-*"):
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def load_safe(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load`` with ``weights_only=True``; code-running pickles raise ``UnsafeWeightsError``."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ImgclsError(f"weights file {str(path)!r} does not exist") from None
    except pickle.UnpicklingError as e:
        raise UnsafeWeightsError(
            f"refusing {str(path)!r}: it is not a plain weights file ({str(e).splitlines()[0][:200]}). "
            "Loading it could run code; only load files you trust, converted to safetensors"
        ) from None
    except (RuntimeError, EOFError, ValueError) as e:
        raise ImgclsError(
            f"{str(path)!r} is not a readable checkpoint ({str(e).splitlines()[0][:200]})"
        ) from None


def save_safetensors(state: dict[str, torch.Tensor], path: str | Path, metadata: dict[str, Any]) -> None:
    """Tensors (contiguous, on the CPU) and ``metadata`` (each value as JSON) as a safetensors file."""
    from safetensors.torch import save

    tensors = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    blob = save(tensors, metadata={k: json.dumps(v) for k, v in metadata.items()})
    atomic_write(path, lambda f: f.write(blob))


def load_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata with each value decoded from JSON) of a safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        raise ImgclsError(f"{str(path)!r} is not a readable safetensors file ({e})") from None
    meta = {}
    for k, v in raw.items():
        try:
            meta[k] = json.loads(v)
        except json.JSONDecodeError:
            meta[k] = v  # metadata written by another tool: plain strings
    return tensors, meta
