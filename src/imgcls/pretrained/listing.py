"""``imgcls weights list``: the catalogue as a table (or JSON), with what is already downloaded."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import Any

from .catalogue import WeightEntry
from .download import cached_path


def rows(entries: list[WeightEntry]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        path = cached_path(e)
        out.append({**asdict(e), "cached": str(path) if path else None})
    return out


def render(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"imgcls weights ({len(rows)})", title_justify="left")
    for name, justify in (("tag", "left"), ("source", "left"), ("dataset", "left"), ("top-1", "right"),
                          ("input", "right"), ("classes", "right"), ("MB", "right"), ("cached", "left")):  # fmt: skip
        table.add_column(name, justify=justify, no_wrap=True, style="bold" if name == "tag" else None)
    for r in rows:
        pre = r["preprocess"]
        table.add_row(
            r["tag"] + (" *" if r["default"] else ""),
            r["source"],
            r["dataset"],
            "-" if r["top1"] is None else f"{r['top1']:.2f}",
            f"{pre['resize']}->{pre['size']}",
            str(r["num_classes"] or "-"),
            "-" if r["file_mb"] is None else f"{r['file_mb']:.0f}",
            "yes" if r["cached"] else "",
        )
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print(
        "* the model's default (what --pretrained and a bare model name take). top-1: the source's published "
        "ImageNet-1K accuracy at this input (resize -> centre crop). `imgcls weights fetch TAG` downloads one.",
        style="dim",
    )
