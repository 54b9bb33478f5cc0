"""The bench table on screen (rich), and as CSV / JSON with timm's column names (``param_count`` in
millions, ``infer_gmacs`` per image, ``*_samples_per_sec``, ``*_step_time`` in ms per batch), so the
rows line up with timm's published benchmark CSVs."""

from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

COLUMNS = [
    "model", "param_count", "infer_gmacs", "gflops", "infer_img_size", "infer_batch_size",
    "infer_samples_per_sec", "infer_step_time", "infer_step_spread", "infer_b1_latency_ms", "infer_gflops_per_sec",
    "train_img_size", "train_batch_size", "train_samples_per_sec", "train_step_time", "train_step_spread",
    "train_gflops_per_sec", "eager_infer_samples_per_sec", "eager_infer_b1_latency_ms", "eager_train_samples_per_sec",
    "infer_speedup", "train_speedup", "peak_memory_mb", "top1", "val_top1", "budget_wall_s", "budget_epochs",
    "infer_precision", "infer_folded_norms", "train_precision", "backend", "threads", "device", "processor",
]  # fmt: skip


def columns(rows: list[dict[str, Any]]) -> list[str]:
    return [c for c in COLUMNS if any(c in r for r in rows)]


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns(rows), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]], roofline: dict[str, float]) -> str:
    return json.dumps({"roofline_gflops": roofline, "rows": rows}, indent=2)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def render(rows: list[dict[str, Any]], roofline: dict[str, float]) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = [("model", "model", 0), ("param_count", "params M", 2), ("gflops", "GFLOPs", 2),
             ("infer_img_size", "size", 0), ("infer_samples_per_sec", "infer img/s", 1),
             ("infer_b1_latency_ms", "b1 ms", 1), ("eager_infer_samples_per_sec", "eager img/s", 1),
             ("infer_speedup", "x", 2), ("train_samples_per_sec", "train img/s", 1),
             ("eager_train_samples_per_sec", "eager train", 1), ("train_speedup", "x ", 2),
             ("infer_gflops_per_sec", "GFLOP/s", 0), ("peak_memory_mb", "peak MB", 0), ("top1", "top-1 %", 2),
             ("infer_precision", "infer in", 0), ("train_precision", "train in", 0), ("backend", "backend", 0)]  # fmt: skip
    present = [(k, title, d) for k, title, d in shown if any(k in r for r in rows)]
    table = Table(title=f"imgcls bench ({len(rows)} models)", title_justify="left")
    for k, title, _ in present:
        table.add_column(title, justify="left" if k in ("model", "infer_precision", "train_precision", "backend")
                         else "right", no_wrap=True)  # fmt: skip
    for r in rows:
        cells = []
        for k, _, d in present:
            cells.append(_fmt(r.get(k), d))
        table.add_row(*cells)
    console = Console(width=None if sys.stdout.isatty() else 220)
    console.print(table)
    first = rows[0] if rows else {}
    roof = ", ".join(f"{k} {v:,.0f} GFLOP/s" for k, v in roofline.items())
    console.print(
        f"batch {first.get('infer_batch_size', '-')}, {first.get('threads', '-')} threads on {first.get('processor', first.get('device', '-'))}; "
        f"median of repeated calls after warm-up (spread in --json/--csv). Roofline (square matmul): {roof}. "
        "x: our defaults (auto: the faster of bf16 and fp32, measured) over plain fp32 eager.",
        style="dim",
    )
