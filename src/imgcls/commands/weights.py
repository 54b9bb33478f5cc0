"""`imgcls weights list|fetch`: the pretrained weight catalogue."""

from __future__ import annotations

import argparse
import json


def add(sub: argparse._SubParsersAction) -> None:
    weights = sub.add_parser("weights", help="the pretrained weight catalogue: list and fetch")
    weights_sub = weights.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    p = weights_sub.add_parser(
        "list",
        help="published ImageNet weights of the zoo's models, and which are downloaded",
        description="The weight catalogue: every torchvision / timm weight a zoo model loads, with its training "
        "data, published top-1, input (resize -> crop), classes, size and whether it is in the cache already.",
    )
    p.add_argument(
        "pattern", nargs="?", default="*", help="tag pattern, e.g. 'resnet*' or a word (default: all)"
    )
    p.add_argument("--json", action="store_true", help="print JSON (every field) instead of a table")
    p.set_defaults(func=run_list)
    p = weights_sub.add_parser(
        "fetch",
        help="download weights into torch hub's / Hugging Face's cache (hash checked)",
        description="Download catalogue weights (a tag, a model name for its default, torchvision:NAME, "
        "timm:NAME) into the caches torchvision and timm use, checked; prints each file's path.",
    )
    p.add_argument("tags", nargs="+", help="weight tags or model names")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_fetch)


def run_list(args: argparse.Namespace) -> int:
    from ..pretrained import entries
    from ..pretrained.listing import render, rows

    found = rows(entries(args.pattern))
    if args.json:
        print(json.dumps(found, indent=2))
    else:
        render(found)
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from ..pretrained import fetch, find

    for spec in args.tags:
        entry = find(spec)
        path = fetch(entry, progress=not args.no_progress)
        print(f"{entry.tag}: {path}")
    return 0
