"""`imgcls predict`: class probabilities for images or folders of images."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import at_least, share
from .options import add_precision_option, add_tta_option, expand_images, number


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="class probabilities for images or folders of images",
        description="Predict with a trained run (or its model.safetensors), or with a pretrained model by name "
        "(resnet50, resnet50.tv_in1k, timm:TAG; ImageNet's classes): each image's top classes and "
        "probabilities. Folders are searched for images. Files that cannot be read are reported and skipped; "
        "the rest are predicted (exit status 1 only when none could be read).",
    )
    p.add_argument("run", help="a run folder, a model.safetensors written by imgcls train, or a weight name")
    p.add_argument("images", nargs="+", help="image files and/or folders")
    p.add_argument(
        "--topk", type=number(int, at_least(1)), default=5, help="classes to show per image (default: 5)"
    )
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.add_argument(
        "--threshold",
        type=number(float, share()),
        help="decision threshold for binary / multi-label (default: the run's)",
    )
    add_tta_option(p)
    add_precision_option(p)
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=64)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..predict import load, to_csv
    from ..progress import track

    clf = load(args.run, precision=args.precision)
    if args.threshold is not None:
        clf.task.threshold = args.threshold
    files = expand_images(args.images)
    preds = []
    batches = [files[i : i + args.batch_size] for i in range(0, len(files), args.batch_size)]
    for batch in track(batches, "predicting", disable=len(batches) < 2 or args.no_progress, unit="batch"):
        preds += clf.predict(batch, topk=args.topk, tta=args.tta, batch_size=args.batch_size, skip_bad=True)
    bad = [p for p in preds if p.error]
    for p in bad:
        print(f"imgcls: skipped {p.source}: {p.error}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps([p.as_dict() for p in preds], indent=2))
    elif args.format == "csv":
        sys.stdout.write(to_csv(preds, args.topk))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{args.run}: {clf.meta.model if clf.meta else 'model'}, {clf.task.kind}")
        table.add_column("file", overflow="fold")
        table.add_column("prediction")
        shown_k = min(args.topk, len(clf.classes)) if clf.task.kind != "multilabel" else args.topk
        table.add_column(f"top {shown_k}" if shown_k < len(clf.classes) else "all classes", overflow="fold")
        for p in preds:
            if p.error:
                table.add_row(p.source, "[red]unreadable", p.error)
            else:
                shown = (
                    ", ".join(p.labels) if clf.task.kind == "multilabel" else f"{p.label} {p.probability:.0%}"
                )
                table.add_row(p.source, shown, "  ".join(f"{c} {q:.2f}" for c, q in p.top(args.topk)))
        Console().print(table)
    return 1 if bad and len(bad) == len(preds) else 0
