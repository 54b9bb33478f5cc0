"""Accuracy under one wall-clock budget on CIFAR-10 (issue 16): each model trained by the real
``imgcls train --budget`` on the same data (start-up, JPEG decoding, training and evaluation inside
the budget), then its test accuracy on CIFAR-10's own test split, beside its speed on this machine.
Writes benchmarks/cifar_budget.md (and .json) and docs/img/cifar_budget.png (test top-1 against
GFLOPs and against inference img/s, the Pareto front drawn). Run it on an idle machine.

    tar xzf ../shared/data/cifar10/cifar10-jpg.tar.gz -C /tmp      # cifar10/{train,test}/CLASS/*.jpg
    .venv/bin/python benchmarks/cifar_budget.py --data /tmp/cifar10  # ~55 min on 2 cores (5 x 10 min)
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import torch

from imgcls.bench import BenchSpec, bench_models
from imgcls.bench.accuracy import train_under_budget
from imgcls.bench.report import scatter
from imgcls.bench.roofline import roofline

MODELS = "lenet5,resnet20,resnet56,mobilenet_v2,resnet18"
HERE = Path(__file__).parent
OUT = HERE / "cifar_budget.md"
FIGURE = HERE.parent / "docs" / "img" / "cifar_budget.png"


def write_figure(rows: list[dict], path: Path) -> None:
    """Both figures of the bench report, side by side in one PNG for the README."""
    from PIL import Image

    panels = [scatter(rows, "gflops", "top1", "GFLOPs per image (32x32)", "CIFAR-10 test top-1 %", True),
              scatter(rows, "infer_samples_per_sec", "top1", "inference img/s (this machine)",
                      "CIFAR-10 test top-1 %", False)]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        images = []
        for i, uri in enumerate(p for p in panels if p):
            f = Path(tmp) / f"{i}.png"
            f.write_bytes(base64.b64decode(uri.split(",", 1)[1]))
            images.append(Image.open(f).convert("RGB"))
        canvas = Image.new("RGB", (sum(im.width for im in images), max(im.height for im in images)), "white")
        x = 0
        for im in images:
            canvas.paste(im, (x, 0))
            x += im.width
        path.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(path, optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="CIFAR-10 as cifar10/{train,test}/CLASS/*.jpg")
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--budget", default="10m")
    ap.add_argument("--runs", default="runs/cifar_budget", help="where the budget runs' folders go")
    args = ap.parse_args()
    roof = roofline(torch.device("cpu"))
    spec = BenchSpec(img_size=32, batch_size=128, precision="auto", mode="both", repeats=3, min_time=1.0)
    rows = bench_models(args.models.split(","), spec)
    for row in rows:
        print(f"training {row['model']} for {args.budget} on {args.data}", file=sys.stderr, flush=True)
        row.update(
            train_under_budget(row["model"], args.data, args.budget, Path(args.runs), ["--img-size", "32"])
        )
        print(
            f"  top-1 {row['top1']} % after {row['budget_epochs']} epochs, {row['budget_wall_s']} s",
            file=sys.stderr,
        )
    OUT.with_suffix(".json").write_text(json.dumps({"roofline_gflops": roof, "rows": rows}, indent=1) + "\n")
    write_figure(rows, FIGURE)
    lines = [
        f"# CIFAR-10 in {args.budget} per model on this CPU ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__})",
        "",
        f"`.venv/bin/python benchmarks/cifar_budget.py --data DIR` — each model trained by `imgcls train --budget "
        f"{args.budget} --img-size 32` with the defaults (no recipe tuned per model), the whole command inside",
        "the budget (start-up, decoding the 50,000 training JPEGs, the precision trial, training, evaluation);",
        "top-1 on CIFAR-10's 10,000 test images. Speed: batch 128 at 32x32, `--precision auto`, median after",
        f"warm-up. Roofline (2048² matmul): fp32 {roof['fp32']:,.0f} GFLOP/s"
        + (f", bf16 {roof['bf16']:,.0f} GFLOP/s" if "bf16" in roof else "")
        + ".",
        "",
        "| model | params M | GFLOPs | infer img/s | train img/s | epochs in budget | wall s | test top-1 % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['param_count']} | {r['gflops']:.3f} | {r['infer_samples_per_sec']:,.0f} | "
            f"{r['train_samples_per_sec']:,.0f} | {r['budget_epochs']} | {r['budget_wall_s']:.0f} | {r['top1']} |"
        )
    lines += ["", f"![test top-1 against GFLOPs and img/s](../docs/img/{FIGURE.name})"]
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())


if __name__ == "__main__":
    main()
