"""The parts of training that act around the step, each a small hook called at named points of the
loop (``loop.py``): when the run starts, when an epoch starts, after each optimiser step, when a step
is skipped for a non-finite loss, when an epoch ends (after validation; a hook may end the run
there), and at the end. Only rank 0 writes files and prints; what a hook must remember across a
resume lives in the trainer's ``TrainState``, which the checkpoint saves.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING, Any

from ..errors import ImgclsError
from ..models.base import Classifier
from ..transfer import freeze, keep_frozen_norms_eval
from .evaluate import selection_key

if TYPE_CHECKING:
    from .trainer import Trainer


class TrainingDivergedError(ImgclsError, RuntimeError):
    """The loss stayed non-finite for ``max_bad_steps`` steps in a row."""

    exit_code = 3


class Hook:
    def start(self, t: Trainer) -> None: ...
    def epoch_start(self, t: Trainer) -> None: ...
    def step(self, t: Trainer, record: dict[str, Any]) -> None: ...
    def skipped(self, t: Trainer, record: dict[str, Any]) -> None: ...
    def epoch_end(self, t: Trainer, record: dict[str, Any]) -> bool:  # True: end the run here
        return False

    def end(self, t: Trainer, status: str) -> None: ...


class Freeze(Hook):
    """``--freeze`` for the first ``--freeze-epochs`` epochs (all of them when 0), then everything
    trains; frozen batch norms stay in eval mode (their statistics are part of what is kept). A model
    may also hold some of its parameters in an epoch (``held_parameters(epoch)``: airbench's frozen
    batch-norm scales and its whitening bias after the first epochs)."""

    def __init__(self, spec: str, epochs: int) -> None:
        self.spec, self.epochs = spec, epochs
        self.active: tuple[bool, tuple[str, ...]] | None = None  # what the parameters are now

    def epoch_start(self, t: Trainer) -> None:
        frozen = self.spec not in ("", "none") and (not self.epochs or t.state.epoch < self.epochs)
        # the linear probe's net is a bare layer, not a Classifier: it holds nothing back
        held = tuple(t.net.held_parameters(t.state.epoch)) if isinstance(t.net, Classifier) else ()
        if (frozen, held) != self.active:
            freeze(t.net, self.spec if frozen else "none")
            params = dict(t.net.named_parameters())
            for name in held:
                params[name].requires_grad_(False)
            t.wrap()  # DDP registers the parameters that train: a change needs a new wrapper
            self.active = (frozen, held)
        t.net.train()
        keep_frozen_norms_eval(t.net)


class EMA(Hook):
    def step(self, t: Trainer, record: dict[str, Any]) -> None:
        t.ema.update(t.model)


class NonFiniteGuard(Hook):
    """A skipped step is counted; ``max_bad`` in a row end the run with advice."""

    def __init__(self, max_bad: int) -> None:
        self.max_bad = max_bad

    def step(self, t: Trainer, record: dict[str, Any]) -> None:
        t.state.bad_in_row = 0

    def skipped(self, t: Trainer, record: dict[str, Any]) -> None:
        t.state.bad_in_row += 1
        t.state.bad_total += 1
        if t.state.bad_in_row >= self.max_bad:
            t.flush_steps()
            raise TrainingDivergedError(
                f"the loss was not finite for {t.state.bad_in_row} steps in a row (epoch {t.state.epoch + 1}, "
                f"step {t.state.step}); those steps were skipped and nothing non-finite was saved. Lower the "
                f"learning rate (--lr {t.cfg.optim.lr:g} now), add --warmup-epochs or --clip-grad, then "
                f"resume with imgcls train --resume {t.run.root} or start again"
            )


class StepLog(Hook):
    """steps.jsonl (written at each checkpoint, fsynced) and TensorBoard's step scalars."""

    def step(self, t: Trainer, record: dict[str, Any]) -> None:
        t.pending_steps.append(record)
        if t.tb is not None:
            t.tb.add_scalar("train/loss_step", record["loss"], record["step"])
            t.tb.add_scalar("train/lr", record["lr"], record["step"])


class EpochLog(Hook):
    """metrics.jsonl, TensorBoard's epoch scalars and the line printed per epoch."""

    def epoch_start(self, t: Trainer) -> None:
        self.started = time.perf_counter()

    def epoch_end(self, t: Trainer, record: dict[str, Any]) -> bool:
        if t.dist.is_main:
            t.run.append(t.run.metrics, [record])
        if t.tb is not None:
            for split in ("train", "val"):
                for k, v in record[split].items():
                    if k != "images":
                        t.tb.add_scalar(f"{split}/{k}", v, record["epoch"] + 1)
        t.say(
            epoch_line(
                record, t.planned_epochs, time.perf_counter() - getattr(self, "started", time.perf_counter())
            )
        )
        return False


class BestWeights(Hook):
    """The best validation scores so far (ties broken by the lower loss) and their weights, saved as
    model.safetensors; never non-finite weights. With ``--keep last``, or no validation split, every
    epoch's weights replace the previous ones."""

    def epoch_end(self, t: Trainer, record: dict[str, Any]) -> bool:
        if t.cfg.keep == "last" or not record["val"]:
            t.state.best, t.state.stale_epochs = {"epoch": record["epoch"], **record["val"]}, 0
            t.save_best()
            return False
        key = list(selection_key(record["val"], t.task))
        if not t.state.best_key or key > t.state.best_key:
            t.state.best_key, t.state.best, t.state.stale_epochs = (
                key,
                {"epoch": record["epoch"], **record["val"]},
                0,
            )
            t.save_best()
        else:
            t.state.stale_epochs += 1
        return False


class EarlyStop(Hook):
    def __init__(self, patience: int) -> None:
        self.patience = patience

    def epoch_end(self, t: Trainer, record: dict[str, Any]) -> bool:
        return bool(self.patience and t.state.stale_epochs >= self.patience)


class Checkpoint(Hook):
    """checkpoints/last.pt every ``every`` steps (0: never mid-epoch) and at each epoch's end — but
    when writing it costs more than ``SHARE`` of the time since the last one (a big optimiser state and
    short epochs), epoch-end saves wait until enough time has passed, so checkpoints never cost more
    than that share of a run. The last epoch is always saved; a stop (signal, --stop-after-steps)
    saves where it is."""

    SHARE = 0.05

    def __init__(self, every: int) -> None:
        self.every = every
        self.last_at = time.perf_counter()
        self.cost = 0.0
        self.saved: tuple[int, int] | None = None  # (epoch, batch) of the last save

    def save(self, t: Trainer) -> None:
        start = time.perf_counter()
        t.save()
        self.cost, self.last_at = time.perf_counter() - start, time.perf_counter()
        self.saved = (t.state.epoch, t.state.batch)

    def step(self, t: Trainer, record: dict[str, Any]) -> None:
        if self.every and record["step"] % self.every == 0:
            self.save(t)

    def epoch_end(self, t: Trainer, record: dict[str, Any]) -> bool:
        last = t.budget is None and t.state.epoch >= t.cfg.epochs
        if last or self.cost <= self.SHARE * (time.perf_counter() - self.last_at):
            self.save(t)
        return False

    def end(self, t: Trainer, status: str) -> None:
        if status in ("finished", "early_stopped") and self.saved != (t.state.epoch, t.state.batch):
            self.save(t)  # an epoch-end save was skipped: the run's final state


class ProgressBar(Hook):
    """A bar per epoch with the running loss, accuracy, img/s and the ETA (rank 0, when asked for)."""

    def __init__(self, bar: Any) -> None:
        self.bar, self.task = bar, None

    def epoch_start(self, t: Trainer) -> None:
        loader = t.train_loader()
        self.task = self.bar.add_task(f"epoch {t.state.epoch + 1}/{t.planned_epochs}", total=len(loader),
                                      completed=t.state.batch, rate="")  # fmt: skip
        self.started, self.seen = time.perf_counter(), 0

    def step(self, t: Trainer, record: dict[str, Any]) -> None:
        s = t.state.epoch_sums
        self.seen += record["images"]
        rate = self.seen / max(time.perf_counter() - self.started, 1e-9)
        text = f"loss {s['loss'] / max(s['n'], 1):.4f}  acc {s['correct'] / max(s['n'], 1):.3f}  {rate:,.0f} img/s"
        self.bar.update(self.task, completed=t.state.batch, rate=text)

    def epoch_end(self, t: Trainer, record: dict[str, Any]) -> bool:
        self.remove()
        return False

    def end(self, t: Trainer, status: str) -> None:
        self.remove()

    def remove(self) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
            self.task = None


class ProgressLines(Hook):
    """Where no terminal shows a bar (a log file, a CI job, nohup): a plain line every ``every``
    seconds, and after the first step — epoch, batch, running loss and accuracy, img/s and the ETA of
    the run (timm's log interval, in seconds)."""

    def __init__(self, every: float) -> None:
        self.every = every

    def start(self, t: Trainer) -> None:
        self.started, self.first_step, self.last = time.perf_counter(), t.state.step, -math.inf

    def epoch_start(self, t: Trainer) -> None:
        self.epoch_started, self.seen = time.perf_counter(), 0

    def step(self, t: Trainer, record: dict[str, Any]) -> None:
        self.seen += record["images"]
        now = time.perf_counter()
        if not self.every or now - self.last < self.every:
            return
        self.last = now
        s, done = t.state.epoch_sums, t.state.step - self.first_step
        total = t.planned_epochs * t.steps_per_epoch
        eta = (now - self.started) / max(done, 1) * max(total - t.state.step, 0)
        rate = self.seen / max(now - self.epoch_started, 1e-9)
        print(f"epoch {t.state.epoch + 1}/{t.planned_epochs}  batch {t.state.batch}/{len(t.train_loader())}  "
              f"loss {s['loss'] / max(s['n'], 1):.4f}  acc {s['correct'] / max(s['n'], 1):.3f}  {rate:,.0f} img/s  "
              f"ETA {duration(eta)}", file=sys.stderr, flush=True)  # fmt: skip


def duration(seconds: float) -> str:
    """1h02m, 4m05s, 12s."""
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def epoch_line(record: dict[str, Any], epochs: int, seconds: float) -> str:
    train, val = record["train"], record["val"]
    skipped = f"  ({record['skipped_steps']} skipped steps)" if record.get("skipped_steps") else ""
    shown = f"epoch {record['epoch'] + 1}/{epochs}  train loss {train['loss']:.4f} acc {train['acc']:.4f}  "
    if not val:  # no validation split
        return f"{shown}{seconds:.1f} s{skipped}"
    extra = "".join(f"  {k} {val[k]:.4f}" for k in ("top5", "f1") if k in val)
    loss = f"{val['loss']:.4f}" if math.isfinite(val["loss"]) else str(val["loss"])
    return f"{shown}val loss {loss} acc {val['acc']:.4f}{extra}  {seconds:.1f} s{skipped}"
