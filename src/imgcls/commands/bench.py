"""`imgcls bench`: models compared on this machine (speed, memory, accuracy under a budget)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import above, at_least
from ..errors import ConfigError
from .options import number


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="compare models on this machine: params, GFLOPs, img/s, latency, memory, accuracy under a budget",
        description="Measure each model in its own process: inference img/s at --batch-size and latency at batch 1, "
        "training img/s, peak memory and achieved GFLOP/s (warm-up, then repeats; the median, the spread in "
        "--json/--csv), beside the machine's matmul roofline. --compare-eager adds plain fp32 eager PyTorch, so the "
        "speed-up of the defaults is measured. --data with --budget trains every model for the same wall-clock "
        "time (imgcls train --budget) and adds its test accuracy. CSV/JSON use timm's benchmark column names.",
    )
    p.add_argument(
        "--models", required=True, help="names and/or patterns, comma-separated ('resnet18,vit_*')"
    )
    p.add_argument("--img-size", type=number(int, at_least(8)), help="input size (default: each model's own)")
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=32)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: our defaults (bf16 autocast where native, channels_last for conv nets)")  # fmt: skip
    p.add_argument("--mode", choices=("infer", "train", "both"), default="both")
    p.add_argument("--backend", choices=("torch", "onnx", "compile"), default="torch",
                   help="onnx: exported and run by onnxruntime (inference); compile: torch.compile (inductor)")  # fmt: skip
    p.add_argument(
        "--compare-eager", action="store_true", help="also measure plain fp32 contiguous eager PyTorch"
    )
    p.add_argument("--data", help="train each model on this data for --budget and add its test accuracy")
    p.add_argument("--budget", help="wall-clock time per model for --data (20s, 10m, 1h)")
    p.add_argument(
        "--out", default="runs/bench", help="where the budget runs' folders go (default: runs/bench)"
    )
    p.add_argument(
        "--threads", type=number(int, at_least(1)), help="intra-op threads (default: one per core)"
    )
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument(
        "--min-time",
        type=number(float, above(0)),
        default=2.0,
        help="seconds of timed calls per measurement, at least",
    )
    p.add_argument(
        "--repeats",
        type=number(int, at_least(1)),
        default=5,
        help="timed calls per measurement, at least (after 2 warm-up)",
    )
    p.add_argument("--csv", help="write the rows as CSV (timm's column names)")
    p.add_argument("--json", help="write the rows and the roofline as JSON")
    p.add_argument("--report", help="write an HTML page with the table and the accuracy / cost figures")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    import torch

    from ..bench import BenchSpec, bench_models
    from ..bench.accuracy import train_under_budget
    from ..bench.report import write_report
    from ..bench.roofline import roofline
    from ..bench.table import render, to_csv, to_json
    from ..errors import UnknownModelError, did_you_mean
    from ..models import list_models

    names: list[str] = []
    for part in args.models.split(","):
        found = list_models(part.strip())
        if not found:
            raise UnknownModelError(f"no model matches {part!r}{did_you_mean(part, list_models())}")
        names += [n for n in found if n not in names]
    if bool(args.data) != bool(args.budget):
        raise ConfigError("accuracy under a budget needs both --data DATA and --budget TIME (e.g. 10m)")
    spec = BenchSpec(img_size=args.img_size, batch_size=args.batch_size, precision=args.precision, mode=args.mode,
                     backend=args.backend, compare_eager=args.compare_eager, threads=args.threads or 0,
                     device=args.device, min_time=args.min_time, repeats=args.repeats)  # fmt: skip
    spec.check()
    roof = roofline(torch.device(args.device))
    rows = bench_models(names, spec, progress=not args.no_progress)
    if args.data:
        out = Path(args.out)
        for row in rows:
            print(f"imgcls: training {row['model']} for {args.budget} on {args.data}", file=sys.stderr)
            extra = (["--threads", str(args.threads)] if args.threads else []) + (
                ["--img-size", str(args.img_size)] if args.img_size else [])  # fmt: skip
            row.update(train_under_budget(row["model"], args.data, args.budget, out, extra))
    render(rows, roof)
    if args.csv:
        Path(args.csv).write_text(to_csv(rows))
    if args.json:
        Path(args.json).write_text(to_json(rows, roof))
    if args.report:
        note = f"Accuracy: each model trained for {args.budget} on {args.data}." if args.data else ""
        print(f"report: {write_report(rows, roof, Path(args.report), note)}")
    return 0
