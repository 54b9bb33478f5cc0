"""``imgcls data check`` and ``imgcls data shard`` as a user runs them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgcls.cli import main
from imgcls.data.check import check_data
from imgcls.data.source import open_source

FIXTURES = Path(__file__).parents[1] / "fixtures"
FOLDER = FIXTURES / "cifar_jpg"


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real CIFAR images with the problems check must find: bad files, a duplicate, a leak, imbalance."""
    root = tmp_path_factory.mktemp("messy")
    shutil.copytree(FOLDER, root, dirs_exist_ok=True)
    for i in range(6, 20):  # 20 cats against 6 of everything else
        shutil.copy(FOLDER / "train" / "cat" / f"{i % 6:04d}.jpg", root / "train" / "cat" / f"copy{i}.jpg")
    shutil.copy(FOLDER / "train" / "dog" / "0000.jpg", root / "test" / "dog" / "leaked.jpg")
    shutil.copy(FIXTURES / "images" / "bad" / "truncated.jpg", root / "train" / "cat" / "broken.jpg")
    shutil.copy(FIXTURES / "images" / "bad" / "page.jpg", root / "test" / "cat" / "page.jpg")
    return root


@pytest.mark.parametrize("workers", [0, 2])
def test_check_finds_every_problem(messy: Path, workers: int) -> None:
    report = check_data(open_source(messy), workers=workers, progress=False)
    train, test = report["splits"]["train"], report["splits"]["test"]
    assert train["counts"]["cat"] == 21 and train["counts"]["dog"] == 6 and test["counts"]["dog"] == 3
    assert train["images"] == 75 and train["sizes"] == {"32x32": 74} and train["modes"] == {"RGB": 74}
    assert [(Path(b["file"]).name, b["reason"][:12]) for b in train["bad"]] == [
        ("broken.jpg", "is truncated")
    ]
    assert [Path(b["file"]).name for b in test["bad"]] == ["page.jpg"]
    assert len(report["duplicates"]) == 7  # cat 0000..0005 copied (14 copies), and dog 0000 into test
    (leak,) = report["leakage"]
    assert Path(leak["file"]).name == "leaked.jpg" and leak["other_split"] == "train"
    warnings = " ".join(report["warnings"])
    assert (
        "imbalanced: 21 vs 6" in warnings
        and "2 bad file(s)" in warnings
        and "more than one split" in warnings
    )


def test_clean_data_has_no_warnings() -> None:
    report = check_data(open_source(FIXTURES / "mnist"), progress=False)
    assert report["warnings"] == [] and report["splits"]["train"]["sizes"] == {"28x28": 64}


def test_cli_check_table_and_json(messy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "imgcls", "data", "check", str(messy)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert (
        "broken.jpg" in r.stdout
        and "leak" in r.stdout
        and "imbalanced" in r.stdout
        and "airplane" in r.stdout
    )
    assert main(["data", "check", str(messy), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test"]["images"] == 22


def test_cli_shard_then_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "shard", str(FOLDER), str(tmp_path), "--shard-size", "25"]) == 0
    out = capsys.readouterr().out
    assert "train: 60 samples in 3 shard(s)" in out and "test: 20 samples in 1 shard(s)" in out
    assert main(["data", "check", str(tmp_path / "train-{000000..000002}.tar"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (
        report["kind"] == "shards" and report["splits"]["train"]["images"] == 60 and report["warnings"] == []
    )


def test_cli_data_errors_are_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "imgcls", "data", "check", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr
