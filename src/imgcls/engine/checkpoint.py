"""What ``checkpoints/last.pt`` holds besides the model and optimiser: the random generators'
states (so that a resumed run draws the same numbers), and the check that nothing in it is
non-finite before it replaces the previous one. Writing it is atomic (``imgcls.fileio``)."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state() -> dict[str, Any]:
    """torch's, numpy's and Python's global generator states, as tensors and plain lists (what
    ``weights_only`` loading accepts)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _to_plain(random.getstate()),
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _to_plain(x: Any) -> Any:
    return [_to_plain(v) for v in x] if isinstance(x, tuple | list) else x


def first_non_finite(tree: Any, path: str = "") -> str | None:
    """The name of the first floating tensor in a checkpoint tree with a NaN or infinity, or None."""
    if isinstance(tree, torch.Tensor):
        return (
            path or "a tensor" if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else None
        )
    items = (
        tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list | tuple) else ()
    )
    for key, value in items:
        found = first_non_finite(value, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None
