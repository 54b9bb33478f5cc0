"""Impossible numbers are refused with the option's name and the allowed range (issue 29, item 2): every
numeric training option declares its range, and the commands' own numeric options check theirs."""

from __future__ import annotations

import typing

import pytest

from imgcls.cli import build_parser
from imgcls.config import Range, apply_overrides, leaves
from imgcls.engine.config import TrainConfig
from imgcls.errors import ConfigError
from support import MNIST, cli


def numeric(kind: typing.Any) -> bool:
    return any(t in (int, float) for t in (kind, *typing.get_args(kind), *(
        a for arg in typing.get_args(kind) for a in typing.get_args(arg))))  # fmt: skip


def test_every_numeric_training_option_declares_its_range() -> None:
    missing = [path for path, f, kind in leaves(TrainConfig) if numeric(kind) and "valid" not in f.metadata]
    assert not missing, f"numeric options without a range: {missing}"


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("epochs", "-1", "--epochs (config.epochs) must be >= 1, got -1"),
        ("epochs", "0", "--epochs (config.epochs) must be >= 1, got 0"),
        ("batch_size", "0", "--batch-size (config.batch_size) must be >= 1"),
        ("lr", "-0.1", "--lr (config.optim.lr) must be >= 0"),
        ("val_fraction", "1", "--val-fraction (config.data.val_fraction) must be in [0, 1)"),
        ("label_smoothing", "-0.1", "must be in [0, 1)"),
        ("momentum", "1.5", "--momentum (config.optim.momentum) must be in [0, 1)"),
        ("hflip", "2", "--hflip (config.aug.hflip) must be in [0, 1]"),
        ("accum_steps", "0", "--accum-steps (config.optim.accum_steps) must be >= 1"),
        ("warmup_fraction", "1", "must be in [0, 1)"),
        ("betas", "0.9,1.2", "--betas (config.optim.betas) must be in [0, 1)"),
        ("threshold", "1.5", "--threshold (config.task.threshold) must be in [0, 1]"),
        ("ra_magnitude", "31", "must be in [0, 30]"),
    ],
)
def test_an_impossible_training_value_is_refused_by_name(option: str, value: str, says: str) -> None:
    with pytest.raises(ConfigError) as e:
        apply_overrides(TrainConfig, {}, {option: value})
    assert says in str(e.value)


def test_the_bounds_themselves_are_accepted() -> None:
    cfg = apply_overrides(
        TrainConfig, {}, {"epochs": "1", "val_fraction": "0", "momentum": "0", "hflip": "1"}
    )
    assert (cfg.epochs, cfg.data.val_fraction, cfg.optim.momentum, cfg.aug.hflip) == (1, 0.0, 0.0, 1.0)
    assert 0 in Range(0, 1) and 1 not in Range(0, 1, high_open=True) and 0 not in Range(0, 1, low_open=True)


def test_the_command_line_says_it_and_exits_non_zero(tmp_path) -> None:  # type: ignore[no-untyped-def]
    r = cli("train", "--data", f"mnist:{MNIST}", "--epochs", "0", "--out", str(tmp_path))
    assert r.returncode != 0 and "--epochs (config.epochs) must be >= 1, got 0" in r.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["predict", "run", "x.jpg", "--topk", "0"], "argument --topk: must be >= 1, got 0"),
        (["predict", "run", "x.jpg", "--topk", "two"], "argument --topk: expected an integer, got 'two'"),
        (["serve", "run", "--port", "70000"], "argument --port: must be in [0, 65535], got 70000"),
        (["serve", "run", "--timeout", "0"], "argument --timeout: must be > 0, got 0"),
        (["data", "clean", "d", "--folds", "1"], "argument --folds: must be >= 2, got 1"),
        (["bench", "--repeats", "0"], "argument --repeats: must be >= 1, got 0"),
    ],
)
def test_the_commands_numeric_options_check_their_range(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(argv)
    assert e.value.code == 2 and says in capsys.readouterr().err
