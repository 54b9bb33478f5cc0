"""`imgcls models`: the zoo as a table (params, GFLOPs, input size, paper)."""

from __future__ import annotations

import argparse
import json

from .options import parse_model_args


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the model zoo: params, GFLOPs, input size, paper",
        description="List the registered models with their parameter count, forward GFLOPs at their default "
        "input size (torch.utils.flop_counter: 2 FLOPs per multiply-add), input size and paper.",
    )
    p.add_argument(
        "pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'resnet*' (default: all)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument(
        "--model-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field of the listed model(s), e.g. --model-arg width_per_group=128",
    )
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count (faster)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..analysis.zoo_table import describe_models, render_table

    rows = describe_models(args.pattern, parse_model_args(args.model_arg), flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        render_table(rows)
    return 0
