"""``imgcls.train(cfg)``: set a run up from its config, then the loop.

The loop is ``train_step`` (one screen) plus what hooks in around it: evaluation and checkpoints
at epoch ends (and every ``save_every`` steps), logs, EMA, guards against non-finite losses,
signals. Everything a resumed run needs is in ``checkpoints/last.pt``: model, optimiser,
scheduler, scaler, EMA, RNG states, and the data position (epoch, next batch) — the loaders'
randomness is a function of (seed, epoch, index), so resuming at a batch replays the same stream.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import dump_yaml, from_dict, load_yaml
from ..errors import ConfigError, ImgclsError
from ..tasks import Task, class_weights_auto, pos_weight_auto
from .checkpoint import clean_temp, load_safe, save_atomic, save_safetensors, write_text_atomic
from .config import TrainConfig, parse_size_schedule
from .evaluate import evaluate, score, scores
from .optim import build_optimizer
from .precision import ModelEMA, autocast, choose
from .schedule import Scheduler
from .signals import GracefulStop

RESUME_OVERRIDES = ("stop_after_steps", "save_every", "progress", "tensorboard", "eval_test", "threads")
AUX_WEIGHT = 0.3  # auxiliary heads' share of the loss (GoogLeNet's 0.3)


class TrainingDivergedError(ImgclsError, RuntimeError):
    """The loss stayed non-finite for ``max_bad_steps`` steps in a row."""

    exit_code = 3


@dataclass
class TrainResult:
    run: Path
    status: str  # "finished" | "early_stopped" | "stopped" (stop_after_steps) | "interrupted" (signal)
    epoch: int
    step: int
    best: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)


def new_run_folder(cfg: TrainConfig) -> Path:
    base = Path(cfg.out)
    name = cfg.name or cfg.model.model
    folder, n = base / name, 1
    while folder.exists() and any(folder.iterdir()):
        n += 1
        folder = base / f"{name}-{n}"
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    return folder


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _to_plain(random.getstate()),
    }


def _to_plain(x: Any) -> Any:
    return [_to_plain(v) for v in x] if isinstance(x, tuple | list) else x


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _jsonl_keep(path: Path, keep: Any) -> None:
    """Drop the lines a resumed run will write again (those after its checkpoint)."""
    if path.is_file():
        lines = [ln for ln in path.read_text().splitlines() if ln.strip() and keep(json.loads(ln))]
        write_text_atomic(path, "".join(ln + "\n" for ln in lines))


class Trainer:
    def __init__(self, cfg: TrainConfig) -> None:
        from .. import create_model, model_info
        from ..data import make_loader, open_source, preprocess_for

        resume = Path(cfg.resume) if cfg.resume else None
        if resume is not None:
            if not (resume / "config.yaml").is_file():
                raise ConfigError(f"--resume {str(resume)!r}: no config.yaml there (is it a run folder?)")
            saved = from_dict(TrainConfig, load_yaml(resume / "config.yaml"))
            for name in RESUME_OVERRIDES:  # how to run, not what to compute: the caller's say
                setattr(saved, name, getattr(cfg, name))
            saved.data.workers = cfg.data.workers
            cfg, cfg.resume = saved, str(resume)
        if not cfg.model.model:
            raise ConfigError("no model given: --model NAME (imgcls models lists them)")
        if not cfg.data.data:
            raise ConfigError("no data given: --data SOURCE (e.g. mnist:data/mnist; see the README)")
        if cfg.optim.sam and cfg.optim.accum_steps > 1:
            raise ConfigError("SAM with gradient accumulation is not supported: use one or the other")
        self.cfg = cfg
        self.device = torch.device(
            "cuda"
            if cfg.device == "auto" and torch.cuda.is_available()
            else ("cpu" if cfg.device == "auto" else cfg.device)
        )
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(cfg.threads or cores)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed % 2**32)

        # data, task, model
        self.source = open_source(cfg.data.data).with_val(cfg.data.val_fraction, cfg.seed)
        info = model_info(cfg.model.model)
        kind = cfg.task.task
        if kind == "auto":
            kind = (
                "multilabel"
                if self.source.multilabel
                else ("binary" if self.source.num_classes == 2 else "multiclass")
            )
        cfg.task.task = kind
        self.schedule_sizes = parse_size_schedule(cfg.data.img_size_schedule, cfg.epochs)
        self.pre = preprocess_for(info, self.source.channels, cfg.data.img_size, cfg.data.color_space)
        cfg.data.img_size, cfg.data.color_space = self.pre.size, self.pre.color_space
        train_split = self.source.split("train")
        targets = torch.from_numpy(getattr(train_split, "targets", np.zeros(0, np.int64)))
        self.task = Task(
            kind, self.source.num_classes, cfg.task.loss, cfg.task.label_smoothing,
            _weights(cfg.task.class_weights, targets, self.source.num_classes, kind),
            _pos_weight(cfg.task.pos_weight, targets, kind), cfg.task.focal_gamma, cfg.task.threshold,
        )  # fmt: skip
        cfg.task.loss = self.task.loss_name
        self.model = create_model(
            cfg.model.model,
            num_classes=self.task.num_outputs,
            in_chans=self.pre.channels,
            **cfg.model.model_args,
        )
        if cfg.model.init and resume is None:
            from ..transfer import load_pretrained

            load_pretrained(self.model, cfg.model.init, verbose=cfg.progress)
        self.model.to(self.device)
        self.aug = cfg.aug.resolve(self.pre.size, self.source.channels)
        self._make_loader = make_loader
        self._loaders: dict[tuple[str, int], Any] = {}
        self.run = resume if resume is not None else new_run_folder(cfg)
        self.sample_weights = None
        if cfg.data.balanced_sampler and targets.ndim == 1 and len(targets):
            w = 1.0 / torch.bincount(targets, minlength=self.source.num_classes).clamp_min(1).float()
            self.sample_weights = (w[targets] / w[targets].sum()).numpy()

        # precision, decided on a real batch and written into the config
        first = next(iter(self.loader("train", self.size_at(0))))
        x0 = first.images[: min(len(first.images), cfg.batch_size)]
        y0 = first.targets[: len(x0)].to(self.device)
        self.precision_verdict = choose(
            self.model, x0, lambda out: self.task.loss(out, y0), self.device, cfg.precision, cfg.channels_last,
            key=f"{cfg.model.model}:{json.dumps(cfg.model.model_args, sort_keys=True)}:{self.task.num_outputs}:{self.pre.channels}",
        )  # fmt: skip
        precision, cl = self.precision_verdict.precision, self.precision_verdict.channels_last
        cfg.precision, cfg.channels_last = precision, "on" if cl else "off"
        self.channels_last = cl
        if cl:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.forward_model = torch.compile(self.model) if cfg.compile else self.model
        from ..models.base import Classifier

        self.has_aux = type(self.model)._forward_with_aux is not Classifier._forward_with_aux

        # optimisation: over every parameter; frozen ones get no gradient, so the optimiser leaves
        # them as they are until --freeze-epochs ends and they thaw
        self.steps_per_epoch = math.ceil(len(self.loader("train", self.size_at(0))) / cfg.optim.accum_steps)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = Scheduler(
            self.optimizer, cfg.sched, cfg.optim.lr, cfg.epochs * self.steps_per_epoch, self.steps_per_epoch
        )
        self.ema = ModelEMA(self.model, cfg.ema) if cfg.ema else None
        self.set_freeze(0)

        # position
        self.epoch, self.batch_in_epoch, self.step = 0, 0, 0
        self.best_score = -math.inf
        self.best: dict[str, float] = {}
        self.bad_in_row, self.bad_total, self.stale_epochs = 0, 0, 0
        self.epoch_sums = {"loss": 0.0, "correct": 0.0, "n": 0.0}
        if resume is not None:
            self._load(resume / "checkpoints" / "last.pt")
        else:
            write_text_atomic(self.run / "config.yaml", dump_yaml(cfg))
            write_text_atomic(self.run / "labels.json", json.dumps(self.source.classes, indent=1) + "\n")
        clean_temp(self.run / "checkpoints")
        clean_temp(self.run)
        _jsonl_keep(self.run / "steps.jsonl", lambda r: r["step"] <= self.step)
        _jsonl_keep(self.run / "metrics.jsonl", lambda r: r["epoch"] < self.epoch)
        self.pending_steps: list[dict[str, Any]] = []
        self.micro = (0.0, 0)  # (loss sum, images) of the micro-batches of the step being accumulated
        self.tb = None
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(self.run / "tensorboard"), purge_step=self.step if resume else None)

    def set_freeze(self, epoch: int) -> None:
        from ..transfer import freeze

        spec = self.cfg.model.freeze
        active = spec not in ("", "none") and (
            not self.cfg.model.freeze_epochs or epoch < self.cfg.model.freeze_epochs
        )
        freeze(self.model, spec if active else "none")

    def train_mode(self) -> None:
        from ..transfer import keep_frozen_norms_eval

        self.model.train()
        keep_frozen_norms_eval(self.model)

    # ---- data -------------------------------------------------------------------------------
    def size_at(self, epoch: int) -> int:
        for size, until in self.schedule_sizes:
            if epoch < until:
                return size
        return self.schedule_sizes[-1][0] if self.schedule_sizes else self.pre.size

    def loader(self, split: str, size: int) -> Any:
        key = (split, size)
        if key not in self._loaders:
            from dataclasses import replace

            cfg = self.cfg
            pre = self.pre if size == self.pre.size else replace(self.pre, size=size)
            aug = self.aug if split == "train" else None
            small = pre.size <= 64 and not hasattr(self.source.split(split), "urls")
            workers = (
                cfg.data.workers if cfg.data.workers >= 0 else (0 if small else min(4, os.cpu_count() or 1))
            )
            self._loaders[key] = self._make_loader(
                self.source, split, pre, aug, cfg.batch_size, seed=cfg.seed, workers=workers,
                drop_last=split == "train" and len(self.source.split(split)) > cfg.batch_size,
                on_bad_image=cfg.data.on_bad_image, max_bad_fraction=cfg.data.max_bad_fraction,
                bad_report=self.run_path("bad_images.csv") if hasattr(self, "run") else None,
                smoothing=cfg.task.label_smoothing if self.task.kind == "multiclass" else 0.0,
                sample_weights=self.sample_weights if split == "train" else None, progress=cfg.progress,
            )  # fmt: skip
        return self._loaders[key]

    def run_path(self, name: str) -> Path:
        return self.run / name

    # ---- the step ---------------------------------------------------------------------------
    def forward_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with autocast(self.device, self.cfg.precision):
            logits, aux = self.model.forward_with_aux(x) if self.has_aux else (self.forward_model(x), [])
            loss = self.task.loss(logits, y) + sum(AUX_WEIGHT * self.task.loss(a, y) for a in aux)
        return loss, logits

    def train_step(self, batch: Any, step_now: bool) -> float:
        """One batch: forward, backward, and (when ``step_now``: every accum_steps batches) the optimiser step."""
        cfg, fmt = self.cfg.optim, torch.channels_last if self.channels_last else torch.contiguous_format
        x, y = batch.images.to(self.device, memory_format=fmt), batch.targets.to(self.device)
        loss, logits = self.forward_loss(x, y)
        value = loss.item()
        if not math.isfinite(value):  # skipped: no gradient from this batch reaches the weights
            self.optimizer.zero_grad(set_to_none=True)
            self.micro = (0.0, 0)
            return value
        self.epoch_sums["loss"] += value * len(y)
        self.epoch_sums["n"] += len(y)
        self.epoch_sums["correct"] += self.task.correct(logits.detach().float(), y)
        self.scaler.scale(loss / cfg.accum_steps).backward()
        self.micro = (self.micro[0] + value * len(y), self.micro[1] + len(y))
        if not step_now:
            return value
        value, self.micro = self.micro[0] / self.micro[1], (0.0, 0)  # the step's loss: all its micro-batches
        if getattr(self.optimizer, "requires_second_pass", False):  # SAM: gradient at the perturbed weights
            self.optimizer.first_step()
            self.optimizer.zero_grad(set_to_none=True)
            self.forward_loss(x, y)[0].backward()
        if cfg.clip_grad:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip_grad)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return value

    # ---- the loop ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        from ..progress import progress_bar

        cfg = self.cfg
        status = "finished"
        with GracefulStop() as stop, progress_bar(disable=not cfg.progress) as bar:
            while self.epoch < cfg.epochs:
                loader = self.loader("train", self.size_at(self.epoch))
                loader.set_epoch(self.epoch)
                task = bar.add_task(
                    f"epoch {self.epoch + 1}/{cfg.epochs}",
                    total=len(loader),
                    completed=self.batch_in_epoch,
                    rate="",
                )
                started, seen = time.perf_counter(), 0
                self.set_freeze(self.epoch)
                self.train_mode()
                for batch in loader.iter_from(self.batch_in_epoch):
                    self.batch_in_epoch += 1
                    step_now = self.batch_in_epoch % cfg.optim.accum_steps == 0 or self.batch_in_epoch == len(
                        loader
                    )
                    loss = self.train_step(batch, step_now)
                    if not step_now:
                        continue
                    self._after_step(loss, len(batch))
                    seen += len(batch)
                    bar.update(task, completed=self.batch_in_epoch, rate=self._rate_text(seen, started))
                    if stop.requested or (cfg.stop_after_steps and self.step >= cfg.stop_after_steps):
                        status = "interrupted" if stop.requested else "stopped"
                        break
                    if cfg.save_every and self.step % cfg.save_every == 0:
                        self.save()
                bar.remove_task(task)
                if status != "finished":
                    self.save()
                    break
                stop_early, record = self._end_epoch()
                if cfg.progress:
                    bar.console.print(
                        _epoch_line(record, cfg.epochs, time.perf_counter() - started), soft_wrap=True
                    )
                if stop_early:
                    status = "early_stopped"
                    break
        if self.tb is not None:
            self.tb.close()
        result = TrainResult(self.run, status, self.epoch, self.step, self.best)
        if status in ("finished", "early_stopped") and cfg.eval_test and "test" in self.source.splits:
            result.test = self.test()
        return result

    def _rate_text(self, seen: int, started: float) -> str:
        s = self.epoch_sums
        elapsed = max(time.perf_counter() - started, 1e-9)
        return f"loss {s['loss'] / max(s['n'], 1):.4f}  acc {s['correct'] / max(s['n'], 1):.3f}  {seen / elapsed:,.0f} img/s"

    def _after_step(self, loss: float, n: int) -> None:
        if not math.isfinite(loss):
            self.bad_in_row += 1
            self.bad_total += 1
            if self.bad_in_row >= self.cfg.max_bad_steps:
                self.save_steps()
                raise TrainingDivergedError(
                    f"the loss was not finite for {self.bad_in_row} steps in a row (epoch {self.epoch + 1}, step {self.step}); "
                    f"those steps were skipped and nothing non-finite was saved. Lower the learning rate "
                    f"(--lr {self.cfg.optim.lr:g} now), add --warmup-epochs or --clip-grad, then resume with "
                    f"imgcls train --resume {self.run} or start again"
                )
            return
        self.bad_in_row = 0
        self.step += 1
        record = {"step": self.step, "epoch": self.epoch, "loss": loss, "lr": self.scheduler.lr}
        self.pending_steps.append(record)
        if self.tb is not None:
            self.tb.add_scalar("train/loss_step", loss, self.step)
            self.tb.add_scalar("train/lr", self.scheduler.lr, self.step)

    def _end_epoch(self) -> tuple[bool, dict[str, Any]]:
        """Validate, log, keep the best weights, checkpoint; True when early stopping ends the run."""
        cfg = self.cfg
        eval_model = self.ema.module if self.ema is not None else self.model
        val = evaluate(
            eval_model,
            self.loader("val", self.size_at(cfg.epochs - 1)),
            self.task,
            self.device,
            cfg.precision,
            self.channels_last,
        )
        s = self.epoch_sums
        train = {"loss": s["loss"] / max(s["n"], 1), "acc": s["correct"] / max(s["n"], 1)}
        record = {"epoch": self.epoch, "step": self.step, "lr": self.scheduler.lr, "train": train, "val": val,
                  "skipped_steps": self.bad_total}  # fmt: skip
        with open(self.run / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for split, m in (("train", train), ("val", val)):
                for k, v in m.items():
                    if k != "images":
                        self.tb.add_scalar(f"{split}/{k}", v, self.epoch + 1)
        current = score(val, self.task)
        self.scheduler.epoch_end(current)
        if current > self.best_score:
            self.best_score, self.best, self.stale_epochs = current, {"epoch": self.epoch, **val}, 0
            self.save_best(eval_model)
        else:
            self.stale_epochs += 1
        self.epoch, self.batch_in_epoch = self.epoch + 1, 0
        self.epoch_sums = {"loss": 0.0, "correct": 0.0, "n": 0.0}
        self.save()
        return bool(cfg.early_stop and self.stale_epochs >= cfg.early_stop), record

    # ---- the linear probe -------------------------------------------------------------------
    def fit_probe(self) -> TrainResult:
        """Train only the final classifier layer on the frozen backbone's pooled features, computed
        once per split (eval preprocessing, no augmentation) and cached: seconds instead of epochs
        of backbone passes. Saves the whole model (backbone + trained layer) like any run."""
        from ..features import classifier_layer, extract

        cfg = self.cfg
        key = f"{cfg.model.model}:{json.dumps(cfg.model.model_args, sort_keys=True)}:{self.task.num_outputs}"
        feats = {
            split: tuple(torch.from_numpy(a) for a in extract(
                self.model, self.source, split, self.pre, init=cfg.model.init, key=key, batch_size=max(cfg.batch_size, 128),
                precision=cfg.precision, progress=cfg.progress))
            for split in self.source.splits
        }  # fmt: skip
        head = classifier_layer(self.model)
        optimizer = build_optimizer(head, cfg.optim)
        x, y = feats["train"]
        per_epoch = math.ceil(len(x) / cfg.batch_size)
        scheduler = Scheduler(optimizer, cfg.sched, cfg.optim.lr, cfg.epochs * per_epoch, per_epoch)
        g = torch.Generator().manual_seed(cfg.seed)
        best_state: dict[str, torch.Tensor] = {}
        for epoch in range(cfg.epochs):
            head.train()
            order, total, n = torch.randperm(len(x), generator=g), 0.0, 0
            for b in range(per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                loss = self.task.loss(head(x[idx]), y[idx])
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                self.step += 1
                total, n = total + loss.item() * len(idx), n + len(idx)
                self.pending_steps.append(
                    {"step": self.step, "epoch": epoch, "loss": loss.item(), "lr": scheduler.lr}
                )
            val = self._probe_metrics(head, *feats["val"])
            train = {"loss": total / max(n, 1), "acc": self._probe_metrics(head, x, y)["acc"]}
            with open(self.run / "metrics.jsonl", "a") as f:
                f.write(
                    json.dumps(
                        {
                            "epoch": epoch,
                            "step": self.step,
                            "lr": scheduler.lr,
                            "train": train,
                            "val": val,
                            "skipped_steps": 0,
                        }
                    )
                    + "\n"
                )
            self.epoch = epoch + 1
            if score(val, self.task) > self.best_score:
                self.best_score, self.best = score(val, self.task), {"epoch": epoch, **val}
                best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
                self.save_best(self.model)
            if cfg.progress:
                print(
                    _epoch_line(
                        {"epoch": epoch, "train": train, "val": val, "skipped_steps": 0}, cfg.epochs, 0.0
                    )
                )
        self.save_steps()
        if self.tb is not None:
            self.tb.close()
        result = TrainResult(self.run, "finished", self.epoch, self.step, self.best)
        if best_state and "test" in feats:
            head.load_state_dict(best_state)
            result.test = self._probe_metrics(head, *feats["test"])
            write_text_atomic(self.run / "test_metrics.json", json.dumps(result.test, indent=1) + "\n")
        return result

    @torch.no_grad()
    def _probe_metrics(self, head: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        head.eval()
        return scores(head(x), y, self.task)

    # ---- files ------------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        return {
            "model": self.cfg.model.model, "model_args": self.cfg.model.model_args, "num_outputs": self.task.num_outputs,
            "classes": self.source.classes, "task": self.task.kind, "threshold": self.task.threshold,
            "preprocess": self.pre.to_dict(), "hflip": self.aug.hflip, "pad_crop": self.aug.pad_crop, "imgcls_format": 1,
        }  # fmt: skip

    def save_best(self, model: torch.nn.Module) -> None:
        state = {k: v for k, v in model.state_dict().items()}
        if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            return  # never keep non-finite weights as the best
        save_safetensors(
            state, self.run / "model.safetensors", {**self.metadata(), "epoch": self.epoch, "val": self.best}
        )

    def save_steps(self) -> None:
        if self.pending_steps:
            with open(self.run / "steps.jsonl", "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in self.pending_steps))
                f.flush()
                os.fsync(f.fileno())
            self.pending_steps = []

    def save(self) -> None:
        self.save_steps()
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": _rng_state(),
            "position": {"epoch": self.epoch, "batch": self.batch_in_epoch, "step": self.step},
            "progress": {
                "best_score": self.best_score,
                "best": self.best,
                "bad_total": self.bad_total,
                "stale_epochs": self.stale_epochs,
                "epoch_sums": self.epoch_sums,
            },
        }
        bad = _first_non_finite(state)
        if bad is not None:  # never replace a good checkpoint with a broken one
            raise TrainingDivergedError(
                f"{bad} is not finite at step {self.step}: nothing was saved, and checkpoints/last.pt keeps the "
                f"last finite state. Lower the learning rate (--lr {self.cfg.optim.lr:g} now), add --clip-grad, "
                f"then resume with imgcls train --resume {self.run} or start again"
            )
        save_atomic(state, self.run / "checkpoints" / "last.pt")

    def _load(self, path: Path) -> None:
        if not path.is_file():
            raise ConfigError(f"{str(path)!r} does not exist: this run has no checkpoint to resume from")
        state = load_safe(path, self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"])
        pos, prog = state["position"], state["progress"]
        self.epoch, self.batch_in_epoch, self.step = pos["epoch"], pos["batch"], pos["step"]
        self.best_score, self.best = prog["best_score"], prog["best"]
        self.bad_total, self.stale_epochs, self.epoch_sums = (
            prog["bad_total"],
            prog["stale_epochs"],
            prog["epoch_sums"],
        )

    def test(self) -> dict[str, float]:
        """The best weights on the test split, written to test_metrics.json."""
        from .checkpoint import load_safetensors

        best = self.run / "model.safetensors"
        if best.is_file():
            state, _ = load_safetensors(best)
            self.model.load_state_dict(state)
        metrics = evaluate(self.model, self.loader("test", self.size_at(self.cfg.epochs - 1)), self.task, self.device,
                           self.cfg.precision, self.channels_last)  # fmt: skip
        write_text_atomic(self.run / "test_metrics.json", json.dumps(metrics, indent=1) + "\n")
        return metrics


def _first_non_finite(tree: Any, path: str = "") -> str | None:
    """The name of the first floating tensor in a checkpoint tree with a NaN or infinity, or None."""
    if isinstance(tree, torch.Tensor):
        return (
            path or "a tensor" if tree.is_floating_point() and not bool(torch.isfinite(tree).all()) else None
        )
    items = (
        tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list | tuple) else ()
    )
    for key, value in items:
        found = _first_non_finite(value, f"{path}.{key}" if path else str(key))
        if found is not None:
            return found
    return None


def _epoch_line(record: dict[str, Any], epochs: int, seconds: float) -> str:
    train, val = record["train"], record["val"]
    extra = "".join(f"  {k} {val[k]:.4f}" for k in ("top5", "f1") if k in val)
    skipped = f"  ({record['skipped_steps']} skipped steps)" if record["skipped_steps"] else ""
    return (
        f"epoch {record['epoch'] + 1}/{epochs}  train loss {train['loss']:.4f} acc {train['acc']:.4f}  "
        f"val loss {val['loss']:.4f} acc {val['acc']:.4f}{extra}  {seconds:.1f} s{skipped}"
    )


def _weights(spec: str, targets: torch.Tensor, num_classes: int, kind: str) -> torch.Tensor | None:
    if spec in ("none", ""):
        return None
    if kind != "multiclass":
        raise ConfigError("class_weights apply to multiclass tasks; use pos_weight for binary / multi-label")
    if spec == "auto":
        return class_weights_auto(targets, num_classes)
    values = [float(v) for v in spec.split(",")]
    if len(values) != num_classes:
        raise ConfigError(f"class_weights has {len(values)} values for {num_classes} classes")
    return torch.tensor(values)


def _pos_weight(spec: str, targets: torch.Tensor, kind: str) -> torch.Tensor | None:
    if spec in ("none", "") or kind == "multiclass":
        return None
    multi_hot = targets if targets.ndim == 2 else torch.nn.functional.one_hot(targets.long(), 2)[:, 1:]
    if spec == "auto":
        return pos_weight_auto(multi_hot)
    return torch.tensor([float(spec)] * multi_hot.shape[1])


def train(cfg: TrainConfig) -> TrainResult:
    """Train as ``cfg`` says (or resume ``cfg.resume``); returns where the run is and how it ended."""
    trainer = Trainer(cfg)
    return trainer.fit_probe() if trainer.cfg.model.linear_probe else trainer.fit()
