"""A run folder written by an earlier release still loads: ``tests/fixtures/legacy/lenet5-format1`` was
written by the code of format 1 (before the run module owned the folder) and is evaluated, predicted
with and read here as it is."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

import imgcls
from imgcls.data import load_mnist
from support import FIXTURES, cli

OLD = FIXTURES / "legacy" / "lenet5-format1"


def test_an_old_run_predicts_what_it_predicted() -> None:
    expected = json.loads((FIXTURES / "legacy" / "lenet5-format1.expected.json").read_text())["probs"]
    images, _ = load_mnist(FIXTURES / "mnist", "test")
    probs = imgcls.load(OLD).predict_proba(images[:5])
    assert torch.allclose(probs, torch.tensor(expected), atol=1e-6)


def test_an_old_run_evaluates_and_predicts_on_the_command_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(OLD, run)  # eval writes metrics.json and report.html into the run folder
    r = cli("eval", str(run), "--no-progress")
    assert r.returncode == 0, r.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    test = json.loads((OLD / "test_metrics.json").read_text())
    assert metrics["images"] == 64 and abs(metrics["accuracy"] - test["acc"]) < 1e-9
    r = cli("predict", str(run), str(FIXTURES / "images" / "cifar" / "cat_0000.jpg"), "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["label"] in [str(i) for i in range(10)]


def test_a_weights_file_naming_an_unknown_test_precision_is_refused_by_name() -> None:
    import pytest

    from imgcls.run import RunFolderError, RunMeta

    meta = RunMeta("lenet5", 10, [str(i) for i in range(10)], "multiclass", {}).to_metadata()
    assert RunMeta.from_metadata(meta).test_precision == "fp32"
    absent = {k: v for k, v in meta.items() if k != "test_precision"}
    assert RunMeta.from_metadata(absent).test_precision == "fp32"  # written before the field: fp32
    with pytest.raises(RunFolderError, match="test_precision 'fp8' is not one of fp32, bf16-if-native"):
        RunMeta.from_metadata({**meta, "test_precision": "fp8"}, where="w.safetensors")
