"""`imgcls data clean`: confident learning against its definition and on planted label flips,
near-duplicates planted in a folder (re-encoded, shifted) found and distinct images not, and the
command end to end on a real fixture (CSV, page, cleaned label file)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imgcls.clean import oof
from imgcls.clean.confident import confident_joint, find_label_issues
from imgcls.clean.duplicates import embed, similar_pairs
from imgcls.clean.oof import stratified_folds
from imgcls.data.pipeline import AugmentConfig
from imgcls.data.source import open_source
from imgcls.engine.evaluate import tta_logits
from support import FOLDER, cli


def noisy_probabilities(n: int, k: int, seed: int, accuracy: float = 0.97) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold-like probabilities of a good classifier: the true class likely, sometimes wrong."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    right = rng.random(n) < accuracy
    logits[np.arange(n), np.where(right, truth, (truth + rng.integers(1, k, n)) % k)] += 5.0
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), truth


def test_the_confident_joint_is_the_definition() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    labels = np.array([0, 0, 0, 1, 1])
    joint, thresholds, confident = confident_joint(probs, labels)
    np.testing.assert_allclose(thresholds, [(0.9 + 0.8 + 0.3) / 3, (0.4 + 0.8) / 2])
    # image 2 (label 0): p1 = 0.7 >= t1 = 0.6 -> confidently 1; image 3 (label 1): p0 = 0.6 < t0 = 0.667 and
    # p1 = 0.4 < t1: in no cell
    assert confident.tolist() == [0, 0, 1, -1, 1]
    assert joint.tolist() == [[2, 1], [0, 1]]
    issues = find_label_issues(probs, labels)
    assert issues.index.tolist() == [2] and issues.suggested.tolist() == [1] and issues.given.tolist() == [0]


def test_planted_flips_are_found_and_clean_labels_are_not() -> None:
    probs, truth = noisy_probabilities(20_000, 10, seed=1, accuracy=0.998)
    rng = np.random.default_rng(2)
    flipped = rng.choice(len(truth), size=400, replace=False)  # 2 %
    noisy = truth.copy()
    noisy[flipped] = (truth[flipped] + rng.integers(1, 10, len(flipped))) % 10
    issues = find_label_issues(probs, noisy)
    top = issues.index[: len(flipped)]
    hits = np.isin(top, flipped).sum()
    assert hits / len(top) >= 0.8  # precision in the top 2 %
    assert hits / len(flipped) >= 0.7  # recall in the top 2 %
    right = np.isin(issues.index, flipped)
    assert (issues.suggested[right] == truth[issues.index[right]]).mean() > 0.9  # the true class suggested
    clean = find_label_issues(*noisy_probabilities(20_000, 10, seed=3, accuracy=0.999))
    assert len(clean) / 20_000 < 0.005  # a clean set is left alone


def test_folds_are_stratified_and_seeded() -> None:
    labels = np.repeat(np.arange(3), [10, 7, 5])
    fold = stratified_folds(labels, 3, seed=0)
    for c in range(3):
        counts = np.bincount(fold[labels == c], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert np.array_equal(fold, stratified_folds(labels, 3, seed=0))
    assert not np.array_equal(fold, stratified_folds(labels, 3, seed=1))


def planted_folder(root: Path) -> tuple[Path, dict[str, str]]:
    """The fixture's CIFAR JPEGs plus a JPEG-60 re-encode of one and a 1-pixel shift of another."""
    shutil.copytree(FOLDER / "train", root)
    originals = sorted(root.rglob("*.jpg"))
    a, b = originals[0], originals[7]
    buf = io.BytesIO()
    Image.open(a).save(buf, "JPEG", quality=60)
    reencoded = a.with_name("copy_q60.jpg")
    reencoded.write_bytes(buf.getvalue())
    img = np.asarray(Image.open(b).convert("RGB"))
    shifted = np.concatenate([img[:, :1], img[:, :-1]], 1)  # one pixel right, edge repeated
    moved = b.with_name("copy_shift.jpg")
    Image.fromarray(shifted).save(moved, quality=95)
    return root, {str(reencoded): str(a), str(moved): str(b)}


def test_near_duplicates_are_found_and_distinct_images_are_not(tmp_path: Path) -> None:
    root, planted = planted_folder(tmp_path / "photos")
    train = open_source(str(root)).split("train")
    pairs = similar_pairs(embed(train, progress=False))
    found = {frozenset((train.paths[p.a], train.paths[p.b])) for p in pairs}
    assert found == {frozenset(kv) for kv in planted.items()}, found


def test_test_images_copied_into_train_are_leaks(tmp_path: Path) -> None:
    root = tmp_path / "data"
    shutil.copytree(FOLDER, root)
    test_image = sorted((root / "test").rglob("*.jpg"))[3]
    shutil.copy(test_image, root / "train" / test_image.parent.name / "leaked.jpg")
    source = open_source(str(root))
    train, test = source.split("train"), source.split("test")
    leaks = similar_pairs(embed(test, progress=False), embed(train, progress=False))
    assert [(test.paths[p.a], Path(train.paths[p.b]).name) for p in leaks] == [
        (str(test_image), "leaked.jpg")
    ]


def test_clean_end_to_end_writes_the_csv_the_page_and_a_cleaned_label_file(tmp_path: Path) -> None:
    root, planted = planted_folder(tmp_path / "photos")
    out = tmp_path / "report"
    r = cli("data", "clean", str(root), "--model", "resnet20", "--folds", "2", "--epochs", "1", "--out", str(out),
            "--apply", "--no-progress")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader((out / "label_issues.csv").open()))
    assert rows and set(rows[0]) == {"file", "given", "suggested", "score", "reason"}
    dups = [row for row in rows if row["reason"].startswith("near-duplicate of ")]
    assert {(row["file"], row["reason"].split(" of ", 1)[1]) for row in dups} <= {
        (k, v) for k, v in planted.items()
    } | {(v, k) for k, v in planted.items()} and len(dups) == 2
    issues = [row for row in rows if row["reason"].startswith("label issue")]
    assert all(row["given"] != row["suggested"] for row in issues)
    scores = [float(row["score"]) for row in issues]
    assert scores == sorted(scores)  # lowest self-confidence first
    page = (out / "label_issues.html").read_text()
    assert "Near-duplicates" in page and "data:image/png;base64" in page
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["images"] == 62 and summary["near_duplicates"] == 2 and summary["label_issues"] == len(issues)
    )
    assert len(list((out / "folds").glob("fold-*/model.safetensors"))) == 2  # each fold a run folder
    cleaned = open_source(str(out / "cleaned.csv"))
    assert len(cleaned.split("train")) == 62 - 2  # the copies left out, the images untouched
    assert all(Path(p).is_file() for p in cleaned.split("train").paths)
    split = cleaned.split("train")
    by_path = {Path(p).resolve(): cleaned.classes[t] for p, t in zip(split.paths, split.targets)}
    for row in issues:
        if Path(row["file"]).resolve() in by_path:
            assert by_path[Path(row["file"]).resolve()] == row["suggested"]


@pytest.mark.parametrize("folds", [1])
def test_too_few_folds_are_refused(tmp_path: Path, folds: int) -> None:
    r = cli("data", "clean", str(FOLDER), "--model", "lenet5", "--folds", str(folds), "--out", str(tmp_path))
    assert r.returncode != 0 and "argument --folds: must be >= 2, got 1" in r.stderr


def test_out_of_fold_probabilities_average_the_runs_test_time_views(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))  # not mirror-symmetric
    images = torch.rand(6, 3, 8, 8)
    batch = types.SimpleNamespace(images=images, index=torch.arange(6))
    monkeypatch.setattr(oof, "make_loader", lambda *a: types.SimpleNamespace(iter_from=lambda start: [batch]))

    def probs(tta: str) -> np.ndarray:
        cfg = types.SimpleNamespace(batch_size=6, test_tta=tta)
        trainer = types.SimpleNamespace(eval_model=model, device=torch.device("cpu"), channels_last=False,
                                        cfg=cfg, pre=None, precision="fp32", aug=AugmentConfig(hflip=0.5))  # fmt: skip
        p, at = oof._predict(trainer, None)
        assert at.tolist() == list(range(6))
        return p

    with torch.no_grad():
        want = tta_logits(model, images, "flip-shift").softmax(1).numpy()
        plain = model(images).softmax(1).numpy()
    assert np.allclose(probs("flip-shift"), want, atol=1e-6)
    assert np.allclose(probs("none"), plain, atol=1e-6) and not np.allclose(want, plain, atol=1e-3)
