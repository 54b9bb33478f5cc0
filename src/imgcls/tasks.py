"""Tasks: what the head's outputs mean, how they are scored and how they are read back.

- ``multiclass``: one of C classes. C logits, softmax; cross-entropy (label smoothing, class
  weights) or focal loss.
- ``binary``: two classes as one logit (the second class's), sigmoid; BCE with ``pos_weight`` or
  sigmoid focal loss; a decision threshold.
- ``multilabel``: any subset of C labels. C logits, sigmoid each; BCE with ``pos_weight`` per label or
  focal loss; a threshold per decision.

Targets may be class indices (B,), multi-hot rows (B, C) or soft rows after mixup (B, C): every loss
takes all of them, so the training loop never branches on the task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import ConfigError

TASKS = ("auto", "binary", "multiclass", "multilabel")
LOSSES = ("auto", "ce", "bce", "focal")


@dataclass
class Task:
    kind: str  # "binary" | "multiclass" | "multilabel"
    num_classes: int
    loss_name: str = "auto"  # "ce" (multiclass) / "bce" (binary, multilabel) / "focal"
    label_smoothing: float = 0.0
    class_weights: torch.Tensor | None = None  # (C,) multiclass
    pos_weight: torch.Tensor | None = None  # (1,) binary or (C,) multilabel
    focal_gamma: float = 2.0
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in TASKS[1:]:
            raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {self.kind!r}")
        if self.loss_name == "auto":
            self.loss_name = "ce" if self.kind == "multiclass" else "bce"
        if self.loss_name not in LOSSES[1:]:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss_name!r}")
        if (self.loss_name == "ce") != (self.kind == "multiclass") and self.loss_name != "focal":
            raise ConfigError(
                f"loss {self.loss_name!r} does not fit a {self.kind} task (use ce for multiclass, bce otherwise)"
            )
        if self.kind == "binary" and self.num_classes != 2:
            raise ConfigError(f"a binary task has 2 classes, the data has {self.num_classes}")

    @property
    def num_outputs(self) -> int:
        return 1 if self.kind == "binary" else self.num_classes

    def soft_targets(self, targets: torch.Tensor) -> torch.Tensor:
        """Targets as float rows (B, num_outputs): one-hot / multi-hot / mixed, smoothing applied."""
        if targets.ndim == 1:
            t = F.one_hot(targets.long(), self.num_classes).float()
        else:
            t = targets.float()
        if self.kind == "binary":
            t = t[:, 1:2]
        if self.label_smoothing and targets.ndim == 1:
            n = self.num_classes if self.kind == "multiclass" else 2
            t = t * (1 - self.label_smoothing) + self.label_smoothing / n
        return t

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.kind == "multiclass" and self.loss_name == "ce":
            weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
            if targets.ndim == 1:
                return F.cross_entropy(
                    logits, targets.long(), weight=weight, label_smoothing=self.label_smoothing
                )
            return F.cross_entropy(logits, targets.float(), weight=weight)
        t = self.soft_targets(targets).to(logits.device)
        if self.kind == "multiclass":  # softmax focal loss (Lin et al.), soft targets allowed
            logp = F.log_softmax(logits, 1)
            per_class = -t * (1 - logp.exp()).pow(self.focal_gamma) * logp
            if self.class_weights is not None:
                per_class = per_class * self.class_weights.to(logits.device)
            return per_class.sum(1).mean()
        pos_weight = self.pos_weight.to(logits.device) if self.pos_weight is not None else None
        if self.loss_name == "bce":
            return F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight)
        p = torch.sigmoid(logits)  # sigmoid focal loss
        ce = F.binary_cross_entropy_with_logits(logits, t, pos_weight=pos_weight, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        return ((1 - p_t).pow(self.focal_gamma) * ce).mean()

    def loss_terms(self, logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
        """(numerator, denominator) with ``loss = numerator / denominator``: sums over batches and
        processes give the loss of the whole set exactly, whatever the batches (the mean's
        denominator is the images, the class weights of their targets, or images x outputs)."""
        logits = logits.float()
        n = len(targets)
        if self.kind == "multiclass" and self.loss_name == "ce" and targets.ndim == 1:
            weight = self.class_weights.to(logits.device) if self.class_weights is not None else None
            total = F.cross_entropy(logits, targets.long(), weight=weight, label_smoothing=self.label_smoothing,
                                    reduction="sum")  # fmt: skip
            den = float(weight[targets.long()].sum()) if weight is not None else float(n)
            return float(total), den
        per_element = self.kind != "multiclass"  # BCE and sigmoid focal average over every output
        den = float(n * logits.shape[1]) if per_element else float(n)
        return float(self.loss(logits, targets)) * den, den

    def probs(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, C) probabilities: softmax for multiclass; for binary both classes' (1 - p, p)."""
        logits = logits.float()
        if self.kind == "multiclass":
            return logits.softmax(1)
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], 1) if self.kind == "binary" else p

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """Class indices (B,) for binary/multiclass; multi-hot (B, C) for multilabel."""
        if self.kind == "multiclass":
            return logits.argmax(1)
        if self.kind == "binary":
            return (torch.sigmoid(logits.float())[:, 0] >= self.threshold).long()
        return (torch.sigmoid(logits.float()) >= self.threshold).long()

    def hard_targets(self, targets: torch.Tensor) -> torch.Tensor:
        if targets.ndim == 1 or self.kind == "multilabel":
            return targets if self.kind != "multilabel" else (targets >= 0.5).long()
        return targets.argmax(1)  # mixed rows: the dominant class

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """Correct decisions in the batch: images (single-label) or exact label sets (multilabel)."""
        pred, true = self.predict(logits), self.hard_targets(targets).to(logits.device)
        if self.kind == "multilabel":
            return float((pred == true).all(1).sum())
        return float((pred == true).sum())


def class_weights_auto(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights, mean 1 over the classes present (sklearn's "balanced")."""
    counts = torch.bincount(targets.long(), minlength=num_classes).float()
    present = int((counts > 0).sum())
    return torch.where(counts > 0, counts.sum() / (present * counts.clamp_min(1)), torch.zeros(()))


def pos_weight_auto(multi_hot: torch.Tensor) -> torch.Tensor:
    """negatives / positives per label (clamped to [1/100, 100]): BCE's balance for rare labels."""
    pos = multi_hot.float().sum(0)
    neg = len(multi_hot) - pos
    return (neg / pos.clamp_min(1)).clamp(0.01, 100.0)
