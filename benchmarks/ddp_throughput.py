"""Training throughput of the real `imgcls train` command: one process against `torchrun` with N
processes on the same machine, the same global batch.

    .venv/bin/python benchmarks/ddp_throughput.py                        # lenet5 and resnet20 on MNIST
    .venv/bin/python benchmarks/ddp_throughput.py --models resnet20 --steps 60 --procs 2

Each run trains `--steps` optimiser steps of the global batch (`--batch`, split over the processes)
on the bundled MNIST (cached decoded images, so the data never waits), fp32, and reads the run's
timings.json: img/s over the training steps, and the whole command's wall time. Run it on an idle
machine; a second busy process halves every figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).parents[1]


def run(model: str, procs: int, batch: int, steps: int, out: Path) -> dict:
    args = ["train", "--data", f"mnist:{ROOT / 'data' / 'mnist'}", "--model", model, "--batch-size", str(batch // procs),
            "--epochs", "1", "--stop-after-steps", str(steps), "--precision", "fp32", "--channels-last", "off",
            "--no-progress", "--no-tensorboard", "--out", str(out), "--name", f"{model}-{procs}"]  # fmt: skip
    if procs == 1:
        cmd = [sys.executable, "-m", "imgcls", *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
               "-m", "imgcls", *args]  # fmt: skip
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if r.returncode not in (0,):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    timings = json.loads((out / f"{model}-{procs}" / "timings.json").read_text())
    return {"model": model, "procs": procs, "images": steps * batch, "train_s": timings["train"],
            "img_s": steps * batch / timings["train"], "wall_s": wall}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="lenet5,resnet20")
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256, help="global batch")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            for procs in (1, args.procs):
                rows.append(run(model, procs, args.batch, args.steps, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    table = Table(title=f"imgcls train, global batch {args.batch}, {args.steps} steps, fp32, bundled MNIST")
    for col in ("model", "processes", "img/s (steps)", "vs 1 process", "wall s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        base = next(x for x in rows if x["model"] == r["model"] and x["procs"] == 1)
        table.add_row(r["model"], str(r["procs"]), f"{r['img_s']:,.0f}", f"{r['img_s'] / base['img_s']:.2f}x",
                      f"{r['wall_s']:.1f}")  # fmt: skip
    Console().print(table)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
