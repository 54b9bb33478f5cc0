"""Honest timing: warm-up calls first, then repeats until both a count and a time are reached; the
median and the spread (the 10th to 90th percentile, relative to the median) are reported."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    repeats: int

    @property
    def spread(self) -> float:
        """(p90 - p10) / median: 0.05 means the middle 80 % of calls lie within 5 % of each other."""
        return (self.p90_s - self.p10_s) / self.median_s if self.median_s else 0.0


def time_calls(fn: Callable[[], object], warmup: int = 2, min_repeats: int = 5, min_time: float = 2.0,
               sync: Callable[[], None] = lambda: None) -> Timing:  # fmt: skip
    """Seconds per call of ``fn`` (``sync`` waits for an asynchronous device before the clock is read)."""
    for _ in range(warmup):
        fn()
    sync()
    times: list[float] = []
    while len(times) < min_repeats or sum(times) < min_time:
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    a = np.array(times)
    return Timing(float(np.median(a)), float(np.percentile(a, 10)), float(np.percentile(a, 90)), len(a))
