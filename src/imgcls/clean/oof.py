"""Out-of-fold predicted probabilities of a source's training images: what confident learning reads.

Two ways: K-fold training (``kfold``: the images split into K stratified folds; a model trained by
the ordinary engine on K-1 of them predicts the one left out — each fold an ordinary run folder), or
the cheap path for large sets (``probe``: pooled features of given weights, computed once, and a
K-fold logistic-regression probe on them). Both give every image a probability vector from a model
that never saw it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..amp import autocast
from ..data.loader import make_loader
from ..data.splits import DataSource
from ..engine.config import TrainConfig
from ..engine.evaluate import tta_logits
from ..engine.resolve import prepare, resolve
from ..engine.trainer import Trainer
from ..errors import ConfigError


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each image's fold (0..folds-1): every class dealt round-robin over the folds in a seeded order."""
    rng = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=np.int64)
    offset = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        fold[members] = (np.arange(len(members)) + offset) % folds
        offset += len(members)
    return fold


def _check(source: DataSource, folds: int) -> np.ndarray:
    train = source.split("train")
    labels = getattr(train, "targets", None)
    if labels is None or source.multilabel or labels.ndim != 1:
        raise ConfigError(
            f"imgcls data clean needs single-label images in memory or in files; {source.spec} is not"
        )
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    counts = np.bincount(labels, minlength=source.num_classes)
    if counts.min() < folds:
        rare = source.classes[int(counts.argmin())]
        raise ConfigError(
            f"class {rare!r} has {counts.min()} images, fewer than --folds {folds}: use fewer folds"
        )
    return labels


@torch.no_grad()
def _predict(trainer: Trainer, source: DataSource) -> tuple[np.ndarray, np.ndarray]:
    """(softmax probabilities, positions) of the source's val split under the trainer's final model,
    over the same test-time views (``test_tta``) as the run's test evaluation."""
    model, device = trainer.eval_model.eval(), trainer.device
    fmt = torch.channels_last if trainer.channels_last else torch.contiguous_format
    probs, index = [], []
    for batch in make_loader(source, "val", trainer.pre, None, max(trainer.cfg.batch_size, 128)).iter_from(0):
        with autocast(device, trainer.precision):
            x = batch.images.to(device, memory_format=fmt)
            logits = tta_logits(model, x, trainer.cfg.test_tta, trainer.aug.mirror_share > 0)
        probs.append(logits.float().softmax(1).cpu().numpy())
        index.append(batch.index.numpy())
    return np.concatenate(probs), np.concatenate(index)


def kfold(cfg: TrainConfig, source: DataSource, folds: int) -> tuple[np.ndarray, list[Path]]:
    """(probabilities (N, classes) of the training images, the fold runs). Each fold's model is its
    last epoch's (not the best on the left-out fold: that choice would have seen it)."""
    labels = _check(source, folds)
    train = source.split("train")
    fold = stratified_folds(labels, folds, cfg.seed)
    probs = np.zeros((len(labels), source.num_classes))
    runs = []
    for k in range(folds):
        held, rest = np.flatnonzero(fold == k), np.flatnonzero(fold != k)
        held_split = train.subset(held)
        held_split.label = f"{train.label} (fold {k + 1} of {folds})"
        fold_source = dataclasses.replace(source, splits={"train": train.subset(rest), "val": held_split})
        plan = resolve(dataclasses.replace(cfg, name=f"fold-{k + 1}", eval_test=False))
        trainer = Trainer(prepare(dataclasses.replace(plan, source=fold_source)))
        result = trainer.fit()
        p, at = _predict(trainer, fold_source)
        trainer.close()
        probs[held[at]] = p
        runs.append(result.run)
    return probs, runs


def probe(weights: str, source: DataSource, folds: int, seed: int, model: str | None = None,
          progress: bool = True) -> np.ndarray:  # fmt: skip
    """Probabilities from a K-fold logistic-regression probe on the pooled features of ``weights``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.preprocessing import StandardScaler

    from ..features import backbone, extract

    labels = _check(source, folds)
    net, pre, key = backbone(weights, source.channels, model)
    x, _ = extract(net, source, "train", pre, init=weights, key=key, progress=progress)
    x = StandardScaler().fit_transform(x)
    clf = LogisticRegression(max_iter=300, C=1.0)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return cross_val_predict(clf, x, labels, cv=cv, method="predict_proba")
