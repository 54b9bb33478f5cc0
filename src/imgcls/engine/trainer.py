"""``imgcls.train(cfg)``: resolve the config (``resolve.py``), build the trainer from it, run the loop
(``loop.py``) with its hooks (``hooks.py``).

The trainer owns what the loop and the hooks share: the model and what trains of it (the whole model,
or for a linear probe its classifier layer over cached features), its wrapper for the forward pass
(DistributedDataParallel under torchrun: the loss of every head goes through it), optimiser,
scheduler, gradient scaler, EMA, the loaders (``loaders.py``), the run folder, and the ``TrainState``
(position, best scores, counters). ``checkpoints/last.pt`` (``checkpoint.py``) holds all of it plus
every rank's random-generator states, so a resumed run — after a stop, a kill, or a torchrun restart —
continues the same computation.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..features import classifier_layer
from ..progress import progress_bar
from ..run import RunMeta
from ..version import __version__
from . import bn_stats, checkpoint, validation
from . import hooks as h
from .budget import Budget, parse_duration
from .checkpoint import TrainState
from .clock import Clock, describe, process_age
from .config import TrainConfig
from .evaluate import selection_key
from .hooks import Hook, TrainingDivergedError
from .loaders import Loaders
from .loop import TrainForward, train_one_epoch
from .optim import LookaheadEMA, build_optimizer, held_from
from .precision import ModelEMA
from .resolve import ResolvedConfig, prepare, resolve
from .schedule import Scheduler
from .signals import GracefulStop

FIT_IMAGES = 5000  # training images a data-fitted layer (airbench's whitening) is computed from

__all__ = ["TrainResult", "TrainState", "Trainer", "TrainingDivergedError", "train"]


@dataclass
class TrainResult:
    run: Path
    status: str  # "finished" | "early_stopped" | "stopped" (stop_after_steps) | "interrupted" (signal)
    epoch: int
    step: int
    best: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)


class Trainer:
    def __init__(self, cfg: TrainConfig | ResolvedConfig, origins: dict[str, str] | None = None) -> None:
        r = cfg if isinstance(cfg, ResolvedConfig) else prepare(resolve(cfg))
        self.origins = origins  # where the config's values came from, for config.yaml's header
        try:
            self._build(r)
        except BaseException:
            if not r.resuming and r.dist.is_main:
                r.run.remove_if_unused()  # a run that could not start leaves no folder
            raise

    def _build(self, r: ResolvedConfig) -> None:
        self.r, self.cfg, self.dist, self.run = r, r.cfg, r.dist, r.run
        self.task, self.source, self.pre, self.aug = r.task, r.source, r.pre, r.aug
        self.model, self.device = r.model, r.dist.device
        self.precision, self.channels_last = self.cfg.precision, r.precision.channels_last
        self.state, self.clock, self.loader = TrainState(), Clock(), Loaders(r)
        self.probe = self.cfg.model.linear_probe
        # a probe trains only the final layer, on the backbone's cached pooled features
        self.net: nn.Module = classifier_layer(self.model) if self.probe else self.model
        self.steps_per_epoch = math.ceil(len(self.train_loader()) / self.cfg.optim.accum_steps)
        self.notes = list(r.notes)
        recompute, why = bn_stats.decide(self.cfg.bn_recompute, self.model, self.steps_per_epoch, self.probe)
        self.notes += [why] if why else []
        cfg = self.cfg = replace(self.cfg, bn_recompute=recompute)
        if r.fit_data:
            self.fit_model_to_data()
        # over every parameter: frozen ones get no gradient, so the optimiser leaves them as they are
        # until --freeze-epochs ends and they thaw
        self.optimizer = build_optimizer(self.net, cfg.optim, held_from(self.net, cfg.epochs))
        self.scheduler = Scheduler(self.optimizer, cfg.sched, cfg.optim.lr, cfg.epochs * self.steps_per_epoch,
                                   self.steps_per_epoch)  # fmt: skip
        self.ema = ModelEMA(self.model, cfg.ema) if cfg.ema and not self.probe else None
        self.lookahead = LookaheadEMA(self.net, cfg.optim.lookahead_ema) if cfg.optim.lookahead_ema else None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.ddp: nn.Module | None = None
        self.forward: nn.Module = self.net
        self.freeze = h.Freeze(cfg.model.freeze, cfg.model.freeze_epochs)
        self.freeze.epoch_start(self)  # the first epoch's parameters, and the wrapper for them
        self.stop: GracefulStop | None = None
        self.bar: Any = None
        self.pending_steps: list[dict[str, Any]] = []
        self.hooks: list[Hook] = []
        self.budget: Budget | None = None
        if r.resuming:
            checkpoint.load(self)
        elif self.dist.is_main:
            self.run.write_config(cfg, self.origins)
            self.run.write_labels(self.source.classes, self.source.class_ids)
        self.tb = None
        if self.dist.is_main:
            self.run.clean_temp()
            self.run.keep_lines(self.run.steps, lambda rec: rec["step"] <= self.state.step)
            self.run.keep_lines(self.run.metrics, lambda rec: rec["epoch"] < self.state.epoch)
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                purge = self.state.step if r.resuming else None
                self.tb = SummaryWriter(str(self.run.tensorboard), purge_step=purge)

    def size_at(self, epoch: int) -> int:
        return self.r.size_at(epoch)

    def train_loader(self) -> Any:
        return self.loader("train", self.size_at(self.state.epoch))

    def fit_model_to_data(self) -> None:
        """A model that sets part of itself from the data (airbench's whitening layer) gets the first
        FIT_IMAGES training images, not augmented, in the seeded order of epoch 0. (Under torchrun each
        rank fits on its own share; DistributedDataParallel then gives every rank rank 0's.)"""
        x = self.loader.first_images(self.size_at(0), FIT_IMAGES)
        self.model.fit_data(x.to(self.device))
        self.notes.append(
            f"model: {self.cfg.model.arch} fitted to {len(x):,} training images (its whitening layer)"
        )

    def say(self, text: str, always: bool = False) -> None:
        """A line of the log (rank 0; with ``always`` even when progress is not shown)."""
        if self.dist.is_main and (self.cfg.progress or always):
            if self.bar is not None:
                self.bar.console.print(text, soft_wrap=True)
            else:
                print(text, flush=True)

    def call(self, point: str, *args: Any) -> bool:
        """Every hook's method for ``point``, in order; True when one of them asks to end the run."""
        return any([bool(getattr(h, point)(self, *args)) for h in self.hooks])

    def wrap(self) -> None:
        """The forward module for the current trainable parameters: DDP under torchrun, compiled with
        --compile."""
        module = TrainForward(self.net)
        self.ddp = self.dist.wrap(module) if self.dist.enabled else None
        wrapped = self.ddp or module
        self.forward = torch.compile(wrapped) if self.cfg.compile else wrapped

    def stop_reason(self) -> str | None:
        """Decided on every rank alike: a signal to any rank stops all of them at this step."""
        if self.dist.any(self.stop is not None and self.stop.requested is not None):
            return "interrupted"
        if self.cfg.stop_after_steps and self.state.step >= self.cfg.stop_after_steps:
            return "stopped"
        if self.budget is not None and self.budget.reached(self):
            return "budget"
        return None

    @property
    def planned_epochs(self) -> int:
        """The epochs the run will take: --epochs, or what the budget's plan comes to."""
        if self.budget is None:
            return self.cfg.epochs
        return max(self.state.epoch + 1, math.ceil(self.scheduler.total / self.steps_per_epoch))

    # ---- the run -------------------------------------------------------------------------------
    def default_hooks(self) -> list[Hook]:
        cfg = self.cfg
        hooks: list[Hook] = [self.freeze, h.NonFiniteGuard(cfg.max_bad_steps)]
        if self.ema is not None:
            hooks.append(h.EMA())
        hooks += [h.StepLog(), h.EpochLog(), h.BestWeights(), h.EarlyStop(cfg.early_stop),
                  h.Checkpoint(cfg.save_every)]  # fmt: skip
        if self.budget is not None:
            hooks.append(self.budget)
        return hooks

    def fit(self, hooks: Sequence[Hook] = ()) -> TrainResult:
        """Train to the end (or a stop); ``hooks`` run after the default ones (imgcls tune's pruning)."""
        cfg, status = self.cfg, "finished"
        started = process_age()
        fit_start = time.perf_counter()
        self.budget = Budget(parse_duration(cfg.budget), started) if cfg.budget else None
        for note in self.notes:
            self.say(f"imgcls: {note}", always=True)
        with GracefulStop() as stop, progress_bar(disable=not (cfg.progress and self.dist.is_main)) as bar:
            self.stop, self.bar = stop, bar
            self.hooks = [*self.default_hooks(), *hooks]
            if cfg.progress and self.dist.is_main:  # a bar on a terminal, else plain lines in the log
                self.hooks.append(
                    h.ProgressBar(bar) if bar.console.is_terminal else h.ProgressLines(cfg.log_every)
                )
            self.call("start")
            while self.budget is not None or self.state.epoch < cfg.epochs:
                loader = self.train_loader()
                loader.set_epoch(self.state.epoch)
                self.call("epoch_start")
                reason = train_one_epoch(self, loader, self.state.batch)
                if reason == "budget":  # the budget's last step: validate what it trained, and end
                    self.end_epoch()
                    break
                if reason:
                    status = reason
                    self.save()
                    break
                if self.end_epoch():
                    status = "early_stopped"
                    break
            self.call("end", status)
            self.bar = None
        if self.tb is not None:
            self.tb.close()
        result = TrainResult(self.run.root, status, self.state.epoch, self.state.step, dict(self.state.best))
        if status in ("finished", "early_stopped") and cfg.eval_test and "test" in self.source.splits:
            result.test = validation.test(self)
        timings = self.clock.split(started, time.perf_counter() - fit_start)
        if self.dist.is_main:
            self.run.write_json(self.run.timings, timings)
        self.say(describe(timings), always=True)
        return result

    def end_epoch(self) -> bool:
        """Validate, log, keep the best weights, checkpoint; True when a hook ends the run."""
        val = validation.validate(self)
        s = self.state
        n = max(s.epoch_sums["n"], 1)
        train = {"loss": s.epoch_sums["loss"] / n, "acc": s.epoch_sums["correct"] / n}
        record = {"epoch": s.epoch, "step": s.step, "lr": self.scheduler.lr, "train": train, "val": val,
                  "skipped_steps": s.bad_total}  # fmt: skip
        self.scheduler.epoch_end(selection_key(val, self.task)[0] if val else None)
        self.loader.merge_bad_images(self.train_loader())
        s.epoch, s.batch, s.epoch_sums = s.epoch + 1, 0, {"loss": 0.0, "correct": 0.0, "n": 0.0}
        return self.call("epoch_end", record)

    @property
    def eval_model(self) -> nn.Module:
        """What is validated and saved: the EMA weights when EMA is on (for a probe: its layer)."""
        if self.probe:
            return self.net
        return self.ema.module if self.ema is not None else self.model

    def close(self) -> None:
        """Release the distributed wrapper, then the process group (a wrapper outliving its group,
        freed at interpreter exit, can abort the process)."""
        self.ddp = None
        self.forward = self.net
        if self.dist.enabled:
            gc.collect()
            self.dist.close()

    # ---- files ---------------------------------------------------------------------------------
    def meta(self) -> RunMeta:
        return RunMeta(
            model=self.cfg.model.arch, num_outputs=self.task.num_outputs, classes=list(self.source.classes),
            task=self.task.kind, preprocess=self.pre.to_dict(), model_args=dict(self.cfg.model.model_args),
            threshold=self.task.threshold, hflip=self.aug.mirror_share, pad_crop=self.aug.pad_crop,
            epoch=self.state.best.get("epoch"), val=dict(self.state.best), init=self.cfg.model.init,
            imgcls_version=__version__, test_precision=self.cfg.test_precision,
        )  # fmt: skip

    def save_best(self) -> None:
        if not self.dist.is_main:
            return
        model = self.model if self.probe else self.eval_model  # a probe saves the whole network
        state = model.state_dict()
        if all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            self.run.write_weights(state, self.meta())  # never non-finite weights as the best

    def flush_steps(self) -> None:
        if self.dist.is_main:
            self.run.append(self.run.steps, self.pending_steps, sync=True)
        self.pending_steps = []

    def save(self) -> None:
        """checkpoints/last.pt (``checkpoint.save``), timed as checkpoints."""
        with self.clock("checkpoint"):
            checkpoint.save(self)


def train(cfg: TrainConfig, origins: dict[str, str] | None = None) -> TrainResult:
    """Train as ``cfg`` says (or resume ``cfg.resume``); returns where the run is and how it ended.
    ``origins`` (``config.compose``'s) heads the run's config.yaml with where each value came from."""
    trainer = Trainer(cfg, origins)
    try:
        return trainer.fit()
    finally:
        trainer.close()
