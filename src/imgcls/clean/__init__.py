"""``imgcls data clean``: the training images whose labels look wrong (confident learning on
out-of-fold probabilities, ``confident.py`` and ``oof.py``), near-duplicates among them and copies of
test images in train (``duplicates.py``), as a ranked CSV and an HTML page (``report.py``); with
``apply``, a cleaned label file beside them — the images and the original labels are never touched."""

from __future__ import annotations

import csv
import html
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data.splits import ArraySplit, DataSource, FileSplit
from ..engine.config import TrainConfig
from ..errors import ConfigError
from .confident import LabelIssues, find_label_issues
from .duplicates import THRESHOLD, embed, similar_pairs
from .report import write_csv, write_html


@dataclass
class CleanResult:
    issues: LabelIssues
    duplicates: list[Any]
    leaks: list[Any]
    rows: list[dict[str, Any]]
    folder: Path
    seconds: float
    runs: list[Path] = field(default_factory=list)
    cleaned: Path | None = None


def _pixels(split: ArraySplit | FileSplit, i: int) -> np.ndarray:
    img = split.image(i, "RGB")
    img.thumbnail((96, 96))
    return np.asarray(img)


def _side_by_side(a: ArraySplit | FileSplit, i: int, b: ArraySplit | FileSplit, j: int) -> np.ndarray:
    left, right = _pixels(a, i), _pixels(b, j)
    h = max(left.shape[0], right.shape[0])
    pad = [np.pad(x, ((0, h - x.shape[0]), (0, 2), (0, 0)), constant_values=255) for x in (left, right)]
    return np.concatenate(pad, 1)


def clean(
    source: DataSource,
    out: Path,
    *,
    cfg: TrainConfig | None = None,
    weights: str | None = None,
    model: str | None = None,
    folds: int = 5,
    seed: int = 0,
    threshold: float = THRESHOLD,
    progress: bool = True,
) -> CleanResult:
    """Label issues of the train split (K-fold training under ``cfg``, or a probe on ``weights``),
    near-duplicates in it and leaks from the test split into it; written into ``out``."""
    from . import oof

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    train = source.split("train")
    if weights:
        probs, runs = oof.probe(weights, source, folds, seed, model, progress), []
    else:
        if cfg is None:
            raise ConfigError("imgcls data clean needs a model to train (--model) or --weights to probe")
        probs, runs = oof.kfold(cfg, source, folds)
    labels = train.targets
    issues = find_label_issues(probs, labels)
    np.save(out / "probabilities.npy", probs.astype(np.float32))
    thumbs = embed(train, progress)
    dups = similar_pairs(thumbs, threshold=threshold)
    leaks = []
    if "test" in source.splits:
        test = source.split("test")
        leaks = similar_pairs(embed(test, progress), thumbs, threshold=threshold)
    names = source.classes
    rows = [{"file": train.name(int(i)), "given": names[g], "suggested": names[s], "score": round(float(c), 5),
             "reason": "label issue (self-confidence: the probability of the given label)"}
            for i, g, s, c in zip(issues.index, issues.given, issues.suggested, issues.self_confidence)]  # fmt: skip
    rows += [{"file": train.name(p.b), "given": names[labels[p.b]], "suggested": "", "score": round(p.similarity, 5),
              "reason": f"near-duplicate of {train.name(p.a)}"} for p in dups]  # fmt: skip
    if leaks:
        test = source.split("test")
        rows += [{"file": test.name(p.a), "given": names[test.targets[p.a]], "suggested": "",
                  "score": round(p.similarity, 5), "reason": f"test image also in train as {train.name(p.b)}"}
                 for p in leaks]  # fmt: skip
    write_csv(rows, out / "label_issues.csv")
    seconds = time.perf_counter() - start
    gallery = [(_pixels(train, int(i)), f"{html.escape(train.name(int(i)))}<br>given <b>{html.escape(names[g])}</b> → "
                f"<b>{html.escape(names[s])}</b><br>p(given) {c:.3f}")
               for i, g, s, c in zip(issues.index, issues.given, issues.suggested, issues.self_confidence)]  # fmt: skip
    sections = [
        ("Label issues", "Ranked by the probability the out-of-fold model gives the label (lowest first).", gallery),
        ("Near-duplicates", f"Thumbnail cosine similarity ≥ {threshold}: each pair side by side.",
         [(_side_by_side(train, p.a, train, p.b), f"{html.escape(train.name(p.b))}<br>≈ {html.escape(train.name(p.a))} "
           f"({p.similarity:.3f})") for p in dups]),
    ]  # fmt: skip
    if leaks:
        test = source.split("test")
        sections.append(("Test images in train", "Each test image beside its copy in train.",
                         [(_side_by_side(test, p.a, train, p.b), f"{html.escape(test.name(p.a))}<br>≈ "
                           f"{html.escape(train.name(p.b))} ({p.similarity:.3f})") for p in leaks]))  # fmt: skip
    how = f"a probe on {weights}" if weights else f"{folds}-fold training of {cfg.model.arch if cfg else '?'}"
    summary = (f"{source.spec}: {len(labels):,} training images; {len(issues):,} label issues "
               f"({100 * len(issues) / max(len(labels), 1):.2f} %), {len(dups):,} near-duplicate pairs, "
               f"{len(leaks):,} test images found in train. Out-of-fold probabilities from {how}; {seconds:.0f} s.")  # fmt: skip
    write_html(sections, summary, out / "label_issues.html")
    (out / "summary.json").write_text(json.dumps({"images": len(labels), "label_issues": len(issues),
                                                  "near_duplicates": len(dups), "leaks": len(leaks),
                                                  "seconds": round(seconds, 1), "method": how}, indent=1) + "\n")  # fmt: skip
    return CleanResult(issues, dups, leaks, rows, out, seconds, runs)


def write_cleaned(result: CleanResult, source: DataSource, path: Path) -> Path:
    """A CSV label file of the train split with each label issue relabelled as suggested and the second
    image of each near-duplicate pair left out (other splits as they were). Images are not touched."""
    train = source.split("train")
    if not isinstance(train, FileSplit):
        raise ConfigError(
            f"--apply writes a label file of image paths, and {source.spec} holds no image files"
        )
    relabel = dict(zip(result.issues.index.tolist(), result.issues.suggested.tolist()))
    dropped = {p.b for p in result.duplicates}
    base = path.parent.resolve()
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for i, p in enumerate(train.paths):
            if i not in dropped:
                w.writerow(
                    [
                        os.path.relpath(Path(p).resolve(), base),
                        source.classes[relabel.get(i, int(train.targets[i]))],
                        "train",
                    ]
                )
        for name, split in source.splits.items():
            if name != "train" and isinstance(split, FileSplit):
                for p, t in zip(split.paths, split.targets):
                    w.writerow([os.path.relpath(Path(p).resolve(), base), source.classes[int(t)], name])
    result.cleaned = path
    return path
