"""The ``imgcls`` command: the parser built from the command modules (``commands/``, one per command:
its options and its handler) and the dispatch, with errors turned into messages and exit statuses."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from . import __version__
from .commands import COMMANDS
from .commands.options import rank
from .commands.train import train_config
from .errors import ImgclsError
from .memory import keep_freed_memory
from .quick_exit import exit_code, exit_now

__all__ = ["build_parser", "main", "run", "train_config"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imgcls",
        description="Image classification on PyTorch: the famous architectures, provably correct, fast on a CPU.",
    )
    parser.add_argument("--version", action="version", version=f"imgcls {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    keep_freed_memory()  # every command's tensors: reused, not re-faulted from the kernel (see memory.py)
    try:
        return int(args.func(args) or 0)
    except ImgclsError as e:
        print(f"imgcls: error{f' (rank {rank()})' if rank() else ''}: {e}", file=sys.stderr)
        return int(getattr(e, "exit_code", 2))
    except KeyboardInterrupt:
        print("imgcls: interrupted", file=sys.stderr)
        return 130


def run() -> NoReturn:
    """The console script: ``main`` with the process left at once when it is done (see quick_exit.py)."""
    try:
        code = main()
    except SystemExit as e:  # argparse's --help, --version and usage errors
        code = exit_code(e.code)
    exit_now(code)


if __name__ == "__main__":
    run()
