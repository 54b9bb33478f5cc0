"""What ``imgcls data clean`` found, for a person: a ranked CSV (file, given label, suggested label,
score, reason) and an HTML page of thumbnails (the style of ``report.html``)."""

from __future__ import annotations

import csv
import html
from pathlib import Path
from typing import Any

import numpy as np

from ..analysis.report import PAGE, image_png

FIELDS = ("file", "given", "suggested", "score", "reason")
SHOWN = 200  # thumbnails per section of the page, at most


def write_csv(rows: list[dict[str, Any]], path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows({k: r[k] for k in FIELDS} for r in rows)
    return path


def _figure(pixels: np.ndarray, caption: str) -> str:
    scale = max(1, 96 // max(pixels.shape[:2]))
    return f'<figure><img alt="image" src="{image_png(pixels, scale)}"><figcaption>{caption}</figcaption></figure>'


def write_html(
    sections: list[tuple[str, str, list[tuple[np.ndarray, str]]]], summary: str, path: Path
) -> Path:
    """``sections``: (title, note, [(uint8 HxWxC thumbnail, caption html)])."""
    body = [f"<p>{summary}</p>"]
    for title, note, items in sections:
        cells = "".join(_figure(px, cap) for px, cap in items[:SHOWN])
        more = f"<p>… and {len(items) - SHOWN:,} more in the CSV.</p>" if len(items) > SHOWN else ""
        body.append(
            f"<section><h2>{html.escape(title)}</h2><p>{note}</p><div class='gallery'>{cells or 'none found'}</div>{more}</section>"
        )
    path.write_text(PAGE.format(title="imgcls data clean", body="".join(body)))
    return path
