"""Label issues by confident learning (Northcutt, Jiang & Chuang, JAIR 2021), from out-of-fold
predicted probabilities: no image is scored by a model that trained on it.

1. Per-class thresholds: ``t_j`` = the mean predicted probability of class j over the images labelled j
   (how confident the model is, on average, when j is right).
2. The confident joint ``C[i, j]``: images labelled i whose probability of j reaches ``t_j`` (the
   highest such j when several do) — counted as "given i, truly j". Calibrated so each row sums to the
   number of images labelled i.
3. The issues: for each off-diagonal pair (i, j), the ``round(C[i, j])`` images labelled i with the
   largest margin ``p_j - p_i`` (prune by noise rate), kept when they are also in the confident
   joint's off-diagonal (both methods agree: cleanlab's ``both``); ranked by self-confidence, the
   probability of the given label, lowest first. The suggested label is the confident class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LabelIssues:
    index: np.ndarray  # images with a label issue, worst first
    given: np.ndarray  # their labels
    suggested: np.ndarray  # the class the model is confident of
    self_confidence: np.ndarray  # p(given label), ascending
    joint: np.ndarray  # the calibrated confident joint (classes x classes)
    thresholds: np.ndarray  # per class

    def __len__(self) -> int:
        return len(self.index)


def confident_joint(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the raw confident joint counts, per-class thresholds, each image's confident class or -1)."""
    k = probs.shape[1]
    thresholds = np.array([probs[labels == j, j].mean() if (labels == j).any() else 1.0 for j in range(k)])
    above = probs >= thresholds[None, :] - 1e-12
    confident = np.where(above.any(1), np.where(above, probs, -np.inf).argmax(1), -1)
    joint = np.zeros((k, k), dtype=np.int64)
    counted = confident >= 0
    np.add.at(joint, (labels[counted], confident[counted]), 1)
    return joint, thresholds, confident


def calibrate(joint: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows scaled to the number of images of each given label."""
    counts = np.bincount(labels, minlength=joint.shape[0]).astype(np.float64)
    rows = joint.sum(1, keepdims=True).astype(np.float64)
    return np.where(rows > 0, joint / np.maximum(rows, 1) * counts[:, None], 0.0)


def find_label_issues(probs: np.ndarray, labels: np.ndarray) -> LabelIssues:
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"probs must be (images, classes) for {len(labels)} labels, got {probs.shape}")
    raw, thresholds, confident = confident_joint(probs, labels)
    joint = calibrate(raw, labels)
    k = probs.shape[1]
    pruned = np.zeros(len(labels), dtype=bool)
    for i in range(k):
        members = np.flatnonzero(labels == i)
        for j in range(k):
            count = round(float(joint[i, j]))
            if i == j or count == 0 or not len(members):
                continue
            margin = probs[members, j] - probs[members, i]
            pruned[members[np.argsort(-margin, kind="stable")[:count]]] = True
    off_diagonal = (confident >= 0) & (confident != labels)
    flagged = np.flatnonzero(pruned & off_diagonal)
    self_conf = probs[flagged, labels[flagged]]
    order = np.argsort(self_conf, kind="stable")
    index = flagged[order]
    return LabelIssues(index, labels[index], confident[index], self_conf[order], joint, thresholds)
