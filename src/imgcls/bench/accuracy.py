"""Accuracy under one budget: each model trained by the real ``imgcls train --budget`` on the same
data for the same wall-clock time (start-up, data loading and evaluation inside it), then its test
accuracy (validation accuracy when the data has no test split)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ImgclsError
from ..run import RunFolder


def train_under_budget(
    name: str, data: str, budget: str, out: Path, extra: list[str] | None = None
) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "imgcls", "train", "--data", data, "--model", name, "--budget", budget,
           "--out", str(out), "--name", name, "--no-progress", "--no-tensorboard", *(extra or [])]  # fmt: skip
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ImgclsError(f"bench: training {name} under --budget {budget} failed: {last}")
    run = RunFolder(out / name)
    metrics = json.loads(run.test_metrics.read_text()) if run.test_metrics.is_file() else {}
    val = list(run.read_lines(run.metrics))
    best_val = max((v["val"]["acc"] for v in val if v["val"]), default=None)
    return {
        "top1": round(100 * metrics["acc"], 2) if "acc" in metrics else None,
        "val_top1": round(100 * best_val, 2) if best_val is not None else None,
        "budget_wall_s": round(wall, 1),
        "budget_epochs": len(val),
        "run": str(run.root),
    }
