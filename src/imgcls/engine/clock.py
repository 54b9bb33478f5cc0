"""Where a run's wall time goes: the process's start-up (imports, data, model, precision trial, up
to the first step), then named sections timed around the work — the training steps' forward,
backward and optimiser step, waiting for data, evaluation, checkpoints — and the rest, the loop's
own. ``timings.json`` in the run folder holds the split; the log prints it in one line."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

SECTIONS = ("data", "train", "eval", "checkpoint")
NAMES = {"startup": "start-up", "data": "waiting for data", "train": "training steps", "eval": "evaluation",
         "checkpoint": "checkpoints", "other": "the rest"}  # fmt: skip

_IMPORTED = time.perf_counter()


class Clock:
    """Seconds spent in each named section, summed over the run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(SECTIONS, 0.0)

    @contextlib.contextmanager
    def __call__(self, section: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[section] = self.seconds.get(section, 0.0) + time.perf_counter() - start

    def split(self, startup: float, fit_seconds: float) -> dict[str, float]:
        """{"total", "startup", the sections..., "other"}: ``startup`` from the process's start to the
        training loop, ``fit_seconds`` the loop's own wall time, of which ``other`` is what no section
        took (logs, hooks, the progress bar, setting up epochs)."""
        c = self.seconds
        other = max(fit_seconds - sum(c[k] for k in SECTIONS), 0.0)
        return {
            "total": startup + fit_seconds,
            "startup": startup,
            **{k: c[k] for k in SECTIONS},
            "other": other,
        }


def describe(parts: dict[str, float]) -> str:
    """The log's line: ``time: T s = start-up S s, waiting for data D s, ...``."""
    return f"time: {parts['total']:.1f} s = " + ", ".join(
        f"{NAMES[k]} {v:.1f} s" for k, v in parts.items() if k != "total"
    )


def process_age() -> float:
    """Seconds since this process started (Linux's /proc), else since this module was imported."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")
        return float(Path("/proc/uptime").read_text().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED
