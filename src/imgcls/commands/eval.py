"""`imgcls eval`: metrics.json and report.html for a trained run."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import at_least
from .options import add_precision_option, add_tta_option, number


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="metrics.json and a self-contained report.html for a trained run",
        description="Evaluate a run on a split of DATA (default: the run's own data, its test split, else val): "
        "loss, accuracy, top-k, precision/recall/F1, confusion matrix, calibration, ROC/PR where they apply; "
        "report.html holds the plots, the top-losses gallery and Grad-CAM / attention overlays.",
    )
    p.add_argument("run", help="a run folder (or its model.safetensors)")
    p.add_argument("--data", help="data source (default: the one the run trained on)")
    p.add_argument("--split", help="train | val | test (default: test if the data has one, else val)")
    add_tta_option(p)
    add_precision_option(p)
    p.add_argument(
        "--calibrate", action="store_true", help="fit temperature scaling on val; saved as calibration.json"
    )
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=64)
    p.add_argument("--out", help="folder for metrics.json and report.html (default: the run folder)")
    p.add_argument("--no-report", action="store_true", help="metrics.json only")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation import evaluate_run

    result = evaluate_run(args.run, args.data, args.split, args.tta, args.calibrate, args.batch_size, args.out,
                          report=not args.no_report, progress=not args.no_progress, precision=args.precision)  # fmt: skip
    m = result.metrics
    keys = (
        "accuracy",
        "top5",
        "balanced_accuracy",
        "roc_auc",
        "pr_auc",
        "mAP",
        "subset_accuracy",
        "ece",
        "loss",
    )
    shown = "  ".join(f"{k} {m[k]:.4f}" for k in keys if m.get(k) is not None)
    print(
        f"{m['model']} on {m['data']} [{m['split']}, {m['images']} images, tta {m['tta']}, {m['inference_precision']}]: {shown}"
    )
    from ..run import RunFolder

    run, out = RunFolder.of(args.run), Path(args.out) if args.out else None
    print(f"written: {run.eval_metrics(out)}" + ("" if args.no_report else f", {run.report(out)}"))
    return 0
