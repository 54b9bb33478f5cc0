"""`imgcls data check|list|download|shard|clean`: inspect, fetch, shard and clean data."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..config import at_least, share
from ..errors import ConfigError
from .options import DATA_HELP, layers_of, number


def add(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="inspect data (check), find label issues and near-duplicates (clean), write tar shards (shard)",
    )
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    p = data_sub.add_parser(
        "check",
        help="classes, counts, sizes, bad files, duplicates and leakage of a data source",
        description="Read, hash and fully decode every image of DATA: classes and counts per split (with an "
        "imbalance warning), image sizes and modes, bad files with the reason, exact duplicates and images "
        "found in more than one split.",
    )
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument(
        "--workers",
        type=number(int, at_least(0)),
        default=0,
        help="decoding processes (default: 0, in this process)",
    )
    p.set_defaults(func=run_check)
    p = data_sub.add_parser(
        "list",
        help="the datasets --data opens by name: images, classes, size, task, licence, download",
        description="The datasets imgcls reads in their own formats, named on the command line as NAME:DIR: "
        "images per split, classes, image size, task, licence, and whether `imgcls data download` fetches it.",
    )
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(func=run_list)
    p = data_sub.add_parser(
        "download",
        help="fetch a dataset by name into DIR from its official home, checksummed",
        description="Download NAME's files from the dataset's official home into DIR, each checked against its "
        "published MD5 (written under a temporary name and renamed only when complete: an interrupted or corrupt "
        "download leaves nothing that looks whole) and unpacked; prints the --data spec that opens it. Datasets "
        "without a public download (ImageNet, Sign Language MNIST) say where to get them.",
    )
    p.add_argument(
        "name",
        help="a name from `imgcls data list` (mnist, cifar10, svhn, stl10, flowers102, pathmnist, ...)",
    )
    p.add_argument("dir", help="the folder to download into")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_download)
    p = data_sub.add_parser(
        "shard",
        help="write a data source as tar shards (WebDataset layout) for streaming",
        description="Write every split of SRC as shuffled tar shards OUT/{split}-000000.tar ... in WebDataset "
        "layout (KEY.jpg/png + KEY.json + KEY.cls) with OUT/labels.json; train from them with --data OUT.",
    )
    p.add_argument("src", help=DATA_HELP)
    p.add_argument("out", help="output folder")
    p.add_argument(
        "--shard-size", default="256MB", help="samples per shard (1000) or bytes per shard (256MB; default)"
    )
    p.add_argument(
        "--seed",
        type=number(int, at_least(0)),
        default=0,
        help="seed of the shuffle before sharding (default: 0)",
    )
    p.set_defaults(func=run_shard)
    p = data_sub.add_parser(
        "clean",
        help="find mislabelled images (confident learning), near-duplicates and test images in train",
        description="Out-of-fold probabilities of DATA's training images — --folds runs of MODEL, each trained on "
        "the other folds and predicting its own over the recipe's test-time views (test_tta) "
        "(--preset / --config / --epochs set the recipe; e.g. --preset mnist-speedrun), or with "
        "--weights a logistic-regression probe on their pooled features (the cheap path for large sets) — then "
        "confident learning ranks the images whose label looks wrong. Near-duplicates (thumbnail cosine "
        "similarity) in train and test images found in train are listed too. Writes OUT/label_issues.csv "
        "(file, given, suggested, score, reason), OUT/label_issues.html and OUT/summary.json; --apply also "
        "writes OUT/cleaned.csv, a label file with the suggested labels and without the duplicates (the "
        "images and the original labels are not touched).",
    )
    p.add_argument("data", help=DATA_HELP)
    p.add_argument("--model", help="the model trained on each fold (default: chosen from the data)")
    p.add_argument("--weights", help="probe the pooled features of these weights instead of training")
    p.add_argument("--folds", type=number(int, at_least(2)), default=5)
    p.add_argument(
        "--epochs",
        type=number(int, at_least(1)),
        default=None,
        help="epochs per fold (default: the recipe's, else 3)",
    )
    p.add_argument("--preset", help="the recipe of the fold runs (e.g. mnist-speedrun)")
    p.add_argument("--config", metavar="YAML", help="a YAML recipe of the fold runs")
    p.add_argument(
        "--threshold",
        type=number(float, share()),
        default=0.97,
        help="near-duplicate cosine similarity (default: 0.97)",
    )
    p.add_argument("--out", default="clean-report", help="report folder (default: clean-report)")
    p.add_argument("--apply", action="store_true", help="also write OUT/cleaned.csv, the cleaned label file")
    p.add_argument("--seed", type=number(int, at_least(0)), default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_clean)


def run_check(args: argparse.Namespace) -> int:
    from ..data.check import check_data, render
    from ..data.source import open_source

    report = check_data(open_source(args.data), workers=args.workers, progress=not args.json)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        render(report)
    for error in report["errors"]:  # what makes the data untrainable: said last, and the exit status says it
        print(f"imgcls: error: {error}", file=sys.stderr)
    return 1 if report["errors"] else 0


def run_list(args: argparse.Namespace) -> int:
    from ..data.catalog import listing

    rows = listing()
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"datasets --data opens by name ({len(rows)})", title_justify="left")
    for col, justify in (("name", "left"), ("--data", "left"), ("images (per split)", "right"), ("classes", "right"),
                         ("size", "left"), ("task", "left"), ("licence", "left"), ("download", "left")):  # fmt: skip
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        table.add_row(str(r["name"]), str(r["spec"]), str(r["images"]), str(r["classes"]), str(r["size"]),
                      str(r["task"]), str(r["licence"]), "imgcls data download" if r["download"] else "by hand")  # fmt: skip
    Console(width=None if sys.stdout.isatty() else 200).print(table)
    print("Also: image folders, CSV/JSON label files and tar shards (see imgcls train --help, --data).")
    return 0


def run_download(args: argparse.Namespace) -> int:
    from ..data.catalog import fetch

    spec = fetch(args.name, args.dir, quiet=args.no_progress)
    print(f"{args.name} is in {args.dir}; train on it with: imgcls train --data {spec}")
    return 0


def run_shard(args: argparse.Namespace) -> int:
    from ..data.shards import INDEX_FILE, write_shards
    from ..data.source import open_source

    index = write_shards(open_source(args.src), args.out, args.shard_size, seed=args.seed)
    for split, info in index.items():
        print(
            f"{split}: {info['samples']:,} samples in {len(info['shards'])} shard(s) -> {args.out}/{split}-*.tar"
        )
    print(f"classes and counts: {Path(args.out) / INDEX_FILE}")
    return 0


def run_clean(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..clean import clean, write_cleaned
    from ..config import compose
    from ..data.source import open_source
    from ..engine.config import TrainConfig

    if args.model and args.weights:
        raise ConfigError("give --model (trained on each fold) or --weights (probed), not both")
    source = open_source(args.data)
    out = Path(args.out)
    cfg = None
    if not args.weights:
        layers = layers_of(args, args.preset)
        given = {"data": args.data, "out": str(out / "folds"), "seed": args.seed, "progress": not args.no_progress,
                 "tensorboard": False}  # fmt: skip
        if args.model:
            given["model"] = args.model
        if args.epochs or not any("epochs" in layer for _, layer in layers):
            given["epochs"] = args.epochs or 3
        cfg, _ = compose(TrainConfig, layers, given)
    result = clean(source, out, cfg=cfg, weights=args.weights, model=args.model, folds=args.folds, seed=args.seed,
                   threshold=args.threshold, progress=not args.no_progress)  # fmt: skip
    n = len(source.split("train"))
    print(f"{len(result.issues):,} label issues in {n:,} training images ({100 * len(result.issues) / max(n, 1):.2f} %), "
          f"{len(result.duplicates):,} near-duplicate pairs, {len(result.leaks):,} test images found in train "
          f"({result.seconds:.0f} s)")  # fmt: skip
    for row in result.rows[:10]:
        print(
            f"  {row['file']}: {row['given']} -> {row['suggested'] or '-'} ({row['score']}; {row['reason']})"
        )
    print(f"csv: {out / 'label_issues.csv'}\nreport: {out / 'label_issues.html'}")
    if args.apply:
        print(
            f"cleaned label file: {write_cleaned(result, source, out / 'cleaned.csv')} (train with --data it)"
        )
    return 0
