"""CSV / JSON label files: which image has which label(s).

CSV (``.csv``; ``.tsv`` tab-separated)::

    path,label                      <- header optional; columns may also be named
    images/0001.jpg,cat                file/filename/image, labels/class/target/tags, split
    images/0002.jpg,cat dog         <- several labels separated by spaces: a multi-label file

JSON: a list of ``{"path": ..., "label": "cat"}`` / ``{"path": ..., "labels": ["cat", "dog"], "split": "val"}``
records, or a mapping ``{"images/0001.jpg": "cat", "images/0002.jpg": ["cat", "dog"]}``.

Paths are relative to the label file's folder (or absolute). An optional split column/key
(train/val/test) splits the file; without one everything is "train". The file is multi-label
when any row has other than exactly one label (a row with no labels is an image with none
of the classes).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from ..sorting import natural_key
from .splits import SPLIT_ALIASES, DataError, DataSource, FileSplit, encode_targets

PATH_KEYS = ("path", "file", "filename", "image", "img", "filepath", "image_path", "file_name")
LABEL_KEYS = ("label", "labels", "class", "classes", "target", "targets", "tags", "category")
SPLIT_KEYS = ("split", "subset", "set", "fold")

Row = tuple[str, list[str], str]  # (path as written, labels, split)


def open_label_file(path: str, spec: str) -> DataSource:
    file = Path(path)
    if not file.is_file():
        raise DataError(f"label file {path!r} does not exist")
    rows = _read_json(file) if file.suffix.lower() == ".json" else _read_csv(file)
    if not rows:
        raise DataError(f"label file {path!r} lists no images")
    multilabel = any(len(labels) != 1 for _, labels, _ in rows)
    classes = sorted({c for _, labels, _ in rows for c in labels}, key=natural_key)
    if not classes:
        raise DataError(f"label file {path!r} gives no labels")
    base = file.parent
    resolved = [os.path.join(base, p) if not os.path.isabs(p) else p for p, _, _ in rows]
    missing = [p for p in resolved if not os.path.exists(p)]
    if missing and len(missing) > len(rows) // 2:
        raise DataError(
            f"{len(missing)} of the {len(rows)} images listed in {path!r} do not exist (e.g. {missing[0]!r}); "
            f"paths are read relative to the label file's folder {str(base)!r}"
        )
    by_split: dict[str, list[int]] = {}
    for i, (_, _, split) in enumerate(rows):
        by_split.setdefault(split, []).append(i)
    if "train" not in by_split:
        raise DataError(f"label file {path!r} has no rows of the train split (splits: {', '.join(by_split)})")
    splits = {
        split: FileSplit(
            [resolved[i] for i in idx],
            encode_targets([rows[i][1] for i in idx], classes, multilabel),
            f"{path} {split}",
        )
        for split, idx in by_split.items()
    }
    notes = [f"{len(missing)} listed image(s) do not exist, e.g. {missing[0]!r}"] if missing else []
    return DataSource(spec, "labels", classes, multilabel, 3, splits, notes)


def _split_name(value: Any, where: str) -> str:
    name = str(value or "train").strip().lower()
    if name not in SPLIT_ALIASES:
        raise DataError(f"{where}: split {value!r} is not one of train/val/test")
    return SPLIT_ALIASES[name]


def _read_csv(file: Path) -> list[Row]:
    delimiter = "\t" if file.suffix.lower() == ".tsv" else ","
    with open(file, newline="", encoding="utf-8-sig") as f:
        table = [r for r in csv.reader(f, delimiter=delimiter) if r and any(c.strip() for c in r)]
    if not table:
        return []
    path_col, label_col, split_col = 0, 1, 2 if len(table[0]) > 2 else None
    header = [c.strip().lower() for c in table[0]]
    if header[0] in PATH_KEYS or any(h in LABEL_KEYS for h in header):
        path_col = _column(header, PATH_KEYS, file, required=True)
        label_col = _column(header, LABEL_KEYS, file, required=True)
        split_col = _column(header, SPLIT_KEYS, file, required=False)
        table = table[1:]
    rows = []
    for n, r in enumerate(table, start=2 if header[0] in PATH_KEYS else 1):
        where = f"{file}:{n}"
        if len(r) <= max(path_col, label_col):
            raise DataError(f"{where}: expected path{delimiter}label, got {delimiter.join(r)!r}")
        split = _split_name(r[split_col] if split_col is not None and split_col < len(r) else "", where)
        rows.append((r[path_col].strip(), r[label_col].split(), split))
    return rows


def _column(header: list[str], keys: tuple[str, ...], file: Path, required: bool) -> int | None:
    for i, h in enumerate(header):
        if h in keys:
            return i
    if required:
        raise DataError(f"{file}: the header {header} has no column named one of {', '.join(keys)}")
    return None


def _read_json(file: Path) -> list[Row]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"label file {str(file)!r} is not valid JSON ({e})") from None
    if isinstance(data, dict):
        return [(str(p), _labels(v, f"{file}: {p!r}"), "train") for p, v in data.items()]
    if not isinstance(data, list):
        raise DataError(f"{file}: expected a list of records or a {{path: label}} mapping")
    rows = []
    for n, rec in enumerate(data):
        where = f"{file}: record {n}"
        if not isinstance(rec, dict):
            raise DataError(f"{where} is not an object")
        path = next((rec[k] for k in PATH_KEYS if k in rec), None)
        label_key = next((k for k in LABEL_KEYS if k in rec), None)
        if path is None or label_key is None:
            raise DataError(f"{where} needs a path and a label key, got {sorted(rec)}")
        split = _split_name(next((rec[k] for k in SPLIT_KEYS if k in rec), None), where)
        rows.append((str(path), _labels(rec[label_key], where), split))
    return rows


def _labels(value: Any, where: str) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, (str, int)):
        return str(value).split()
    raise DataError(f"{where}: a label must be a string, an integer or a list, got {value!r}")
