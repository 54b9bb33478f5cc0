"""``imgcls eval RUN``: a trained run on a data split -> ``metrics.json`` and one self-contained
``report.html``. Images go through the run's ``Predictor`` (the path ``imgcls predict`` uses), so the
evaluation's outputs for a file are the prediction's outputs for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import metrics as M
from .errors import ConfigError
from .predict import Predictor, load
from .run import RunFolder


@dataclass
class EvalResult:
    metrics: dict[str, Any]
    probs: np.ndarray  # (N, C)
    logits: np.ndarray  # (N, outputs), temperature applied
    targets: np.ndarray  # (N,) or (N, C)
    sources: list[Any]  # what was fed to the predictor (paths, arrays or bytes)
    names: list[str]


def _run_config(run: Path) -> dict[str, Any]:
    folder = RunFolder.of(run)
    return folder.read_config() if folder.is_run() else {}


def split_items(
    data: str, split: str | None, run: Path, classes: list[str]
) -> tuple[str, list[Any], list[str], np.ndarray]:
    """(split name, sources, names, targets re-indexed to the run's classes)."""
    from .data.shards import image_part, iter_samples, sample_labels
    from .data.source import open_source
    from .data.splits import ArraySplit, FileSplit

    cfg = _run_config(run)
    source = open_source(data)
    source = source.with_val(float(cfg.get("data", {}).get("val_fraction", 0.1)), int(cfg.get("seed", 0)))
    split = split or ("test" if "test" in source.splits else "val")
    s = source.split(split)
    unknown = [c for c in source.classes if c not in classes]
    if unknown:
        raise ConfigError(f"{data} has classes the run does not know: {', '.join(unknown[:5])}")
    remap = np.array([classes.index(c) for c in source.classes])
    if isinstance(s, ArraySplit):
        items, names, targets = list(s.images), [s.name(i) for i in range(len(s))], s.targets
    elif isinstance(s, FileSplit):
        items, names, targets = list(s.paths), list(s.paths), s.targets
    else:
        items, names, rows = [], [], []
        for url in s.urls:
            for key, parts in iter_samples(url):
                found = image_part(parts)
                labels = sample_labels(parts, source.classes) or []
                if found is None:
                    continue
                items.append(found[1])
                names.append(f"{url}:{key}")
                rows.append([source.classes.index(c) for c in labels])
        if source.multilabel:
            targets = np.zeros((len(rows), len(source.classes)), np.uint8)
            for i, r in enumerate(rows):
                targets[i, r] = 1
        else:
            targets = np.array([r[0] for r in rows], np.int64)
    if targets.ndim == 1:
        targets = remap[targets]
    else:
        full = np.zeros((len(targets), len(classes)), np.uint8)
        full[:, remap] = targets
        targets = full
    return split, items, names, targets


def predict_all(
    clf: Predictor, items: list[Any], tta: str, batch_size: int, progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, logits) for every item; logits are of the un-augmented view."""
    from .progress import track

    probs, logits = [], []
    batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    for batch in track(batches, "evaluating", disable=not progress, unit="batch"):
        probs.append(clf.predict_proba(batch, tta=tta, batch_size=batch_size).numpy())
        x = clf.preprocess.normalizer(torch.cat([clf._views(s, "none") for s in batch]))
        logits.append(clf.logits(x).numpy())
    return np.concatenate(probs), np.concatenate(logits)


def task_metrics(clf: Predictor, probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    kind = clf.task.kind
    if kind == "multiclass":
        out = M.multiclass_metrics(probs, targets, topk=(1, 5))
    elif kind == "binary":
        out = M.binary_metrics(probs[:, 1], targets, clf.task.threshold)
    else:
        out = M.multilabel_metrics(probs, targets, clf.task.threshold)
    if kind != "multilabel":
        pred = probs.argmax(1) if kind == "multiclass" else (probs[:, 1] >= clf.task.threshold).astype(int)
        out["calibration"] = M.calibration(probs.max(1), pred == targets)
        out["ece"] = out["calibration"]["ece"]
    out["loss"] = _loss(clf, probs, targets)
    return out


def _loss(clf: Predictor, probs: np.ndarray, targets: np.ndarray) -> float:
    eps = 1e-12
    if clf.task.kind == "multilabel":
        p = np.clip(probs, eps, 1 - eps)
        return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))
    return M.log_loss(probs, targets)


def evaluate_run(
    run: str | Path,
    data: str | None = None,
    split: str | None = None,
    tta: str = "none",
    calibrate: bool = False,
    batch_size: int = 64,
    out: str | Path | None = None,
    report: bool = True,
    progress: bool = True,
    precision: str | None = None,
) -> EvalResult:
    """``precision``: what the forward passes run in (``amp.INFER_PRECISIONS``); None: what the run's own
    test pass ran in. The metrics name the precision used, fp32 or bf16 (``inference_precision``)."""
    run = Path(run)
    clf = load(run, precision=precision)
    folder = RunFolder.of(run)
    data = data or folder.trained_on()
    if not data:
        raise ConfigError("no data to evaluate on: give --data")
    if calibrate:
        if clf.task.kind == "multilabel":
            raise ConfigError("--calibrate (temperature scaling) is for single-label tasks")
        clf.temperature = 1.0
        _, vitems, _, vtargets = split_items(data, "val", folder.root, clf.classes)
        _, vlogits = predict_all(clf, vitems, "none", batch_size, progress)
        z = vlogits if clf.task.kind == "multiclass" else np.concatenate([np.zeros_like(vlogits), vlogits], 1)
        clf.temperature = M.fit_temperature(z, vtargets)
        folder.write_calibration(clf.temperature, fitted_on="val")
    split, items, names, targets = split_items(data, split, folder.root, clf.classes)
    probs, logits = predict_all(clf, items, tta, batch_size, progress)
    metrics = task_metrics(clf, probs, targets)
    metrics.update(data=data, split=split, tta=tta, inference_precision=clf.precision, images=len(items), temperature=clf.temperature,
                   model=clf.meta.model if clf.meta else None, task=clf.task.kind, classes=clf.classes)  # fmt: skip
    result = EvalResult(metrics, probs, logits, targets, items, names)
    out = Path(out) if out else folder.root
    out.mkdir(parents=True, exist_ok=True)
    folder.eval_metrics(out).write_text(json.dumps(_plain(metrics), indent=1) + "\n")
    if report:
        from .analysis.report import write_report

        write_report(clf, result, folder, folder.report(out))
    return result


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return x
