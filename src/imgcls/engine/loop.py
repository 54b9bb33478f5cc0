"""The training loop, on one screen: ``train_one_epoch`` as a plain function (torchvision's
references do the same); everything around the step is a hook (``hooks.py``), everything about
where the tensors live and how gradients cross processes is the trainer's (``trainer.py``).

A step is ``accum_steps`` batches: each one forward and backward (gradients all-reduced on the last
only), then the optimiser. A batch whose loss is not finite on *any* rank skips its step on *every*
rank (one rank skipping backward alone would leave the others waiting in the all-reduce), and is
counted; the step's logged loss is the mean over its batches and ranks, so W processes with batch
B log what one process with batch W x B would.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .trainer import Trainer


def train_one_epoch(t: Trainer, loader, start: int) -> str | None:
    """Batches ``start``... of the current epoch. Returns why it stopped before the epoch's end
    ("interrupted" by a signal, "stopped" at --stop-after-steps), or None."""
    accum = t.cfg.optim.accum_steps
    group, finite = [], True  # (loss sum, images, correct) of the step's batches so far
    for b, batch, last in t.batches(loader, start):
        boundary = last or (b + 1) % accum == 0
        x, y = t.inputs(batch)
        with t.clock("train"), t.gradient_sync(boundary):
            loss, logits = t.forward_loss(x, y)
            ok = t.dist.all(math.isfinite(loss.item()))
            finite = finite and ok
            if finite:
                t.backward(loss / accum)
        group.append((loss.item() * len(y), len(y), t.task.correct(logits.detach().float(), y)))
        if not boundary:
            continue
        t.state.batch = b + 1
        record = t.step_record(group)
        if finite:
            with t.clock("train"):
                t.optimizer_step(x, y, scale=accum / len(group))  # a short last step is not under-weighted
            t.log_step(record)
            t.call("step", record)
        else:
            t.zero_grad()
            t.call("skipped", record)
        group, finite = [], True
        reason = t.stop_reason()
        if reason:
            return reason
    return None
