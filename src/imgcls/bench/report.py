"""The bench report: one self-contained HTML page (the style of ``report.html``) with the table and
the EfficientNet paper's figures — accuracy against GFLOPs and against img/s, a point per model, the
Pareto front drawn (the models no other beats on both axes). Without accuracy (no ``--budget``), the
figure is throughput against GFLOPs."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..analysis.report import PAGE, figure_png, pyplot
from .table import columns


def pareto(points: list[tuple[float, float]], lower_x_better: bool = True) -> list[int]:
    """Indices of the points on the front: none other has a better-or-equal x and a higher y (with one
    strictly better), x better when lower (GFLOPs) or higher (img/s)."""
    front = []
    for i, (x, y) in enumerate(points):
        dominated = any(
            (x2 <= x if lower_x_better else x2 >= x) and y2 >= y and (x2 != x or y2 != y)
            for j, (x2, y2) in enumerate(points) if j != i
        )  # fmt: skip
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


def scatter(rows: list[dict[str, Any]], x_key: str, y_key: str, x_label: str, y_label: str,
            lower_x_better: bool) -> str | None:  # fmt: skip
    pts = [
        (r[x_key], r[y_key], r["model"])
        for r in rows
        if r.get(x_key) is not None and r.get(y_key) is not None
    ]
    if not pts:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="#3b6ea5", zorder=3)
    for x, y, name in pts:
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    front = pareto([(p[0], p[1]) for p in pts], lower_x_better)
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], color="#c0392b", lw=1.5, zorder=2,
            label="Pareto front")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    return figure_png(fig)


def write_report(rows: list[dict[str, Any]], roofline: dict[str, float], path: Path, note: str = "") -> Path:
    cols = columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body_rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows
    )
    has_acc = any(r.get("top1") is not None for r in rows)
    acc = "top1" if has_acc else None
    figures = []
    if acc:
        figures += [scatter(rows, "gflops", acc, "GFLOPs per image", "test top-1 %", True),
                    scatter(rows, "infer_samples_per_sec", acc, "inference img/s (this machine)", "test top-1 %", False)]  # fmt: skip
    else:
        figures.append(
            scatter(rows, "gflops", "infer_samples_per_sec", "GFLOPs per image", "inference img/s", True)
        )
    imgs = "".join(f'<img src="{f}" alt="bench figure">' for f in figures if f)
    roof = ", ".join(f"{k}: {v:,.0f} GFLOP/s" for k, v in roofline.items())
    body = (f"<p>Roofline (square matmul): {html.escape(roof)}. {html.escape(note)}</p>"
            f"<section><h2>Figures</h2>{imgs}</section>"
            f"<section><h2>Table</h2><div style='overflow-x:auto'><table><tr>{head}</tr>{body_rows}</table></div></section>")  # fmt: skip
    path.write_text(PAGE.format(title="imgcls bench", body=body))
    return path
