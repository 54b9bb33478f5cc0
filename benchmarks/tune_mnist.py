"""`imgcls tune` against the default recipe (issue 18): LeNet-5 on MNIST, the default recipe's best
validation accuracy, then a study of N trials with median pruning over spaces/lenet5.yaml —
its wall time, its best trial's validation accuracy, and the best recipe trained again by
`imgcls train --config` (does it reproduce?). Writes benchmarks/tune_mnist.md.

    .venv/bin/python benchmarks/tune_mnist.py --data mnist:data/mnist --trials 20 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent


def imgcls(*args: str) -> tuple[str, float]:
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "imgcls", *args], capture_output=True, text=True, cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(r.stderr[-3000:])
    return r.stdout, time.perf_counter() - start


def best_val(run: Path) -> float:
    return max(json.loads(x)["val"]["acc"] for x in (run / "metrics.jsonl").read_text().splitlines())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="mnist:data/mnist")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    common = [
        "--data",
        args.data,
        "--model",
        "lenet5",
        "--epochs",
        str(args.epochs),
        "--no-progress",
        "--no-tensorboard",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _, default_s = imgcls("train", *common, "--out", str(out), "--name", "default")
        default = best_val(out / "default")
        stdout, tune_s = imgcls("tune", *common, "--trials", str(args.trials), "--space", "spaces/lenet5.yaml",
                                "--out", str(out), "--study", "bench")  # fmt: skip
        summary = next(line for line in stdout.splitlines() if line.startswith("study "))
        best_line = next(line for line in stdout.splitlines() if line.startswith("best: "))
        tuned = float(best_line.split("validation score ")[1].split(",")[0])
        _, again_s = imgcls("train", "--config", str(out / "bench" / "best.yaml"), "--out", str(out), "--name", "again",
                            "--no-progress", "--no-tensorboard")  # fmt: skip
        again = best_val(out / "again")
    lines = [
        "# `imgcls tune` against the default recipe",
        "",
        f"`.venv/bin/python benchmarks/tune_mnist.py --data {args.data} --trials {args.trials} --epochs {args.epochs}` — "
        "LeNet-5, the best validation accuracy (the 6,000 held-out training images); the study's search space is "
        "spaces/lenet5.yaml, median pruning.",
        "",
        "| run | val acc | wall s |",
        "| --- | --- | --- |",
        f"| default recipe | {100 * default:.2f} % | {default_s:.0f} |",
        f"| tune, {summary.removeprefix('study bench: ')}: best trial | {100 * tuned:.2f} % | {tune_s:.0f} |",
        f"| best.yaml trained again (`imgcls train --config`) | {100 * again:.2f} % | {again_s:.0f} |",
        "",
        best_line,
    ]
    (HERE / "tune_mnist.md").write_text("\n".join(lines) + "\n")
    print((HERE / "tune_mnist.md").read_text())


if __name__ == "__main__":
    main()
