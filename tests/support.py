"""Helpers the test modules share: fixture paths, a quiet training config, the CLI in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from imgcls.config import apply_overrides
from imgcls.engine.config import TrainConfig

ROOT = Path(__file__).parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
MNIST = FIXTURES / "mnist"  # the first 64 real MNIST train and test images
FOLDER = FIXTURES / "cifar_jpg"  # real CIFAR-10 JPEGs: ROOT/{train,test}/CLASS/*.jpg


def config(tmp_path: Path, **overrides: object) -> TrainConfig:
    """A training config for tests: quiet, fp32 contiguous (unless overridden), seeded, under tmp_path."""
    base = {
        "out": str(tmp_path / "runs"),
        "progress": False,
        "precision": "fp32",
        "channels_last": "off",
        "seed": 0,
    }
    return apply_overrides(TrainConfig, {}, {**base, **overrides})


def losses(run: Path) -> list[float]:
    """The per-step training losses a run logged (steps.jsonl)."""
    return [json.loads(line)["loss"] for line in (run / "steps.jsonl").read_text().splitlines()]


def cli(*args: str, timeout: float = 300, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """``imgcls ARGS`` in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "imgcls", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
