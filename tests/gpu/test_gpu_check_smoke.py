"""``benchmarks/gpu_check.py --smoke``: every stage of the GPU check at tiny sizes on this CPU, so the
script that gets a few minutes on a lent GPU never meets its first bug there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import ROOT


def test_the_gpu_check_runs_every_stage_on_the_cpu(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--smoke", "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    stages = json.loads((tmp_path / "gpu_check.json").read_text())
    assert list(stages) == ["environment", "cuda tests", "speedrun", "resnet50", "mnist", "bench"]
    assert all(s["ok"] for s in stages.values())
    assert stages["environment"]["smoke"] and stages["environment"]["roofline_gflops"]["fp32"] > 0
    assert "skipped" in stages["cuda tests"]["summary"]  # no GPU here: every cuda test skips, with its reason
    speedrun = stages["speedrun"]
    assert len(speedrun["runs"]) == 1 and 0 <= speedrun["mean_acc"] <= 1 and speedrun["train_pflop"] > 0
    assert stages["resnet50"]["torch"]["train_img_s"] > 0 and stages["resnet50"]["torch"]["infer_img_s"] > 0
    assert stages["bench"]["rows"][0]["model"] == "lenet5" and 0 <= stages["mnist"]["test_acc"] <= 1
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| speedrun | yes |" in table and "| resnet50 | yes |" in table
