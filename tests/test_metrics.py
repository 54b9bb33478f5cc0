"""Every metric against scikit-learn, on random inputs and on the edge cases: a class never
predicted, a class absent from the labels, all correct, all wrong."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as sk

from imgcls import metrics as m

TOL = 1e-6


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    c = 5
    out = []
    y = rng.integers(0, c, 200)
    out.append(("random", softmax(rng.normal(size=(200, c)) * 2), y))
    p = softmax(rng.normal(size=(100, c)))
    p[:, 4] = 0  # class 4 is never predicted
    out.append(("never predicted", p / p.sum(1, keepdims=True), rng.integers(0, c, 100)))
    out.append(("absent from labels", softmax(rng.normal(size=(100, c)) * 3), rng.integers(0, c - 1, 100)))
    y = rng.integers(0, c, 50)
    out.append(("all correct", np.eye(c)[y] * 0.9 + 0.02, y))
    out.append(("all wrong", np.eye(c)[(y + 1) % c] * 0.9 + 0.02, y))
    return out


@pytest.mark.parametrize(("name", "probs", "y"), cases(), ids=[c[0] for c in cases()])
def test_multiclass_against_sklearn(name: str, probs: np.ndarray, y: np.ndarray) -> None:
    c = probs.shape[1]
    labels = list(range(c))
    pred = probs.argmax(1)
    out = m.multiclass_metrics(probs, y, topk=(1, 3))
    assert np.array_equal(out["confusion_matrix"], sk.confusion_matrix(y, pred, labels=labels))
    assert abs(out["accuracy"] - sk.accuracy_score(y, pred)) < TOL
    assert abs(out["balanced_accuracy"] - _balanced(y, pred)) < TOL
    for avg in ("micro", "macro", "weighted"):
        p, r, f, _ = sk.precision_recall_fscore_support(y, pred, labels=labels, average=avg, zero_division=0)
        assert (
            abs(out[avg]["precision"] - p) < TOL
            and abs(out[avg]["recall"] - r) < TOL
            and abs(out[avg]["f1"] - f) < TOL
        )
    p, r, f, s = sk.precision_recall_fscore_support(y, pred, labels=labels, average=None, zero_division=0)
    assert np.allclose(out["precision"], p, atol=TOL) and np.allclose(out["recall"], r, atol=TOL)
    assert np.allclose(out["f1"], f, atol=TOL) and np.array_equal(out["support"], s)
    assert abs(out["log_loss"] - sk.log_loss(y, probs, labels=labels)) < TOL
    assert abs(out["top3"] - sk.top_k_accuracy_score(y, probs, k=3, labels=labels)) < TOL


def _balanced(y: np.ndarray, pred: np.ndarray) -> float:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about classes only in the predictions
        return sk.balanced_accuracy_score(y, pred)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_against_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    p[:20] = np.round(p[:20], 1)  # ties in the scores
    out = m.binary_metrics(p, y, threshold=0.5)
    pred = (p >= 0.5).astype(int)
    assert abs(out["accuracy"] - sk.accuracy_score(y, pred)) < TOL
    assert abs(out["roc_auc"] - sk.roc_auc_score(y, p)) < TOL
    assert abs(out["pr_auc"] - sk.average_precision_score(y, p)) < TOL
    assert abs(out["macro"]["f1"] - sk.f1_score(y, pred, average="macro")) < TOL
    fpr, tpr, _ = m.roc_curve(y, p)
    sk_fpr, sk_tpr, _ = sk.roc_curve(y, p, drop_intermediate=False)
    assert np.allclose(fpr, sk_fpr) and np.allclose(tpr, sk_tpr)
    prec, rec, thr = m.precision_recall_curve(y, p)
    sk_prec, sk_rec, sk_thr = sk.precision_recall_curve(y, p)
    assert np.allclose(prec, sk_prec) and np.allclose(rec, sk_rec) and np.allclose(thr, sk_thr)
    t = out["best_f1_threshold"]
    best = max(sk.f1_score(y, (p >= s).astype(int)) for s in np.unique(p))
    assert abs(sk.f1_score(y, (p >= t).astype(int)) - best) < TOL


def test_binary_edge_cases() -> None:
    y = np.array([1, 1, 1])
    assert m.roc_auc(y, np.array([0.2, 0.5, 0.9])) is None  # one class only: undefined
    assert m.average_precision(np.zeros(3, int), np.array([0.1, 0.2, 0.3])) is None
    out = m.binary_metrics(np.array([0.9, 0.8, 0.1, 0.2]), np.array([1, 1, 0, 0]))
    assert out["accuracy"] == 1.0 and out["roc_auc"] == 1.0 and out["pr_auc"] == 1.0
    wrong = m.binary_metrics(np.array([0.1, 0.2, 0.9, 0.8]), np.array([1, 1, 0, 0]))
    assert wrong["accuracy"] == 0.0 and wrong["roc_auc"] == 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_multilabel_against_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = (rng.random((150, 4)) < [0.5, 0.2, 0.05, 0.0]).astype(int)  # label 3 never present
    probs = np.clip(y * 0.4 + rng.random((150, 4)) * 0.6, 0, 1)
    out = m.multilabel_metrics(probs, y, 0.5)
    pred = (probs >= 0.5).astype(int)
    assert abs(out["subset_accuracy"] - sk.accuracy_score(y, pred)) < TOL
    assert abs(out["hamming_loss"] - sk.hamming_loss(y, pred)) < TOL
    for avg in ("micro", "macro", "weighted"):
        assert abs(out[avg]["f1"] - sk.f1_score(y, pred, average=avg, zero_division=0)) < TOL
    assert np.allclose(out["f1"], sk.f1_score(y, pred, average=None, zero_division=0))
    present = [j for j in range(4) if y[:, j].any()]
    expected = np.mean([sk.average_precision_score(y[:, j], probs[:, j]) for j in present])
    assert abs(out["mAP"] - expected) < TOL and out["ap"][3] is None


def test_calibration_and_temperature() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(2000)
    correct = rng.random(2000) < conf  # calibrated by construction
    assert m.calibration(conf, correct)["ece"] < 0.05
    over = m.calibration(np.full(100, 0.99), np.r_[np.ones(50), np.zeros(50)])
    assert abs(over["ece"] - 0.49) < TOL
    logits = rng.normal(size=(500, 3)) * 4
    y = np.array([rng.choice(3, p=softmax(row[None] / 4)[0]) for row in logits])  # true temperature 4
    assert 3.0 < m.fit_temperature(logits, y) < 5.5
