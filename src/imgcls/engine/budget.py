"""Training for a wall-clock budget (``--budget 10m``), with the budget-aware schedule of Li, Yumer &
Ramanan (ICLR 2020): the learning rate decays linearly to zero exactly at the end of the budget.

The budget is the whole command's: it counts from the process's start, so start-up (imports, data
decoding, the precision trial), data loading, every validation, checkpoints and the final test
evaluation are inside it. After the first steps (the first one, with its one-off costs, left out)
the hook knows the time of a step; it then plans the number of steps that fits what is left, with
the epochs' ends (validation and checkpoint) and the final evaluation reserved, and sets the
schedule's end there. At each epoch's end it plans again from what it measured, so the estimate
only improves. Under torchrun rank 0 plans and every rank takes its plan. The time used is saved in
the checkpoint: a resumed run gets what was left.
"""

from __future__ import annotations

import math
import re
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .hooks import Hook

if TYPE_CHECKING:
    from .trainer import Trainer

UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
MEASURE_STEPS = 4  # timed steps before the first plan (after the untimed first one)


def parse_duration(text: str) -> float:
    """'20s', '10m', '1.5h', '90' (seconds) -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*", text or "")
    if not m or float(m.group(1)) <= 0:
        raise ConfigError(f"--budget {text!r}: expected a duration such as 20s, 10m or 1h")
    return float(m.group(1)) * UNITS[m.group(2) or ""]


class Budget(Hook):
    def __init__(self, seconds: float, age_at_start: float) -> None:
        self.seconds, self.age = seconds, age_at_start
        self.step_times: list[float] = []
        self.last: float | None = None
        self.epoch_end_cost: float | None = None  # validation + checkpoint, measured
        self.planned = False

    # ---- time ----------------------------------------------------------------------------------
    def start(self, t: Trainer) -> None:
        self.t0 = time.perf_counter()
        self.base = t.state.budget_used + self.age  # an earlier run's share, and this process's start-up
        self.deadline = self.t0 + self.seconds - self.base
        self.last = None

    def used(self) -> float:
        """Seconds of the budget used so far, start-up and earlier runs of a resumed one included."""
        return self.base + time.perf_counter() - self.t0

    def step(self, t: Trainer, record: dict[str, Any]) -> None:
        now = time.perf_counter()
        if self.last is not None:
            self.step_times.append(now - self.last)
        self.last = now
        t.state.budget_used = self.used()
        if not self.planned and (len(self.step_times) >= MEASURE_STEPS or sum(self.step_times) > 1.0):
            self.plan(t)

    def epoch_start(self, t: Trainer) -> None:
        now = time.perf_counter()
        if self.last is not None:  # since the last step: the epoch's end (validation, checkpoint)
            self.epoch_end_cost = now - self.last
            if self.step_times:
                self.plan(t)
            self.last = now  # the next step's time includes starting the loader: what a step costs here

    # ---- the plan ------------------------------------------------------------------------------
    def step_seconds(self) -> float:
        recent = sorted(self.step_times[-50:])
        return recent[len(recent) // 2]  # the median: robust to a slow step (a checkpoint, a GC)

    def plan(self, t: Trainer) -> None:
        """Set the schedule's last step so that the steps left, the epochs' ends they cross and the final
        evaluation end at the deadline."""
        step_s = self.step_seconds()
        per_epoch = t.steps_per_epoch
        end_cost = self.epoch_end_cost if self.epoch_end_cost is not None else self.estimate_eval(t, step_s)
        final = end_cost + (self.estimate_test(t, step_s, end_cost) if t.cfg.eval_test else 0.0)
        left = self.deadline - time.perf_counter() - final
        done_in_epoch = t.state.batch // max(t.cfg.optim.accum_steps, 1)
        steps = max(0, int(left / step_s))
        for _ in range(20):  # the epochs' ends the steps cross cost time too
            ends = (done_in_epoch + steps) // per_epoch
            fit = max(0, int((left - ends * end_cost) / step_s))
            if fit == steps:
                break
            steps = fit
        total = t.dist.broadcast(t.state.step + steps)
        t.scheduler.set_total(total)
        self.planned = True

    def estimate_eval(self, t: Trainer, step_s: float, split: str = "val") -> float:
        """Before an evaluation was timed: a forward is about a third of a training step."""
        batches = math.ceil(_images(t, split) / max(t.cfg.batch_size * t.dist.world, 1))
        return step_s / 3 * batches

    def estimate_test(self, t: Trainer, step_s: float, val_cost: float) -> float:
        val, test = _images(t, "val"), _images(t, "test")
        return val_cost * test / val if val else self.estimate_eval(t, step_s, "test")

    def reached(self, t: Trainer) -> bool:
        """The plan's last step is done — or, on a run too short to plan, the time is up."""
        if self.planned:
            return t.state.step >= t.scheduler.total
        return time.perf_counter() >= self.deadline


def _images(t: Trainer, split: str) -> int:
    if split not in t.source.splits:
        return 0
    try:
        return len(t.source.split(split))
    except TypeError:  # a stream of shards of unknown length
        return 0
