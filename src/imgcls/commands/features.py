"""`imgcls features`: pooled backbone features of a data source, to a .npz."""

from __future__ import annotations

import argparse

from ..config import at_least, share
from .options import DATA_HELP, number


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "features",
        help="pooled backbone features of a data source, to a .npz",
        description="Run a backbone once over each split of DATA (eval preprocessing) and save the pooled "
        "features (what the classifier sees) with the targets: SPLIT_features, SPLIT_targets, meta. Cached.",
    )
    p.add_argument(
        "weights",
        help="a run folder, model.safetensors, a torchvision / timm state dict (then --model), or a weight name",
    )
    p.add_argument("--data", required=True, help=DATA_HELP)
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--model", help="registered model name (default: from the weights' metadata)")
    p.add_argument("--splits", help="comma-separated splits (default: all)")
    p.add_argument("--img-size", type=number(int, at_least(8)))
    p.add_argument("--batch-size", type=number(int, at_least(1)), default=128)
    p.add_argument("--val-fraction", type=number(float, share(high_open=True)), default=0.1)
    p.add_argument("--seed", type=number(int, at_least(0)), default=0)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..data.source import open_source
    from ..features import backbone, extract, save_npz

    source = open_source(args.data).with_val(args.val_fraction, args.seed)
    model, pre, key = backbone(args.weights, source.channels, args.model, args.img_size)
    splits = {s: extract(model, source, s, pre, init=args.weights, key=key, batch_size=args.batch_size, progress=not args.no_progress)
              for s in (args.splits.split(",") if args.splits else source.splits)}  # fmt: skip
    save_npz(
        args.out,
        splits,
        {"model": key.split(":")[0], "weights": args.weights, "data": args.data, "classes": source.classes},
    )
    for s, (f, _) in splits.items():
        print(f"{s}: {f.shape[0]:,} x {f.shape[1]} features")
    print(f"written: {args.out}")
    return 0
