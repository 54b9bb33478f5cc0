"""Evaluation during training: loss and the task's headline scores over a loader."""

from __future__ import annotations

import torch
from torch import nn

from ..tasks import Task
from .precision import autocast


@torch.no_grad()
def evaluate(
    model: nn.Module, loader, task: Task, device: torch.device, precision: str, channels_last: bool
) -> dict[str, float]:
    """{"loss", "acc", "top5" (multiclass with >= 10 classes), "f1" (multilabel, micro), "images"}."""
    model.eval()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    total_loss, n, correct, top5 = 0.0, 0, 0.0, 0.0
    tp = fp = fn = 0.0
    for batch in loader:
        x = batch.images.to(device, memory_format=fmt)
        y = batch.targets.to(device)
        with autocast(device, precision):
            logits = model(x)
        logits = logits.float()
        total_loss += float(task.loss(logits, y)) * len(y)
        correct += task.correct(logits, y)
        n += len(y)
        if task.kind == "multiclass" and task.num_classes >= 10:
            top5 += float((logits.topk(5, 1).indices == y[:, None]).any(1).sum())
        if task.kind == "multilabel":
            pred, true = task.predict(logits), (y >= 0.5).long()
            tp += float((pred & true).sum())
            fp += float((pred & (1 - true)).sum())
            fn += float(((1 - pred) & true).sum())
    out = {"loss": total_loss / max(n, 1), "acc": correct / max(n, 1), "images": float(n)}
    if task.kind == "multiclass" and task.num_classes >= 10:
        out["top5"] = top5 / max(n, 1)
    if task.kind == "multilabel":
        out["f1"] = 2 * tp / max(2 * tp + fp + fn, 1)
    return out


def score(metrics: dict[str, float], task: Task) -> float:
    """The number 'best' and early stopping go by (higher is better)."""
    return metrics["f1"] if task.kind == "multilabel" else metrics["acc"]
