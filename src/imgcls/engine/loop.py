"""The training loop on one screen: ``train_one_epoch`` holds the whole step, top to bottom — the
forward pass under autocast (with the auxiliary heads' share of the loss), the backward pass with
gradient accumulation (gradients all-reduced on the step's last batch only), SAM's second pass,
clipping, the gradient scaler, the optimiser, the scheduler and airbench's Lookahead-EMA. What only
observes the step (logs, checkpoints, EMA, early stop, progress) is a hook (``hooks.py``); where the
tensors live and how the model is wrapped is the trainer's (``trainer.py``).

A step is ``accum_steps`` batches. A batch whose loss is not finite on *any* rank skips its step on
*every* rank (one rank skipping backward alone would leave the others waiting in the all-reduce), and
is counted; the step's logged loss is the mean over its batches and ranks, so W processes with batch
B log what one process with batch W x B would.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..amp import autocast
from ..models.base import Classifier

if TYPE_CHECKING:
    from .trainer import Trainer

AUX_WEIGHT = 0.3  # auxiliary heads' share of the loss (GoogLeNet's 0.3)


def train_one_epoch(t: Trainer, loader: Any, start: int) -> str | None:
    """Batches ``start``... of the current epoch. Returns why it stopped before the epoch's end
    ("interrupted" by a signal, "stopped" at --stop-after-steps, "budget"), or None."""
    accum, opt, scaler = t.cfg.optim.accum_steps, t.optimizer, t.scaler
    group, finite = [], True  # (loss sum, images, correct) of the step's batches so far
    for b, batch, last in batches(t, loader, start):
        boundary = last or (b + 1) % accum == 0
        x, y = inputs(t, batch)
        sync = contextlib.nullcontext() if boundary or t.ddp is None else t.ddp.no_sync()
        with t.clock("train"), sync:
            loss, logits = forward_loss(t, x, y)
            finite = t.dist.all(math.isfinite(loss.item())) and finite
            if finite:
                scaler.scale(loss / accum).backward()
        group.append((loss.item() * len(y), len(y), t.task.correct(logits.detach().float(), y)))
        if not boundary:
            continue
        t.state.batch = b + 1
        record = step_record(t, group)
        if not finite:
            opt.zero_grad(set_to_none=True)
            t.call("skipped", record)
        else:
            with t.clock("train"):
                if len(group) != accum:  # a short last step is not under-weighted
                    for p in t.net.parameters():
                        if p.grad is not None:
                            p.grad.mul_(accum / len(group))
                if getattr(opt, "requires_second_pass", False):  # SAM: the gradient at the perturbed weights
                    opt.first_step()
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(forward_loss(t, x, y)[0]).backward()
                if t.cfg.optim.clip_grad:
                    scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(t.net.parameters(), t.cfg.optim.clip_grad)
                scaler.step(opt)  # skipped by the scaler when an fp16 gradient overflowed
                scaler.update()
                opt.zero_grad(set_to_none=True)
                t.scheduler.step()
                if t.lookahead is not None:
                    t.lookahead.update(t.net, t.scheduler.step_count, t.scheduler.total)
            log_step(t, record)
            t.call("step", record)
        group, finite = [], True
        reason = t.stop_reason()
        if reason:
            return reason
    return None


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


def forward_loss(t: Trainer, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(the loss of every head, the main head's logits), under the run's autocast."""
    with autocast(t.device, t.precision):
        logits, aux = t.forward(x)
        loss = t.task.loss(logits, y) + sum(AUX_WEIGHT * t.task.loss(a, y) for a in aux)
    return loss, logits


def batches(t: Trainer, loader: Any, start: int) -> Iterator[tuple[int, Any, bool]]:
    """(batch number, batch, is the epoch's last) from ``start``. Loaders whose ranks may run out
    at different batches (streamed shards) end the epoch on every rank when the first one does."""
    it = iter(loader.iter_from(start))
    uneven = getattr(loader, "uneven", False) and t.dist.enabled

    def fetch() -> Any:
        with t.clock("data"):
            batch = next(it, None)
        if uneven and not t.dist.all(batch is not None):
            return None
        return batch

    current, b = fetch(), start
    while current is not None:
        following = fetch()
        yield b, current, following is None
        current, b = following, b + 1


def inputs(t: Trainer, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's images (in the run's memory format) and targets, on the run's device (a GPU
    loader's images are there already; targets are copied without waiting)."""
    x = batch.images
    if x.ndim == 4:
        fmt = torch.channels_last if t.channels_last else torch.contiguous_format
        x = x.to(t.device, memory_format=fmt, non_blocking=True)
    else:
        x = x.to(t.device, non_blocking=True)
    return x, batch.targets.to(t.device, non_blocking=True)


def step_record(t: Trainer, group: list[tuple[float, int, float]]) -> dict[str, Any]:
    """The step's loss (mean over its batches and every rank's), images and correct decisions."""
    loss, n, correct = t.dist.sum(
        [sum(g[0] for g in group), sum(g[1] for g in group), sum(g[2] for g in group)]
    )
    return {"epoch": t.state.epoch, "loss": loss / max(n, 1), "images": int(n), "correct": correct}


def log_step(t: Trainer, record: dict[str, Any]) -> None:
    """The step counted in the state and the epoch's sums; the record gets its step and rate."""
    s = t.state
    s.step += 1
    s.epoch_sums["loss"] += record["loss"] * record["images"]
    s.epoch_sums["n"] += record["images"]
    s.epoch_sums["correct"] += record.pop("correct")
    record.update(step=s.step, lr=t.scheduler.lr)
