"""`imgcls tune`: search spaces checked, trials as run folders, pruning, a study shared by two
processes through one SQLite storage, and the best recipe reproducing its trial."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imgcls.errors import ConfigError
from imgcls.tune.space import load_space, overrides
from imgcls.tune.study import Pruning
from support import MNIST, ROOT, cli

SPACE = """
lr: {low: 1.0e-3, high: 3.0e-2, log: true}
label_smoothing: {low: 0.0, high: 0.2}
batch_size: {choices: [16, 32]}
model_args.drop_rate: {low: 0.0, high: 0.4, step: 0.2}
"""
FIXED = ["--data", f"mnist:{MNIST}", "--model", "lenet5", "--epochs", "2", "--precision", "fp32",
         "--no-progress", "--no-tensorboard"]  # fmt: skip


def write(tmp_path: Path, text: str = SPACE) -> Path:
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return path


def test_a_space_is_checked_before_anything_trains(tmp_path: Path) -> None:
    params = load_space(write(tmp_path), {"drop_rate", "act"})
    assert [p.name for p in params] == ["lr", "label_smoothing", "batch_size", "model_args.drop_rate"]
    assert params[0].log and not params[0].integer and params[2].choices == (16, 32)
    assert overrides({"lr": 0.01, "model_args.drop_rate": 0.2}) == {
        "lr": 0.01,
        "model_args": {"drop_rate": 0.2},
    }
    for text, message in [
        ("lrate: {low: 0.1, high: 1}", "did you mean 'lr'"),
        ("lr: {low: 1, high: 0.1}", "low < high"),
        ("lr: {low: 0, high: 1, log: true}", "low > 0"),
        ("lr: 0.1", "expected {low: A, high: B}"),
        ("model_args.drop_rat: {low: 0, high: 0.5}", "no field 'drop_rat'"),
        ("lr: {low: 0.1, hi: 1}", "unknown keys"),
    ]:
        with pytest.raises(ConfigError, match=message) as e:
            load_space(write(tmp_path, text), {"drop_rate"})
        assert "space.yaml" in str(e.value)


def test_the_pruning_hook_reports_each_epoch_and_ends_a_pruned_run() -> None:
    class Trial:
        def __init__(self) -> None:
            self.reports: list[tuple[float, int]] = []

        def report(self, value: float, step: int) -> None:
            self.reports.append((value, step))

        def should_prune(self) -> bool:
            return len(self.reports) >= 2

    trial = Trial()
    hook = Pruning(trial, "acc")
    assert hook.epoch_end(None, {"epoch": 0, "val": {"acc": 0.5}}) is False
    assert hook.epoch_end(None, {"epoch": 1, "val": {"acc": 0.4}}) is True and hook.pruned
    assert trial.reports == [(0.5, 0), (0.4, 1)]


def test_a_study_leaves_run_folders_a_report_and_a_recipe_that_reproduces_the_best(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    r = cli(
        "tune",
        "--space",
        str(write(tmp_path)),
        "--trials",
        "4",
        "--pruner",
        "none",
        "--out",
        str(out),
        *FIXED,
    )
    assert r.returncode == 0, r.stderr
    folder = out / "lenet5-tune"
    trials = sorted(p.name for p in folder.glob("trial-*"))
    assert trials == ["trial-000", "trial-001", "trial-002", "trial-003"]
    assert "study lenet5-tune: 4 trials (4 complete)" in r.stdout
    best_line = next(line for line in r.stdout.splitlines() if line.startswith("best: trial "))
    number, score = int(best_line.split()[2].rstrip(",")), float(best_line.split()[5].rstrip(","))
    vals = [max(json.loads(x)["val"]["acc"] for x in (folder / t / "metrics.jsonl").read_text().splitlines())
            for t in trials]  # fmt: skip
    assert score == max(vals) == vals[number]
    page = (folder / "tune.html").read_text()
    assert "data:image/png;base64" in page and "Importance (fANOVA)" in page and "trial-003" in page
    recipe = folder / "best.yaml"
    again = cli("train", "--config", str(recipe), "--out", str(tmp_path / "again"), "--name", "best",
                "--no-progress", "--no-tensorboard")  # fmt: skip
    assert again.returncode == 0, again.stderr
    metrics = (tmp_path / "again" / "best" / "metrics.jsonl").read_text().splitlines()
    assert max(json.loads(x)["val"]["acc"] for x in metrics) == score  # the same run, again


def test_two_processes_share_one_study_through_sqlite(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "imgcls", "tune", "--space", str(write(tmp_path)), "--trials", "3", "--pruner",
           "none", "--storage", storage, "--study", "shared", "--out", str(out), *FIXED]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    import optuna

    study = optuna.load_study(study_name="shared", storage=storage)
    numbers = sorted(t.number for t in study.trials)
    assert numbers == list(range(6))  # none lost, none twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    runs = {t.user_attrs["run"] for t in study.trials}
    assert runs == {str(out / "shared" / f"trial-{n:03d}") for n in numbers}  # each its own run folder
    assert all((Path(run) / "model.safetensors").is_file() for run in runs)
    assert len({json.dumps(t.params, sort_keys=True) for t in study.trials}) == 6  # no draw repeated
