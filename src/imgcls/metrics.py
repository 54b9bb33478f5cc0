"""Classification metrics on numpy arrays, written here and checked against scikit-learn in the tests
(scikit-learn is a test dependency only).

Conventions follow scikit-learn's: a ratio whose denominator is 0 is 0 (``zero_division=0``); macro
averages run over the given label set (every class of the task), weighted averages weigh by support;
balanced accuracy averages recall over the classes present in the true labels; average precision is
the step-wise area (no interpolation); ROC-AUC and AP of a label without positives are undefined and
left out of means (None in per-label lists).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class."""
    idx = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def prf_from_counts(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, Any]:
    """Precision, recall, F1 per class and their micro / macro / weighted means."""
    precision, recall = _div(tp, tp + fp), _div(tp, tp + fn)
    f1 = _div(2 * tp, 2 * tp + fp + fn)
    support = tp + fn
    out: dict[str, Any] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    mtp, mfp, mfn = tp.sum(), fp.sum(), fn.sum()
    out["micro"] = {"precision": float(_div(mtp, mtp + mfp)), "recall": float(_div(mtp, mtp + mfn)),
                    "f1": float(_div(2 * mtp, 2 * mtp + mfp + mfn))}  # fmt: skip
    out["macro"] = {k: float(np.mean(out[k])) for k in ("precision", "recall", "f1")}
    w = support / support.sum() if support.sum() else np.zeros_like(support, np.float64)
    out["weighted"] = {k: float(np.sum(out[k] * w)) for k in ("precision", "recall", "f1")}
    return out


def multiclass_metrics(
    probs: np.ndarray, y_true: np.ndarray, topk: tuple[int, ...] = (1, 5)
) -> dict[str, Any]:
    """Everything for single-label predictions from (N, C) probabilities and (N,) labels."""
    probs, y_true = np.asarray(probs, np.float64), np.asarray(y_true, np.int64)
    n, c = probs.shape
    y_pred = probs.argmax(1)
    cm = confusion_matrix(y_true, y_pred, c)
    tp = np.diag(cm)
    prf = prf_from_counts(tp, cm.sum(0) - tp, cm.sum(1) - tp)
    present = cm.sum(1) > 0
    out = {
        "accuracy": float((y_pred == y_true).mean()) if n else 0.0,
        "balanced_accuracy": float(np.mean(_div(tp, cm.sum(1))[present])) if present.any() else 0.0,
        "log_loss": log_loss(probs, y_true),
        "confusion_matrix": cm,
        **prf,
    }
    order = np.argsort(probs, axis=1, kind="mergesort")[
        :, ::-1
    ]  # ties: the higher index first, as scikit-learn
    for k in topk:
        if k <= c:
            out[f"top{k}"] = float((order[:, :k] == y_true[:, None]).any(1).mean()) if n else 0.0
    return out


def log_loss(probs: np.ndarray, y_true: np.ndarray, eps: float | None = None) -> float:
    """Mean negative log-probability of the true class (probabilities clipped as scikit-learn does)."""
    probs = np.asarray(probs, np.float64)
    eps = np.finfo(probs.dtype).eps if eps is None else eps
    p = np.clip(probs[np.arange(len(y_true)), np.asarray(y_true, np.int64)], eps, 1 - eps)
    return float(-np.mean(np.log(p))) if len(p) else 0.0


def _ranked(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true / false positives at each distinct threshold, highest score first."""
    order = np.argsort(-score, kind="mergesort")
    score, y = score[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = (last_of_tie + 1) - tps
    return tps.astype(np.float64), fps.astype(np.float64), score[last_of_tie]


def roc_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, thresholds), starting at (0, 0)."""
    tps, fps, thresholds = _ranked(np.asarray(y, np.float64), np.asarray(score, np.float64))
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return _div(fps, fps[-1]), _div(tps, tps[-1]), np.r_[np.inf, thresholds]


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    y = np.asarray(y)
    if len(np.unique(y)) < 2:
        return None  # undefined with one class only
    fpr, tpr, _ = roc_curve(y, score)
    return float(np.trapezoid(tpr, fpr)) if hasattr(np, "trapezoid") else float(np.trapz(tpr, fpr))


def precision_recall_curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) with thresholds rising, ending at (1, 0) as scikit-learn's."""
    tps, fps, thresholds = _ranked(np.asarray(y, np.float64), np.asarray(score, np.float64))
    precision = _div(tps, tps + fps)
    recall = _div(tps, tps[-1]) if tps[-1] else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def average_precision(y: np.ndarray, score: np.ndarray) -> float | None:
    y = np.asarray(y)
    if not np.any(y):
        return None
    precision, recall, _ = precision_recall_curve(y, score)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def best_threshold(y: np.ndarray, score: np.ndarray) -> float:
    """The score threshold with the highest F1 (ties: the lowest threshold)."""
    tps, fps, thresholds = _ranked(np.asarray(y, np.float64), np.asarray(score, np.float64))
    f1 = _div(2 * tps, tps + fps + tps[-1])
    return float(thresholds[int(np.argmax(f1))]) if len(f1) else 0.5


def binary_metrics(p_positive: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    p, y = np.asarray(p_positive, np.float64), np.asarray(y_true, np.int64)
    out = multiclass_metrics(np.stack([1 - p, p], 1), y, topk=(1,))
    pred = (p >= threshold).astype(np.int64)
    cm = confusion_matrix(y, pred, 2)
    tp = np.diag(cm)
    out.update(prf_from_counts(tp, cm.sum(0) - tp, cm.sum(1) - tp))
    out.update(
        confusion_matrix=cm, accuracy=float((pred == y).mean()) if len(y) else 0.0, threshold=threshold
    )
    present = cm.sum(1) > 0
    out["balanced_accuracy"] = float(np.mean(_div(tp, cm.sum(1))[present])) if present.any() else 0.0
    out["roc_auc"], out["pr_auc"] = roc_auc(y, p), average_precision(y, p)
    out["best_f1_threshold"] = best_threshold(y, p)
    return out


def multilabel_metrics(probs: np.ndarray, y_true: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    probs, y = np.asarray(probs, np.float64), np.asarray(y_true, np.int64)
    pred = (probs >= threshold).astype(np.int64)
    tp = (pred & y).sum(0)
    fp = (pred & (1 - y)).sum(0)
    fn = ((1 - pred) & y).sum(0)
    out: dict[str, Any] = prf_from_counts(tp, fp, fn)
    ap = [average_precision(y[:, j], probs[:, j]) for j in range(y.shape[1])]
    auc = [roc_auc(y[:, j], probs[:, j]) for j in range(y.shape[1])]
    out["ap"], out["roc_auc_per_label"] = ap, auc
    defined = [a for a in ap if a is not None]
    out["mAP"] = float(np.mean(defined)) if defined else None
    out["subset_accuracy"] = float((pred == y).all(1).mean()) if len(y) else 0.0
    out["hamming_loss"] = float((pred != y).mean()) if y.size else 0.0
    out["threshold"] = threshold
    return out


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 15) -> dict[str, Any]:
    """Expected calibration error over equal-width confidence bins, and the reliability diagram's data."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.float64)
    conf = _div(np.bincount(which, confidence, bins), count)
    acc = _div(np.bincount(which, correct, bins), count)
    ece = float(np.sum(count / max(len(confidence), 1) * np.abs(acc - conf)))
    return {
        "ece": ece,
        "bins": edges.tolist(),
        "confidence": conf.tolist(),
        "accuracy": acc.tolist(),
        "count": count.tolist(),
    }


def fit_temperature(logits: np.ndarray, y_true: np.ndarray, steps: int = 200) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) (Guo et al., 2017)."""
    import torch

    z, y = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(y_true, dtype=torch.int64)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())
