"""``imgcls data check``: what is in a data source before any training.

Every image is read, hashed and fully decoded (through the one decode path, in worker processes):
classes and counts per split with an imbalance warning, image sizes and modes as stored, bad files
with their reasons, exact duplicates (same bytes) and train/val/test leakage (the same image in two
splits, which inflates validation scores).
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter, defaultdict
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .decode import BadImageError, decode_image
from .splits import ArraySplit, DataSource, FileSplit, ShardSplit

IMBALANCE_RATIO = 3.0  # largest / smallest class of train above this -> a warning


class _Probe(Dataset):
    """index -> (name, sha256, (w, h) and mode as stored, or None and the reason it is bad)."""

    def __init__(self, split: ArraySplit | FileSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple:
        s = self.split
        if isinstance(s, ArraySplit):
            a = s.images[i]
            return (
                s.name(i),
                hashlib.sha256(a.tobytes()).hexdigest(),
                (a.shape[1], a.shape[0]),
                "L" if a.ndim == 2 else "RGB",
                "",
            )
        return _probe_bytes(s.name(i), _read(s.paths[i]))


def _as_list(batch: list) -> list:
    return batch


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def _probe_bytes(name: str, data: bytes) -> tuple:
    from PIL import Image

    digest = hashlib.sha256(data).hexdigest()
    try:
        decode_image(data, name=name)
        with Image.open(io.BytesIO(data)) as img:  # the stored size and mode (decode converts them)
            size, mode = img.size, img.mode
    except BadImageError as e:
        return name, digest, None, "", e.reason
    return name, digest, size, mode, ""


def _stream(split: ShardSplit):
    from .shards import image_part, iter_samples

    for url in split.urls:
        for key, parts in iter_samples(url):
            found = image_part(parts)
            name = f"{url}:{key}"
            yield _probe_bytes(name, found[1]) if found else (name, "", None, "", "has no image part"), parts


def check_data(source: DataSource, workers: int = 0, progress: bool = True) -> dict[str, Any]:
    """The report as a JSON-able dict (see ``render``)."""
    from ..progress import track
    from .shards import sample_labels

    report: dict[str, Any] = {"data": source.spec, "kind": source.kind, "task": source.task, "errors": [],
                              "classes": source.classes, "notes": list(source.notes), "splits": {}}  # fmt: skip
    first_seen: dict[str, tuple[str, str]] = {}
    duplicates: dict[str, list[str]] = defaultdict(list)
    leaks: list[dict[str, str]] = []
    for split_name, split in source.splits.items():
        counts = np.zeros(source.num_classes, np.int64)
        sizes: Counter = Counter()
        modes: Counter = Counter()
        bad: list[dict[str, str]] = []
        if isinstance(split, ShardSplit):
            rows = []
            for row, parts in track(
                _stream(split), f"checking {split_name}", total=split.length, disable=not progress
            ):
                rows.append(row)
                labels = sample_labels(parts, source.classes) or []
                for c in labels:
                    if c in source.classes:
                        counts[source.classes.index(c)] += 1
        else:
            t = split.targets
            counts = (
                np.bincount(t[t >= 0], minlength=source.num_classes)  # -1: unlabelled (STL-10's extra split)
                if t.ndim == 1
                else t.sum(0).astype(np.int64)
            )
            loader = DataLoader(
                _Probe(split),
                batch_size=64,
                num_workers=workers,
                collate_fn=_as_list,
                generator=torch.Generator(),
            )
            rows = [
                r for chunk in track(loader, f"checking {split_name}", disable=not progress) for r in chunk
            ]
        for name, digest, size, mode, reason in rows:
            if size is None:
                bad.append({"file": name, "reason": reason})
            else:
                sizes[f"{size[0]}x{size[1]}"] += 1
                modes[mode] += 1
            if not digest:
                continue
            if digest in first_seen:
                other_split, other = first_seen[digest]
                duplicates[digest].append(name)
                if other_split != split_name:
                    leaks.append(
                        {"file": name, "split": split_name, "same_as": other, "other_split": other_split}
                    )
            else:
                first_seen[digest] = (split_name, name)
        report["splits"][split_name] = {
            "images": len(rows),
            "counts": dict(zip(source.classes, counts.tolist())),
            "sizes": dict(sizes.most_common()),
            "modes": dict(modes.most_common()),
            "bad": bad,
        }
    report["duplicates"] = [[first_seen[d][1], *names] for d, names in duplicates.items()]
    report["leakage"] = leaks
    report["warnings"] = _warnings(report)
    if (why := source.too_few_classes()) is not None:
        report["errors"].append(why)
    return report


def _warnings(report: dict[str, Any]) -> list[str]:
    out = []
    train = report["splits"].get("train")
    if train:
        counts = [c for c in train["counts"].values()]
        nonzero = [c for c in counts if c > 0]
        if len(nonzero) < len(counts):
            empty = [k for k, v in train["counts"].items() if v == 0]
            out.append(f"train has no images of {', '.join(empty[:5])}")
        if nonzero and max(nonzero) > IMBALANCE_RATIO * min(nonzero):
            out.append(
                f"classes are imbalanced: {max(nonzero)} vs {min(nonzero)} images in train "
                "(consider --class-weights auto or a balanced sampler)"
            )
    n_bad = sum(len(s["bad"]) for s in report["splits"].values())
    if n_bad:
        out.append(f"{n_bad} bad file(s): fix or remove them, or train with --on-bad-image skip")
    if report["duplicates"]:
        out.append(f"{len(report['duplicates'])} group(s) of identical images")
    if report["leakage"]:
        out.append(
            f"{len(report['leakage'])} image(s) appear in more than one split: validation scores will be inflated"
        )
    return out


def render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    splits = list(report["splits"])
    table = Table(
        title=f"{report['data']}  ({report['kind']}, {report['task']}, {len(report['classes'])} classes)"
    )
    table.add_column("class")
    for s in splits:
        table.add_column(s, justify="right")
    for c in report["classes"]:
        table.add_row(c, *(f"{report['splits'][s]['counts'].get(c, 0):,}" for s in splits))
    table.add_section()
    table.add_row("[bold]images", *(f"[bold]{report['splits'][s]['images']:,}" for s in splits))
    table.add_row("bad", *(str(len(report["splits"][s]["bad"])) for s in splits))
    table.add_row("sizes", *(_top(report["splits"][s]["sizes"]) for s in splits))
    table.add_row("modes", *(_top(report["splits"][s]["modes"]) for s in splits))
    console.print(table)
    bad = [(s, b) for s in splits for b in report["splits"][s]["bad"]]
    if bad:
        t = Table(title="bad files")
        t.add_column("split")
        t.add_column("file", overflow="fold")
        t.add_column("reason", overflow="fold")
        for s, b in bad[:50]:
            t.add_row(s, _short(b["file"], report["data"]), b["reason"])
        console.print(t)
        if len(bad) > 50:
            console.print(f"... and {len(bad) - 50} more (--json lists them all)")
    root = report["data"]
    for group in report["duplicates"][:10]:
        console.print(f"[yellow]duplicates:[/] {' = '.join(_short(f, root) for f in group)}", overflow="fold")
    for leak in report["leakage"][:10]:
        console.print(
            f"[red]leak:[/] {leak['split']} {_short(leak['file'], root)} = {leak['other_split']} "
            f"{_short(leak['same_as'], root)}",
            overflow="fold",
        )
    for note in report["notes"]:
        console.print(f"note: {note}")
    for w in report["warnings"]:
        console.print(f"[bold yellow]warning:[/] {w}")
    if not report["warnings"] and not report.get("errors"):
        console.print("[green]no problems found")


def _short(path: str, root: str) -> str:
    """A file named relative to the data folder it is in."""
    import os

    base = root if os.path.isdir(root) else os.path.dirname(root)
    rel = os.path.relpath(path, base) if base and path.startswith(base) else path
    return rel


def _top(counter: dict[str, int], n: int = 3) -> str:
    items = list(counter.items())
    text = ", ".join(f"{k} ({v:,})" for k, v in items[:n])
    return text + (f", +{len(items) - n} more" if len(items) > n else "")
