"""Learning-rate schedules, stepped every optimiser step: linear warm-up, then cosine / linear (to
``min_lr``; what ``--budget`` uses, its end set by the budget) / step / one-cycle / constant; ``plateau`` divides the rate when validation stops improving (per epoch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from ..config import above, at_least, opt, share
from ..errors import ConfigError

SCHEDULES = ("cosine", "linear", "step", "onecycle", "plateau", "constant")


@dataclass
class ScheduleConfig:
    schedule: str = opt(
        "cosine", "cosine | linear | step | onecycle | plateau | constant (all per iteration)"
    )
    warmup_epochs: float = opt(
        0.0, "linear warm-up from lr * warmup_start over this many epochs", valid=at_least(0)
    )
    warmup_fraction: float = opt(
        0.0,
        "warm up over this share of the run instead of warmup_epochs (airbench: 0.23); follows --epochs",
        valid=share(high_open=True),
    )
    warmup_start: float = opt(0.01, "warm-up starts at this fraction of the peak rate", valid=share())
    min_lr: float = opt(0.0, "cosine / linear floor, as a fraction of the peak rate", valid=share())
    step_every: float = opt(
        30.0, "step schedule: multiply by step_gamma every this many epochs", valid=above(0)
    )
    step_gamma: float = opt(0.1, "step schedule factor", valid=share(low_open=True))
    onecycle_pct: float = opt(
        0.25,
        "one-cycle: fraction of the run spent rising (cosine up, then down)",
        valid=share(low_open=True, high_open=True),
    )
    end_at_hold: bool = opt(
        False,
        "a parameter the model stops training after some epochs (airbench's whitening bias) runs the schedule "
        "over its own epochs and reaches the end rate where it stops (airbench94_muon); otherwise it follows "
        "the run's",
    )
    plateau_patience: int = opt(
        2, "plateau: epochs without improvement before the rate drops", valid=at_least(0)
    )
    plateau_factor: float = opt(
        0.1,
        "plateau: factor applied at each drop",
        valid=share(low_open=True, high_open=True),
    )


class Scheduler:
    """Sets every group's lr = peak * group's lr_scale * factor(step); ``state_dict`` for exact resume."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        cfg: ScheduleConfig,
        peak_lr: float,
        total_steps: int,
        steps_per_epoch: int,
    ) -> None:
        if cfg.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {', '.join(SCHEDULES)}, got {cfg.schedule!r}")
        self.optimizer, self.cfg, self.peak = optimizer, cfg, peak_lr
        self.total, self.per_epoch = max(1, total_steps), max(1, steps_per_epoch)
        self.warmup = self._warmup_steps()
        self.step_count, self.plateau_scale, self.best, self.bad_epochs = 0, 1.0, -math.inf, 0
        self._apply()

    def _warmup_steps(self, total: int | None = None) -> int:
        if self.cfg.warmup_fraction:
            return round(self.cfg.warmup_fraction * (total or self.total))
        return round(self.cfg.warmup_epochs * self.per_epoch)

    def factor(self, step: int, total: int | None = None) -> float:
        """The rate's factor at ``step`` of a schedule ``total`` steps long (the run's by default)."""
        c = self.cfg
        total = total or self.total
        warmup = self.warmup if total == self.total else self._warmup_steps(total)
        if c.schedule == "onecycle":
            rise = max(1, round(c.onecycle_pct * total))
            if step < rise:
                return c.warmup_start + (1 - c.warmup_start) * (1 - math.cos(math.pi * step / rise)) / 2
            t = min(1.0, (step - rise) / max(1, total - rise))
            return c.min_lr + (1 - c.min_lr) * (1 + math.cos(math.pi * t)) / 2
        if step < warmup:
            return c.warmup_start + (1 - c.warmup_start) * step / warmup
        if c.schedule == "cosine":
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return c.min_lr + (1 - c.min_lr) * (1 + math.cos(math.pi * t)) / 2
        if c.schedule == "linear":
            t = min(1.0, (step - warmup) / max(1, total - warmup))
            return c.min_lr + (1 - c.min_lr) * (1 - t)
        if c.schedule == "step":
            return c.step_gamma ** math.floor(step / (c.step_every * self.per_epoch))
        return self.plateau_scale  # plateau and constant

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for g in self.optimizer.param_groups:
            held_from = g.get("held_from", 0) if self.cfg.end_at_hold else 0
            own = (
                self.factor(self.step_count, min(self.total, held_from * self.per_epoch)) if held_from else f
            )
            g["lr"] = self.peak * g.get("lr_scale", 1.0) * own

    def step(self) -> None:
        self.step_count += 1
        self._apply()

    def set_total(self, total: int) -> None:
        """Move the schedule's end (``--budget`` plans it from measured step times)."""
        self.total = max(1, total)
        self.warmup = self._warmup_steps()
        self._apply()

    def epoch_end(self, metric: float | None) -> None:
        """Plateau: drop the rate after ``plateau_patience`` epochs without a better ``metric``."""
        if self.cfg.schedule != "plateau" or metric is None:
            return
        if metric > self.best:
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.cfg.plateau_patience:
                self.plateau_scale *= self.cfg.plateau_factor
                self.bad_epochs = 0
        self._apply()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[-1]["lr"]

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step_count,
            "total": self.total,
            "plateau_scale": self.plateau_scale,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step_count, self.plateau_scale = state["step"], state["plateau_scale"]
        self.total = state.get("total", self.total)
        self.warmup = self._warmup_steps()
        self.best, self.bad_epochs = state["best"], state["bad_epochs"]
        self._apply()
