"""``imgcls.train(cfg)``: resolve the config (``resolve.py``), build the trainer from it, run the loop
(``loop.py``) with its hooks (``hooks.py``).

The trainer owns what the loop and the hooks share: the model and what trains of it (the whole model,
or for a linear probe its classifier layer over cached features), its wrapper for the forward pass
(DistributedDataParallel under torchrun: the loss of every head goes through it), optimiser,
scheduler, gradient scaler, EMA, the loaders, the run folder, and the ``TrainState`` (position, best
scores, counters). ``checkpoints/last.pt`` holds all of it plus every rank's random-generator states,
so a resumed run — after a stop, a kill, or a torchrun restart — continues the same computation.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..amp import autocast
from ..data.loader import make_loader
from ..errors import ConfigError
from ..features import FeatureLoader, classifier_layer, extract
from ..fileio import load_safe, save_atomic
from ..models.base import Classifier
from ..progress import progress_bar
from ..run import RunMeta
from ..version import __version__
from .bn_stats import FEW_STEPS, recompute, training_norms
from .budget import Budget, parse_duration
from .checkpoint import first_non_finite, rng_state, set_rng_state
from .config import TrainConfig
from .evaluate import evaluate, selection_key
from .hooks import (
    EMA,
    BestWeights,
    Checkpoint,
    EarlyStop,
    EpochLog,
    Freeze,
    Hook,
    NonFiniteGuard,
    ProgressBar,
    ProgressLines,
    StepLog,
    TrainingDivergedError,
)
from .loop import train_one_epoch
from .optim import LookaheadEMA, build_optimizer
from .precision import ModelEMA
from .resolve import ResolvedConfig, resolve
from .schedule import Scheduler
from .signals import GracefulStop

FIT_IMAGES = 5000  # training images a data-fitted layer (airbench's whitening) is computed from
BN_BATCHES = 100  # batches of training images a batch-norm recomputation averages over, at most
AUX_WEIGHT = 0.3  # auxiliary heads' share of the loss (GoogLeNet's 0.3)

__all__ = ["TrainResult", "Trainer", "TrainingDivergedError", "train"]


@dataclass
class TrainResult:
    run: Path
    status: str  # "finished" | "early_stopped" | "stopped" (stop_after_steps) | "interrupted" (signal)
    epoch: int
    step: int
    best: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)


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


class TrainForward(nn.Module):
    """What the training step calls: (logits, auxiliary logits). DistributedDataParallel wraps this
    module, so every head's loss, auxiliary ones included, goes through the wrapper."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.aux = (
            isinstance(net, Classifier) and type(net)._forward_with_aux is not Classifier._forward_with_aux
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.net.forward_with_aux(x) if self.aux else (self.net(x), [])


class Clock:
    """Where the wall time goes: named sections timed around the work (the training steps' forward,
    backward and optimiser step; waiting for data; evaluation; checkpoints); the rest is the loop's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"data": 0.0, "train": 0.0, "eval": 0.0, "checkpoint": 0.0}

    @contextlib.contextmanager
    def __call__(self, section: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[section] = self.seconds.get(section, 0.0) + time.perf_counter() - start


def process_age() -> float:
    """Seconds since this process started (Linux's /proc), else since the trainer was imported."""
    try:
        start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / os.sysconf(
            "SC_CLK_TCK"
        )
        return float(Path("/proc/uptime").read_text().split()[0]) - start
    except (OSError, ValueError, IndexError):
        return time.perf_counter() - _IMPORTED


_IMPORTED = time.perf_counter()


class Trainer:
    def __init__(self, cfg: TrainConfig | ResolvedConfig) -> None:
        r = cfg if isinstance(cfg, ResolvedConfig) else resolve(cfg)
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
        self.state = TrainState()
        self.clock = Clock()
        self._loaders: dict[tuple[str, int], Any] = {}
        self.probe = self.cfg.model.linear_probe
        if self.probe:  # only the final layer trains, on the backbone's cached pooled features
            self.net: nn.Module = classifier_layer(self.model)
        else:
            self.net = self.model
        cfg = self.cfg
        self.steps_per_epoch = math.ceil(len(self.train_loader()) / cfg.optim.accum_steps)
        self.notes = list(r.notes)
        cfg = self.cfg = replace(cfg, bn_recompute=self._bn_recompute())
        if self.model.fits_data and not r.resuming and not cfg.model.init and not self.probe:
            self.fit_model_to_data()
        # over every parameter: frozen ones get no gradient, so the optimiser leaves them as they are
        # until --freeze-epochs ends and they thaw
        self.optimizer = build_optimizer(self.net, cfg.optim)
        self.scheduler = Scheduler(self.optimizer, cfg.sched, cfg.optim.lr, cfg.epochs * self.steps_per_epoch,
                                   self.steps_per_epoch)  # fmt: skip
        self.ema = ModelEMA(self.model, cfg.ema) if cfg.ema and not self.probe else None
        self.lookahead = LookaheadEMA(self.net, cfg.optim.lookahead_ema) if cfg.optim.lookahead_ema else None
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.ddp: nn.Module | None = None
        self.forward: nn.Module = self.net
        self.freeze = Freeze(cfg.model.freeze, cfg.model.freeze_epochs)
        self.freeze.epoch_start(self)  # the first epoch's parameters, and the wrapper for them
        self.stop: GracefulStop | None = None
        self.bar: Any = None
        self.pending_steps: list[dict[str, Any]] = []
        self.hooks: list[Hook] = []
        self.budget: Budget | None = None
        if r.resuming:
            self._load()
        elif self.dist.is_main:
            self.run.write_config(cfg)
            self.run.write_labels(self.source.classes, self.source.class_ids)
        self.tb = None
        if self.dist.is_main:
            self.run.clean_temp()
            self.run.keep_lines(self.run.steps, lambda rec: rec["step"] <= self.state.step)
            self.run.keep_lines(self.run.metrics, lambda rec: rec["epoch"] < self.state.epoch)
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(
                    str(self.run.tensorboard), purge_step=self.state.step if r.resuming else None
                )

    def size_at(self, epoch: int) -> int:
        return self.r.size_at(epoch)

    def fit_model_to_data(self) -> None:
        """A model that sets part of itself from the data (airbench's whitening layer) gets the first
        FIT_IMAGES training images, not augmented, in the seeded order of epoch 0. (Under torchrun each
        rank fits on its own share; DistributedDataParallel then gives every rank rank 0's.)"""
        clean = self.loader("train", self.size_at(0), augment=False)
        clean.set_epoch(0)
        images = list(itertools.islice((b.images for b in clean.iter_from(0)),
                                       math.ceil(FIT_IMAGES / max(1, self.cfg.batch_size))))  # fmt: skip
        x = torch.cat(images)[:FIT_IMAGES]
        self.model.fit_data(x.to(self.device))
        self.notes.append(
            f"model: {self.cfg.model.model} fitted to {len(x):,} training images (its whitening layer)"
        )

    def _bn_recompute(self) -> str:
        """--bn-recompute decided ("on" | "off"), with the reason in the log when auto turns it on."""
        mode = self.cfg.bn_recompute
        if mode not in ("auto", "on", "off"):
            raise ConfigError(f"bn_recompute must be auto, on or off, got {mode!r}")
        if self.probe or not any(
            isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()
        ):
            return "off"
        if mode == "auto":
            mode = "on" if self.steps_per_epoch < FEW_STEPS else "off"
            if mode == "on":
                self.notes.append(
                    f"batch norm: statistics recomputed on the training images before each evaluation "
                    f"({self.steps_per_epoch} steps per epoch are too few for the running averages to settle)"
                )
        return mode

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

    # ---- data ----------------------------------------------------------------------------------
    def loader(self, split: str, size: int, augment: bool = True) -> Any:
        """The split's loader at this input size; training's augments and shuffles unless not ``augment``."""
        key = (split, size, augment)
        if key not in self._loaders:
            self._loaders[key] = (
                self._feature_loader(split) if self.probe else self._image_loader(split, size, augment)
            )
        return self._loaders[key]

    def train_loader(self) -> Any:
        return self.loader("train", self.size_at(self.state.epoch))

    def _image_loader(self, split: str, size: int, augment: bool = True) -> Any:
        cfg, dist = self.cfg, self.dist
        training = split == "train" and augment
        pre = self.pre if size == self.pre.size else replace(self.pre, size=size)
        try:
            more_than_a_batch = len(self.source.split(split)) > cfg.batch_size
        except TypeError:  # streamed shards of unknown length
            more_than_a_batch = True
        return make_loader(
            self.source, split, pre, self.aug if training else None, cfg.batch_size, seed=cfg.seed,
            shuffle=split == "train", workers=self.r.workers, drop_last=training and more_than_a_batch, rank=dist.rank,
            world=dist.world, on_bad_image=cfg.data.on_bad_image, max_bad_fraction=cfg.data.max_bad_fraction,
            bad_report=self.run.bad_images if dist.is_main else None,
            smoothing=cfg.task.label_smoothing if self.task.kind == "multiclass" else 0.0,
            sample_weights=self.r.sample_weights if training else None,
            progress=cfg.progress and dist.is_main,
        )  # fmt: skip

    def _feature_loader(self, split: str) -> Any:
        cfg = self.cfg
        key = f"{cfg.model.model}:{json.dumps(cfg.model.model_args, sort_keys=True)}:{self.task.num_outputs}"
        x, y = extract(self.model, self.source, split, self.pre, init=cfg.model.init, key=key,
                       batch_size=max(cfg.batch_size, 128), progress=cfg.progress and self.dist.is_main)  # fmt: skip
        return FeatureLoader(torch.from_numpy(x), torch.from_numpy(y), cfg.batch_size, train=split == "train",
                             seed=cfg.seed, rank=self.dist.rank, world=self.dist.world)  # fmt: skip

    def batches(self, loader: Any, start: int) -> Iterator[tuple[int, Any, bool]]:
        """(batch number, batch, is the epoch's last) from ``start``. Loaders whose ranks may run out
        at different batches (streamed shards) end the epoch on every rank when the first one does."""
        it = iter(loader.iter_from(start))
        uneven = getattr(loader, "uneven", False) and self.dist.enabled

        def fetch() -> Any:
            with self.clock("data"):
                batch = next(it, None)
            if uneven and not self.dist.all(batch is not None):
                return None
            return batch

        current, b = fetch(), start
        while current is not None:
            following = fetch()
            yield b, current, following is None
            current, b = following, b + 1

    def inputs(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        x = batch.images
        if x.ndim == 4:
            x = x.to(
                self.device,
                memory_format=torch.channels_last if self.channels_last else torch.contiguous_format,
            )
        else:
            x = x.to(self.device)
        return x, batch.targets.to(self.device)

    # ---- the step's parts ----------------------------------------------------------------------
    def wrap(self) -> None:
        """The forward module for the current trainable parameters: DDP under torchrun, compiled with
        --compile."""
        module = TrainForward(self.net)
        self.ddp = self.dist.wrap(module) if self.dist.enabled else None
        wrapped = self.ddp or module
        self.forward = torch.compile(wrapped) if self.cfg.compile else wrapped

    def gradient_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        """Gradients are all-reduced in the backward of the step's last batch only."""
        return self.ddp.no_sync() if self.ddp is not None and not sync else contextlib.nullcontext()

    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.precision):
            logits, aux = self.forward(x)
            loss = self.task.loss(logits, y) + sum(AUX_WEIGHT * self.task.loss(a, y) for a in aux)
        return loss, logits

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def optimizer_step(self, x: torch.Tensor, y: torch.Tensor, scale: float = 1.0) -> None:
        """SAM's second pass (at the perturbed weights, through the wrapper), clipping, the step."""
        opt, cfg = self.optimizer, self.cfg.optim
        if scale != 1.0:
            for p in self.net.parameters():
                if p.grad is not None:
                    p.grad.mul_(scale)
        if getattr(opt, "requires_second_pass", False):
            opt.first_step()
            opt.zero_grad(set_to_none=True)
            self.backward(self.forward_loss(x, y)[0])
        if cfg.clip_grad:
            self.scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip_grad)
        self.scaler.step(opt)
        self.scaler.update()
        opt.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.lookahead is not None:
            self.lookahead.update(self.net, self.scheduler.step_count, self.scheduler.total)

    def step_record(self, group: list[tuple[float, int, float]]) -> dict[str, Any]:
        """The step's loss (mean over its batches and every rank's), images and correct decisions."""
        loss, n, correct = self.dist.sum(
            [sum(g[0] for g in group), sum(g[1] for g in group), sum(g[2] for g in group)]
        )
        return {"epoch": self.state.epoch, "loss": loss / max(n, 1), "images": int(n), "correct": correct}

    def log_step(self, record: dict[str, Any]) -> None:
        s = self.state
        s.step += 1
        s.epoch_sums["loss"] += record["loss"] * record["images"]
        s.epoch_sums["n"] += record["images"]
        s.epoch_sums["correct"] += record.pop("correct")
        record.update(step=s.step, lr=self.scheduler.lr)

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
        hooks: list[Hook] = [self.freeze, NonFiniteGuard(cfg.max_bad_steps)]
        if self.ema is not None:
            hooks.append(EMA())
        hooks += [StepLog(), EpochLog(), BestWeights(), EarlyStop(cfg.early_stop), Checkpoint(cfg.save_every)]
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
                    ProgressBar(bar) if bar.console.is_terminal else ProgressLines(cfg.log_every)
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
            result.test = self.test()
        self.report_time(started, time.perf_counter() - fit_start)
        return result

    def end_epoch(self) -> bool:
        """Validate, log, keep the best weights, checkpoint; True when a hook ends the run."""
        val = self.validate()
        s = self.state
        train = {
            "loss": s.epoch_sums["loss"] / max(s.epoch_sums["n"], 1),
            "acc": s.epoch_sums["correct"] / max(s.epoch_sums["n"], 1),
        }
        record = {"epoch": s.epoch, "step": s.step, "lr": self.scheduler.lr, "train": train, "val": val,
                  "skipped_steps": s.bad_total}  # fmt: skip
        self.scheduler.epoch_end(selection_key(val, self.task)[0] if val else None)
        self.merge_bad_images()
        s.epoch, s.batch, s.epoch_sums = s.epoch + 1, 0, {"loss": 0.0, "correct": 0.0, "n": 0.0}
        return self.call("epoch_end", record)

    @property
    def eval_model(self) -> nn.Module:
        """What is validated and saved: the EMA weights when EMA is on (for a probe: its layer)."""
        if self.probe:
            return self.net
        return self.ema.module if self.ema is not None else self.model

    def validate(self) -> dict[str, float]:
        """The val split's metrics; {} when there is none (--val-fraction 0)."""
        if "val" not in self.source.splits:
            return {}
        with self.clock("eval"):
            if self.cfg.bn_recompute == "on":
                self.recompute_bn()
            self.dist.average_buffers(self.model)  # each rank's batch-norm statistics saw its own share
            if self.ema is not None:
                self.dist.average_buffers(self.ema.module)
            val = self.loader("val", self.size_at(self.cfg.epochs - 1))
            return evaluate(
                self.eval_model, val, self.task, self.device, self.precision, self.channels_last, self.dist
            )

    def recompute_bn(self) -> None:
        """The evaluated model's training batch-norm layers' statistics, averaged over this rank's
        share of the training images (not augmented; at most BN_BATCHES batches of them, in the
        seeded order of the epoch) with the current weights."""
        names = training_norms(self.model)
        clean = self.loader("train", self.size_at(self.cfg.epochs - 1), augment=False)  # the evaluated size
        clean.set_epoch(self.state.epoch)
        batches = (b.images for b in itertools.islice(clean.iter_from(0), BN_BATCHES))
        recompute(self.eval_model, names, batches, self.device, self.precision, self.channels_last)

    def test(self) -> dict[str, float]:
        """The best weights on the test split, written to test_metrics.json — in fp32 contiguous, as
        ``imgcls eval`` and ``imgcls predict`` run them, so the recorded figure is the one they give
        (a bf16 evaluation differs by an image or two in 10,000)."""
        self.dist.barrier()  # rank 0 has written model.safetensors
        if self.run.weights.is_file():
            state, _ = self.run.read_weights()
            self.model.load_state_dict(state)
        model = self.net if self.probe else self.model
        with self.clock("eval"):
            metrics = evaluate(model, self.loader("test", self.size_at(self.cfg.epochs - 1)), self.task, self.device,
                               "fp32", False, self.dist, tta=self.cfg.test_tta)  # fmt: skip
        if self.dist.is_main:
            tta = {"tta": self.cfg.test_tta} if self.cfg.test_tta != "none" else {}
            self.run.write_json(self.run.test_metrics, {**metrics, **tta})
        return metrics

    def merge_bad_images(self) -> None:
        """With several ranks each met its own bad files: rank 0 writes them all into one report."""
        if not self.dist.enabled or self.cfg.data.on_bad_image != "skip" or self.probe:
            return
        mine = {
            k: v for ld in self._loaders.values() if hasattr(ld, "bad_log") for k, v in ld.bad_log.bad.items()
        }
        merged = {k: v for part in self.dist.gather(mine) for k, v in part.items()}
        if self.dist.is_main and merged:
            log = self.train_loader().bad_log
            log.bad.update(merged)
            log.write()

    def report_time(self, started: float, fit_seconds: float) -> None:
        """Where the wall time went, printed and written to timings.json."""
        c = self.clock.seconds
        startup = started  # process start until fit(): imports, data, model, precision trial
        other = max(fit_seconds - c["data"] - c["train"] - c["eval"] - c["checkpoint"], 0.0)
        parts = {
            "startup": startup,
            "data": c["data"],
            "train": c["train"],
            "eval": c["eval"],
            "checkpoint": c["checkpoint"],
            "other": other,  # the loop around the steps: logs, hooks, the progress bar, epoch set-up
        }
        total = startup + fit_seconds
        if self.dist.is_main:
            self.run.write_json(self.run.timings, {"total": total, **parts})
        names = {"startup": "start-up", "data": "waiting for data", "train": "training steps",
                 "eval": "evaluation", "checkpoint": "checkpoints", "other": "the rest"}  # fmt: skip
        self.say(
            f"time: {total:.1f} s = " + ", ".join(f"{names[k]} {v:.1f} s" for k, v in parts.items()),
            always=True,
        )

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
            model=self.cfg.model.model, num_outputs=self.task.num_outputs, classes=list(self.source.classes),
            task=self.task.kind, preprocess=self.pre.to_dict(), model_args=dict(self.cfg.model.model_args),
            threshold=self.task.threshold, hflip=self.aug.hflip, pad_crop=self.aug.pad_crop,
            epoch=self.state.best.get("epoch"), val=dict(self.state.best), init=self.cfg.model.init,
            imgcls_version=__version__,
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
        """checkpoints/last.pt, atomically (rank 0; every rank's generator states in it); refused, with
        the previous one kept, when anything in it is not finite."""
        with self.clock("checkpoint"):
            rngs = self.dist.gather(rng_state())
            bad = None
            if self.dist.is_main:
                self.flush_steps()
                state = {
                    "model": self.model.state_dict(),
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict(),
                    "ema": self.ema.state_dict() if self.ema is not None else None,
                    "lookahead_ema": self.lookahead.state_dict() if self.lookahead is not None else None,
                    "rng": rngs,
                    "world": self.dist.world,
                    "position": {
                        "epoch": self.state.epoch,
                        "batch": self.state.batch,
                        "step": self.state.step,
                    },
                    "progress": {
                        k: v for k, v in asdict(self.state).items() if k not in ("epoch", "batch", "step")
                    },
                }
                bad = first_non_finite(state)
                if bad is None:
                    save_atomic(state, self.run.last)
            else:
                self.pending_steps = []
            bad = self.dist.broadcast(bad)
            if bad is not None:  # never replace a good checkpoint with a broken one
                raise TrainingDivergedError(
                    f"{bad} is not finite at step {self.state.step}: nothing was saved, and checkpoints/last.pt keeps "
                    f"the last finite state. Lower the learning rate (--lr {self.cfg.optim.lr:g} now), add "
                    f"--clip-grad, then resume with imgcls train --resume {self.run.root} or start again"
                )
            self.dist.barrier()

    def _load(self) -> None:
        state = load_safe(self.run.last, self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if self.lookahead is not None and state.get("lookahead_ema") is not None:
            self.lookahead.load_state_dict(state["lookahead_ema"])
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]  # format 1: one process's
        saved_world = int(state.get("world", 1))
        pos, prog = state["position"], state["progress"]
        if len(rngs) == self.dist.world:
            set_rng_state(rngs[self.dist.rank])
        elif self.dist.is_main:
            print(f"imgcls: resuming {saved_world} processes' run on {self.dist.world}: the data and dropout "
                  "continue, but not bit for bit", file=sys.stderr)  # fmt: skip
        s = self.state
        s.epoch, s.step = pos["epoch"], pos["step"]
        s.batch = pos["batch"] * saved_world // self.dist.world  # the same share of the epoch
        s.best, s.bad_total, s.stale_epochs = prog["best"], prog["bad_total"], prog["stale_epochs"]
        s.bad_in_row, s.epoch_sums = prog.get("bad_in_row", 0), prog["epoch_sums"]
        if "best_key" in prog:
            s.best_key = list(prog["best_key"])
        elif prog.get("best"):  # format 1 kept the score alone
            s.best_key = [prog["best_score"], -prog["best"]["loss"]]


def train(cfg: TrainConfig) -> TrainResult:
    """Train as ``cfg`` says (or resume ``cfg.resume``); returns where the run is and how it ended."""
    trainer = Trainer(cfg)
    try:
        return trainer.fit()
    finally:
        trainer.close()
