"""``checkpoints/last.pt``: what it holds, how it is written and read back.

It holds the model, optimiser, scheduler, gradient scaler, EMA and Lookahead-EMA states, the
``TrainState`` (where the run is and what it remembers), and every rank's random generators' states
(so that a resumed run draws the same numbers). ``save`` refuses a state with anything non-finite in
it (the previous checkpoint is kept); writing is atomic (``imgcls.fileio``), reading never runs code
(``load_safe``).
"""

from __future__ import annotations

import random
import sys
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..fileio import load_safe, save_atomic
from .hooks import TrainingDivergedError

if TYPE_CHECKING:
    from .trainer import Trainer


@dataclass
class TrainState:
    """Where the run is and what it remembers; saved in every checkpoint."""

    epoch: int = 0
    batch: int = 0  # the next batch of the epoch
    step: int = 0
    best_key: list[float] = field(default_factory=list)  # selection_key of the best epoch
    best: dict[str, float] = field(default_factory=dict)  # its val scores and epoch
    bad_total: int = 0
    bad_in_row: int = 0
    stale_epochs: int = 0
    budget_used: float = 0.0  # seconds of --budget used (a resumed run gets the rest)
    epoch_sums: dict[str, float] = field(default_factory=lambda: {"loss": 0.0, "correct": 0.0, "n": 0.0})


def save(t: Trainer) -> None:
    """checkpoints/last.pt, atomically (rank 0; every rank's generator states in it); refused, with
    the previous one kept, when anything in it is not finite."""
    rngs = t.dist.gather(rng_state())
    bad = None
    if t.dist.is_main:
        t.flush_steps()
        position = {"epoch": t.state.epoch, "batch": t.state.batch, "step": t.state.step}
        state = {
            "model": t.model.state_dict(),
            "optimizer": t.optimizer.state_dict(),
            "scheduler": t.scheduler.state_dict(),
            "scaler": t.scaler.state_dict(),
            "ema": t.ema.state_dict() if t.ema is not None else None,
            "lookahead_ema": t.lookahead.state_dict() if t.lookahead is not None else None,
            "rng": rngs,
            "world": t.dist.world,
            "position": position,
            "progress": {k: v for k, v in asdict(t.state).items() if k not in position},
        }
        bad = first_non_finite(state)
        if bad is None:
            save_atomic(state, t.run.last)
    else:
        t.pending_steps = []
    bad = t.dist.broadcast(bad)
    if bad is not None:  # never replace a good checkpoint with a broken one
        raise TrainingDivergedError(
            f"{bad} is not finite at step {t.state.step}: nothing was saved, and checkpoints/last.pt keeps "
            f"the last finite state. Lower the learning rate (--lr {t.cfg.optim.lr:g} now), add "
            f"--clip-grad, then resume with imgcls train --resume {t.run.root} or start again"
        )
    t.dist.barrier()


def load(t: Trainer) -> None:
    """The trainer's states from its run's checkpoint; on as many processes as saved it, each rank's
    own generators (on another count, the data and dropout continue, but not bit for bit)."""
    state = load_safe(t.run.last, t.device)
    t.model.load_state_dict(state["model"])
    t.optimizer.load_state_dict(state["optimizer"])
    t.scheduler.load_state_dict(state["scheduler"])
    t.scaler.load_state_dict(state["scaler"])
    if t.ema is not None and state["ema"] is not None:
        t.ema.load_state_dict(state["ema"])
    if t.lookahead is not None and state.get("lookahead_ema") is not None:
        t.lookahead.load_state_dict(state["lookahead_ema"])
    rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]  # format 1: one process's
    saved_world = int(state.get("world", 1))
    pos, prog = state["position"], state["progress"]
    if len(rngs) == t.dist.world:
        set_rng_state(rngs[t.dist.rank])
    elif t.dist.is_main:
        print(f"imgcls: resuming {saved_world} processes' run on {t.dist.world}: the data and dropout "
              "continue, but not bit for bit", file=sys.stderr)  # fmt: skip
    s = t.state
    s.epoch, s.step = pos["epoch"], pos["step"]
    s.batch = pos["batch"] * saved_world // t.dist.world  # the same share of the epoch
    s.best, s.bad_total, s.stale_epochs = prog["best"], prog["bad_total"], prog["stale_epochs"]
    s.bad_in_row, s.epoch_sums = prog.get("bad_in_row", 0), prog["epoch_sums"]
    if "best_key" in prog:
        s.best_key = list(prog["best_key"])
    elif prog.get("best"):  # format 1 kept the score alone
        s.best_key = [prog["best_score"], -prog["best"]["loss"]]


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
