"""Evaluation during training: loss and the task's headline scores, from a loader or from logits."""

from __future__ import annotations

import torch
from torch import nn

from ..tasks import Task
from .precision import autocast


def scores(logits: torch.Tensor, targets: torch.Tensor, task: Task) -> dict[str, float]:
    """{"loss", "acc", "top5" (multiclass with >= 10 classes), "f1" (multilabel, micro), "images"}."""
    logits, n = logits.float(), max(len(targets), 1)
    out = {
        "loss": float(task.loss(logits, targets)),
        "acc": task.correct(logits, targets) / n,
        "images": float(len(targets)),
    }
    if task.kind == "multiclass" and task.num_classes >= 10:
        out["top5"] = float((logits.topk(5, 1).indices == targets[:, None]).any(1).sum()) / n
    if task.kind == "multilabel":
        pred, true = task.predict(logits), (targets >= 0.5).long()
        tp, fp, fn = int((pred & true).sum()), int((pred & (1 - true)).sum()), int(((1 - pred) & true).sum())
        out["f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    return out


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, task: Task, device: torch.device, precision: str, channels_last: bool
) -> dict[str, float]:
    """``scores`` of the model over every batch of ``loader``."""
    model.eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    logits, targets = [], []
    for batch in loader:
        with autocast(device, precision):
            logits.append(model(batch.images.to(device, memory_format=fmt)).float().cpu())
        targets.append(batch.targets)
    return scores(torch.cat(logits), torch.cat(targets), task)


def score(metrics: dict[str, float], task: Task) -> float:
    """The number 'best' and early stopping go by (higher is better)."""
    return metrics["f1"] if task.kind == "multilabel" else metrics["acc"]
