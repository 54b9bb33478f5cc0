"""Pretrain on A, fine-tune on a small B — against training B from scratch with the same budget,
and a linear probe on A's features.

    .venv/bin/python benchmarks/transfer.py                 # unpacks shared/data's CIFAR-10 JPEGs
    .venv/bin/python benchmarks/transfer.py --pretrain-epochs 3 --epochs 15 --per-class 100

A = CIFAR-10's {airplane, automobile, bird, cat, deer} (all 25,000 training images); B = the other
five classes {dog, frog, horse, ship, truck} with ``--per-class`` training images each, tested on
their 5,000 test images. The model is the CIFAR ResNet-20. Three ways to learn B, each for
``--epochs`` epochs over B's images:
- scratch: ``imgcls train`` from random weights;
- fine-tune: ``imgcls finetune --init A`` (head first, then all layers with layer-wise rates);
- linear probe: ``imgcls train --init A --linear-probe`` (features computed once).
Prints a table (test accuracy, wall time) and writes the curves (val accuracy per epoch) as a PNG.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

import imgcls
from imgcls.cli import FINETUNE_DEFAULTS, _merge
from imgcls.config import apply_overrides

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "cifar10-jpg.tar.gz"
A_CLASSES = ["airplane", "automobile", "bird", "cat", "deer"]
B_CLASSES = ["dog", "frog", "horse", "ship", "truck"]


def build_folders(archive: Path, work: Path, per_class: int) -> tuple[Path, Path]:
    root = work / "cifar10"
    if not (root / "train").is_dir():
        print(f"unpacking {archive} ...", file=sys.stderr)
        with tarfile.open(archive) as tar:
            tar.extractall(work, filter="data")
    a, b = work / "A", work / "B"
    for split in ("train", "test"):
        for cls in A_CLASSES:
            (a / split).mkdir(parents=True, exist_ok=True)
            if not (a / split / cls).exists():
                os.symlink(root / split / cls, a / split / cls)
        for cls in B_CLASSES:
            target = b / split / cls
            if target.exists():
                continue
            if split == "test":
                (b / split).mkdir(parents=True, exist_ok=True)
                os.symlink(root / split / cls, target)
            else:
                target.mkdir(parents=True)
                for f in sorted((root / split / cls).iterdir())[:per_class]:
                    os.symlink(f, target / f.name)
    return a, b


def run(name: str, out: Path, base: dict, **overrides) -> tuple[dict, float, list[float]]:
    cfg = apply_overrides(
        imgcls.TrainConfig, base, {"out": str(out), "name": name, "progress": False, **overrides}
    )
    start = time.perf_counter()
    result = imgcls.train(cfg)
    seconds = time.perf_counter() - start
    curve = [json.loads(x)["val"]["acc"] for x in (result.run / "metrics.jsonl").read_text().splitlines()]
    print(f"{name}: test {result.test} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return result.test, seconds, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pretrain-epochs", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15, help="epochs over B for each of the three")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--work", help="folder for the unpacked data and the runs (default: a temporary one)")
    parser.add_argument("--pretrained", help="an existing A run to start from instead of pretraining one")
    parser.add_argument("--plot", default="docs/transfer_curves.png")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="imgcls-transfer-"))
    os.environ.setdefault("IMGCLS_CACHE", str(work / "cache"))
    a, b = build_folders(ARCHIVE, work, args.per_class)
    runs = work / "runs"
    common = {"model": args.model, "seed": 0, "batch_size": 64}
    if args.pretrained:
        pretrained, pre_seconds = Path(args.pretrained), float("nan")
    else:
        _, pre_seconds, _ = run("A-pretrain", runs, {}, data=str(a), epochs=args.pretrain_epochs, **common)
        pretrained = runs / "A-pretrain"
    results = {
        "scratch": run("B-scratch", runs, {}, data=str(b), epochs=args.epochs, **common),
        "fine-tune": run(
            "B-finetune",
            runs,
            _merge(FINETUNE_DEFAULTS, {}),
            data=str(b),
            epochs=args.epochs,
            init=str(pretrained),
            **common,
        ),
        "linear probe": run(
            "B-probe",
            runs,
            {},
            data=str(b),
            epochs=args.epochs,
            init=str(pretrained),
            linear_probe=True,
            **common,
        ),
    }
    table = Table(title=f"B = {args.per_class} images x 5 classes, {args.epochs} epochs; A pretraining: "
                        f"{args.pretrain_epochs} epochs, {pre_seconds:.0f} s")  # fmt: skip
    for col in ("B learned by", "test accuracy", "wall time"):
        table.add_column(col, justify="left" if col == "B learned by" else "right")
    for name, (test, seconds, _) in results.items():
        table.add_row(name, f"{test['acc']:.1%}", f"{seconds:.1f} s")
    Console().print(table)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, (_, _, curve) in results.items():
        ax.plot(range(1, len(curve) + 1), curve, "o-", label=name, markersize=3)
    ax.set(
        xlabel="epoch over B",
        ylabel="val accuracy",
        title=f"CIFAR-10: pretrain on 5 classes, learn 5 others from {args.per_class}/class",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(args.plot, dpi=110, bbox_inches="tight")
    print(f"curves: {args.plot}")
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {k: {"test": t, "seconds": s, "val_curve": c} for k, (t, s, c) in results.items()}, indent=1
            )
        )


if __name__ == "__main__":
    main()
