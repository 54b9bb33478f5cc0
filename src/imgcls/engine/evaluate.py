"""Evaluation during training: loss and the task's headline scores over a loader, exact over
batches and processes (each process sums over its share; the sums are added across ranks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..amp import autocast
from ..errors import ConfigError
from ..tasks import Task
from ..tta import BATCH_VIEWS
from .distributed import Dist

KEYS = ("loss_num", "loss_den", "correct", "n", "top5", "tp", "fp", "fn")


def batch_sums(logits: torch.Tensor, targets: torch.Tensor, task: Task) -> list[float]:
    """The sums (in ``KEYS`` order) a set's scores are made of, for one batch."""
    logits = logits.float()
    num, den = task.loss_terms(logits, targets)
    top5 = 0.0
    if task.kind == "multiclass" and task.num_classes >= 10:
        top5 = float((logits.topk(5, 1).indices == targets[:, None]).any(1).sum())
    tp = fp = fn = 0.0
    if task.kind == "multilabel":
        pred, true = task.predict(logits), (targets >= 0.5).long()
        tp, fp, fn = (
            float((pred & true).sum()),
            float((pred & (1 - true)).sum()),
            float(((1 - pred) & true).sum()),
        )
    return [num, den, task.correct(logits, targets), float(len(targets)), top5, tp, fp, fn]


def finish(sums: list[float], task: Task) -> dict[str, float]:
    """{"loss", "acc", "top5" (multiclass with >= 10 classes), "f1" (multilabel, micro), "images"}."""
    s = dict(zip(KEYS, sums))
    n = max(s["n"], 1.0)
    out = {"loss": s["loss_num"] / max(s["loss_den"], 1e-12), "acc": s["correct"] / n, "images": s["n"]}
    if task.kind == "multiclass" and task.num_classes >= 10:
        out["top5"] = s["top5"] / n
    if task.kind == "multilabel":
        out["f1"] = 2 * s["tp"] / max(2 * s["tp"] + s["fp"] + s["fn"], 1.0)
    return out


def scores(logits: torch.Tensor, targets: torch.Tensor, task: Task) -> dict[str, float]:
    """The scores of a whole set of outputs at once."""
    return finish(batch_sums(logits, targets, task), task)


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, task: Task, device: torch.device, precision: str = "fp32",
    channels_last: bool = False, dist: Dist | None = None, tta: str = "none", mirror: bool = True,
) -> dict[str, float]:  # fmt: skip
    """Scores of ``model`` over this process's batches of ``loader``, summed over all processes;
    with ``tta``, of the logits averaged over the views ``tta_logits`` makes (``mirror``: with the
    mirrored ones)."""
    if tta not in BATCH_VIEWS:
        raise ConfigError(f"test_tta must be one of {', '.join(BATCH_VIEWS)}, got {tta!r}")
    model.eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    sums = [0.0] * len(KEYS)
    for batch in loader:
        x = batch.images.to(device, memory_format=fmt) if batch.images.ndim == 4 else batch.images.to(device)
        with autocast(device, precision):
            logits = tta_logits(model, x, tta, mirror) if x.ndim == 4 else model(x)
        sums = [a + b for a, b in zip(sums, batch_sums(logits.float().cpu(), batch.targets, task))]
    return finish(dist.sum(sums) if dist is not None else sums, task)


def tta_logits(model: nn.Module, x: torch.Tensor, tta: str, mirror: bool = True) -> torch.Tensor:
    """The logits of a batch averaged over views of it: ``flip``, the images and their mirrors;
    ``flip-shift`` (airbench's), that pair weighted 1/2 and the pair shifted by one pixel each way
    (diagonally, the image mirrored at its edge as airbench pads it) 1/4 each. Without ``mirror``
    (a model trained without flips) the mirrored views are left out."""
    if tta not in BATCH_VIEWS:
        raise ConfigError(f"tta must be one of {', '.join(BATCH_VIEWS)} on a batch, got {tta!r}")
    if tta == "none":
        return model(x)

    def pair(v: torch.Tensor) -> torch.Tensor:
        return (model(v) + model(v.flip(-1))) / 2 if mirror else model(v)

    if tta == "flip":
        return pair(x)
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    return pair(x) / 2 + pair(padded[..., :h, :w]) / 4 + pair(padded[..., 2:, 2:]) / 4


def selection_key(metrics: dict[str, float], task: Task) -> tuple[float, float]:
    """What 'best' and early stopping go by (higher is better): the task's score (accuracy; micro-F1
    for multi-label), ties broken by the lower loss."""
    return (metrics["f1"] if task.kind == "multilabel" else metrics["acc"], -metrics["loss"])
