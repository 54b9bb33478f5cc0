"""What tripped a new user (issue 29): one class refused with what to do, in train and in data check; the
task data check names is the one train picks; a run that fails before it starts leaves no folder."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from imgcls.data.source import open_source
from imgcls.engine.trainer import train
from imgcls.errors import ConfigError, ImgclsError
from support import FOLDER, MNIST, cli, config


def folder_of(tmp_path: Path, classes: list[str]) -> Path:
    """A folder data set of the fixture's real CIFAR JPEGs, one sub-folder per named class."""
    root = tmp_path / "photos"
    sources = sorted((FOLDER / "train").iterdir())
    for name, src in zip(classes, sources):
        shutil.copytree(src, root / name)
    return root


def test_one_class_is_refused_with_what_to_do(tmp_path: Path) -> None:
    root = folder_of(tmp_path, ["cats"])
    with pytest.raises(
        ConfigError, match=re.escape("one class, 'cats': a classifier needs at least two. Add a folder")
    ):
        train(config(tmp_path, data=str(root), model="lenet5", epochs=1))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
    r = cli("data", "check", str(root))
    assert r.returncode == 1 and "one class, 'cats'" in r.stderr and "no problems found" not in r.stdout
    r = cli("data", "check", str(root), "--json")
    assert json.loads(r.stdout)["errors"] and r.returncode == 1


def test_data_check_names_the_task_that_train_picks(tmp_path: Path) -> None:
    root = folder_of(tmp_path, ["ants", "bees"])
    assert open_source(str(root)).task == "binary"
    r = cli("data", "check", str(root), "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["task"] == "binary"
    assert open_source(f"mnist:{MNIST}").task == "multiclass"


def test_failed_starts_leave_no_folders_and_no_odd_numbers(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    for bad in ({"model": "resnt18"}, {"model": "lenet5", "data": str(tmp_path / "missing")}):
        with pytest.raises(ImgclsError):
            train(config(tmp_path, **{"data": f"mnist:{MNIST}", "epochs": 1, "batch_size": 32, **bad}))
    assert not out.exists() or not any(out.iterdir())
    result = train(config(tmp_path, data=f"mnist:{MNIST}", model="lenet5", epochs=1, batch_size=32, eval_test=False,
                          tensorboard=False))  # fmt: skip
    assert result.run == out / "lenet5"  # not lenet5-3


def test_progress_lines_appear_in_a_captured_log(tmp_path: Path) -> None:
    """No terminal (the output captured, as nohup or CI would): plain progress lines with the ETA."""
    r = cli("train", "--data", f"mnist:{MNIST}", "--model", "lenet5", "--epochs", "2", "--batch-size", "8",
            "--out", str(tmp_path), "--no-tensorboard", "--log-every", "0.000001")  # fmt: skip
    assert r.returncode == 0, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("epoch ") and " ETA " in x]
    assert len(lines) >= 2 and any(x.startswith("epoch 2/2  batch") for x in lines), r.stderr
    assert "img/s" in lines[0] and "loss" in lines[0] and "━" not in r.stderr.split("imgcls:")[-1]
    quiet = cli("train", "--data", f"mnist:{MNIST}", "--model", "lenet5", "--epochs", "1", "--batch-size", "8",
                "--out", str(tmp_path), "--no-tensorboard", "--log-every", "0")  # fmt: skip
    assert not [x for x in quiet.stderr.splitlines() if " ETA " in x]


def test_predict_heads_its_column_by_what_it_shows(tmp_path: Path) -> None:
    root = folder_of(tmp_path, ["ants", "bees"])
    result = train(config(tmp_path, data=str(root), model="lenet5", epochs=1, batch_size=8, eval_test=False,
                          tensorboard=False))  # fmt: skip
    image = next((root / "ants").iterdir())
    r = cli("predict", str(result.run), str(image), "--topk", "5")
    assert r.returncode == 0, r.stderr
    assert "all classes" in r.stdout and "top 5" not in r.stdout


def test_the_default_log_holds_no_jargon(tmp_path: Path) -> None:
    r = cli("train", "--data", f"mnist:{MNIST}", "--model", "lenet5", "--epochs", "1", "--out", str(tmp_path),
            "--no-tensorboard", "--no-progress")  # fmt: skip
    assert r.returncode == 0 and "mallopt" not in r.stdout + r.stderr
