"""The ``imgcls`` command: a thin layer over the Python API."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from . import __version__
from .errors import ConfigError, ImgclsError


def parse_model_args(items: Sequence[str]) -> dict[str, Any]:
    """``["act=gelu", "drop_rate=0.2"]`` -> ``{"act": "gelu", "drop_rate": "0.2"}`` (typed later, per model)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--model-arg {item!r} is not KEY=VALUE (e.g. --model-arg act=gelu)")
        out[key.strip()] = value.strip()
    return out


def cmd_models(args: argparse.Namespace) -> int:
    from .analysis.zoo_table import describe_models, render_table

    rows = describe_models(args.pattern, parse_model_args(args.model_arg), flops=not args.no_flops)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        render_table(rows)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgcls",
        description="Image classification on PyTorch: the famous architectures, provably correct, fast on a CPU.",
    )
    parser.add_argument("--version", action="version", version=f"imgcls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except ImgclsError as e:
        print(f"imgcls: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("imgcls: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
