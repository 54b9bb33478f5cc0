"""The ``imgcls`` command as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

from imgcls.cli import main


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgcls", *args], check=False, capture_output=True, text=True, timeout=120
    )


def test_models_table_lists_the_zoo() -> None:
    r = run("models", "resnet*")
    assert r.returncode == 0, r.stderr
    assert "resnet50" in r.stdout and "25.56M" in r.stdout and "8.18" in r.stdout and "He et al." in r.stdout
    assert "vgg16" not in r.stdout


def test_models_json(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r for r in rows}
    assert by_name["lenet5"]["params"] == 61_706 and by_name["lenet5"]["input_size"] == [1, 32, 32]
    assert by_name["alexnet"]["gflops"] == 1.428
    assert all({"family", "paper", "authors", "year", "params", "gflops"} <= set(r) for r in rows)


def test_model_args_change_what_is_counted(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["models", "resnet50", "--json", "--model-arg", "width_per_group=128"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["params"] == 68_883_240  # = wide_resnet50_2


def test_errors_are_one_line_and_exit_2() -> None:
    for args, expected in [
        (("models", "resnt50"), "did you mean 'resnet50'"),
        (("models", "resnet50", "--model-arg", "width"), "is not KEY=VALUE"),
        (("models", "resnet50", "--model-arg", "widht_per_group=2"), "did you mean 'width_per_group'"),
    ]:
        r = run(*args)
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and expected in r.stderr, r.stderr


def test_help_and_version() -> None:
    r = run("--help")
    assert r.returncode == 0 and "models" in r.stdout
    assert run("--version").stdout.startswith("imgcls ")
