"""The zoo as a table: name, family, params, GFLOPs, input size, paper (``imgcls models``).

Counting FLOPs runs every model on the meta device, about a quarter of a second per model, so the
counts of the registered defaults are kept in ``zoo_complexity.json`` next to this file, keyed by a
hash of each model's config. Rows whose config changed (or that have overrides) are counted live.
``tests/analysis/test_zoo_table.py`` recounts every entry, so the file cannot go stale unnoticed;
regenerate it with ``python -m imgcls.analysis.zoo_table``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import UnknownModelError, did_you_mean
from ..models import ModelInfo, build_model, list_models, model_info
from .complexity import count_flops, count_params

TABLE_PATH = Path(__file__).with_name("zoo_complexity.json")


def config_key(info: ModelInfo) -> str:
    return hashlib.sha1(repr((info.config, info.input_size)).encode()).hexdigest()[:16]


def measure(name: str, overrides: dict[str, Any] | None = None, flops: bool = True) -> dict[str, Any]:
    """Params and forward FLOPs (one image, default input size) of a model, counted now."""
    model = build_model(name, device="meta", **(overrides or {}))
    size = model.info.input_size
    return {
        "params": count_params(model),
        "flops": count_flops(model, (1, *size)) if flops else None,
        "input_size": list(size),
        "num_classes": model.num_classes,
    }


def _cached() -> dict[str, Any]:
    return json.loads(TABLE_PATH.read_text()) if TABLE_PATH.exists() else {}


def describe_models(
    pattern: str = "*", overrides: dict[str, Any] | None = None, flops: bool = True
) -> list[dict[str, Any]]:
    names = list_models(pattern)
    if not names:
        raise UnknownModelError(f"no model matches {pattern!r}{did_you_mean(pattern, list_models())}")
    cache = {} if overrides else _cached()
    rows = []
    for name in names:
        info = model_info(name)
        hit = cache.get(name)
        m = hit if hit and hit["key"] == config_key(info) else measure(name, overrides, flops)
        rows.append(
            {
                "name": name,
                "family": info.family,
                "params": m["params"],
                "gflops": round(m["flops"] / 1e9, 3) if flops and m["flops"] is not None else None,
                "input_size": m["input_size"],
                "num_classes": m["num_classes"],
                "paper": info.paper,
                "authors": info.authors,
                "year": info.year,
            }
        )
    return rows


def write_table(path: Path = TABLE_PATH) -> dict[str, Any]:
    table = {name: {"key": config_key(model_info(name)), **measure(name)} for name in list_models()}
    path.write_text(json.dumps(table, indent=1) + "\n")
    return table


def _human(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def render_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"imgcls models ({len(rows)})", title_justify="left")
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("family", no_wrap=True)
    table.add_column("params", justify="right", no_wrap=True)
    table.add_column("GFLOPs", justify="right", no_wrap=True)
    table.add_column("input", justify="right", no_wrap=True)
    table.add_column("classes", justify="right", no_wrap=True)
    table.add_column("paper", no_wrap=True)
    table.add_column("year", justify="right", no_wrap=True)
    for r in rows:
        c, h, w = r["input_size"]
        table.add_row(
            r["name"],
            r["family"],
            _human(r["params"]),
            "-" if r["gflops"] is None else f"{r['gflops']:.2f}",
            f"{c}x{h}x{w}",
            str(r["num_classes"]),
            r["authors"],
            str(r["year"]),
        )
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(table)
    console.print(
        "GFLOPs: forward pass of one image at the input size, 2 FLOPs per multiply-add (papers often quote half)."
        " `imgcls models --json` adds the paper titles.",
        style="dim",
    )


if __name__ == "__main__":
    written = write_table()
    print(f"wrote {len(written)} rows to {TABLE_PATH}")
