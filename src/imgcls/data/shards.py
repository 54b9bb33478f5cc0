"""Tar shards in WebDataset layout, for data that does not fit in memory: streamed, never extracted.

A shard is a plain tar file; a sample is the run of consecutive members that share a key (the
member name up to the first dot of its file name): ``000042.jpg`` (the image, its original bytes),
``000042.cls`` (the class index as text) and ``000042.json`` (``{"label": "cat"}`` or
``{"labels": ["cat", "dog"]}``). ``imgcls data shard SRC OUT`` writes ``OUT/{split}-000000.tar``, ...
and ``OUT/labels.json`` (classes, task, shards and sample counts per split), which readers use for
class names and progress bars; shards from elsewhere work without it (one scan finds the classes).

Members are only ever read into memory, so a hostile tar cannot write outside a folder; members
that are not regular files are skipped.
"""

from __future__ import annotations

import glob
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from ..sorting import natural_key
from .folder import IMAGE_EXTENSIONS
from .splits import ArraySplit, DataError, DataSource, FileSplit, ShardSplit

INDEX_FILE = "labels.json"
_BRACE = re.compile(r"\{([^{}]*)\}")


def expand_braces(pattern: str) -> list[str]:
    """``a-{000..002}.tar`` -> a-000.tar, a-001.tar, a-002.tar (zero padding kept); ``{x,y}`` -> x, y."""
    m = _BRACE.search(pattern)
    if not m:
        return [pattern]
    body = m.group(1)
    if ".." in body:
        lo, hi = body.split("..", 1)
        if not (lo.isdigit() and hi.isdigit()):
            raise DataError(f"bad range {{{body}}} in {pattern!r}: use {{000000..000099}}")
        width = len(lo) if lo.startswith("0") else 0
        items = [str(i).zfill(width) for i in range(int(lo), int(hi) + 1)]
    else:
        items = body.split(",")
    return [x for item in items for x in expand_braces(pattern[: m.start()] + item + pattern[m.end() :])]


def expand_urls(spec: str) -> list[str]:
    """Shard files named by a brace pattern, a glob, a single .tar, or a folder of .tar files."""
    if os.path.isdir(spec):
        return sorted(glob.glob(os.path.join(spec, "*.tar")), key=natural_key)
    if any(ch in spec for ch in "*?["):
        return sorted(glob.glob(spec), key=natural_key)
    return expand_braces(spec)


def sample_key(member_name: str) -> tuple[str, str]:
    """('dir/000042', 'jpg') for 'dir/000042.jpg' (the key ends at the file name's first dot)."""
    head, _, base = member_name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower() if dot else ""


def iter_samples(url: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {extension: bytes}) for each sample of one shard, streamed in file order."""
    try:
        with tarfile.open(url, mode="r|*") as tar:
            key, parts = None, {}
            for member in tar:
                if not member.isfile():
                    continue
                k, ext = sample_key(member.name)
                if k != key:
                    if key is not None:
                        yield key, parts
                    key, parts = k, {}
                f = tar.extractfile(member)
                parts[ext] = f.read() if f is not None else b""
            if key is not None:
                yield key, parts
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DataError(f"shard {url!r} cannot be read ({e}); write it again") from None


def image_part(parts: dict[str, bytes]) -> tuple[str, bytes] | None:
    for ext, data in parts.items():
        if "." + ext.rsplit(".", 1)[-1] in IMAGE_EXTENSIONS:
            return ext, data
    return None


def sample_labels(parts: dict[str, bytes], classes: list[str] | None) -> list[str] | None:
    """A sample's label names from its .json (label/labels) or .cls (index) part."""
    if "json" in parts:
        try:
            meta = json.loads(parts["json"])
        except (UnicodeDecodeError, json.JSONDecodeError):
            meta = None
        if isinstance(meta, dict):
            if "labels" in meta:
                return [str(v) for v in meta["labels"]]
            if "label" in meta:
                return [str(meta["label"])]
    for ext in ("cls", "label", "txt"):
        if ext in parts:
            text = parts[ext].decode("utf-8", "replace").strip()
            if classes is not None and text.isdigit():
                return [classes[int(text)]] if int(text) < len(classes) else None
            return text.split()
    return None


def open_shards(spec_path: str, spec: str) -> DataSource:
    urls = expand_urls(spec_path)
    missing = [u for u in urls if not os.path.isfile(u)]
    if not urls or missing:
        raise DataError(f"shard {missing[0] if missing else spec_path!r} does not exist")
    folder = Path(urls[0]).parent
    index_path = folder / INDEX_FILE
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        classes, multilabel = list(index["classes"]), bool(index["multilabel"])
        counts = {name: s["samples"] for name, s in index["splits"].items()}
        shard_split = {f: name for name, s in index["splits"].items() for f in s["shards"]}
        notes = []
    else:  # shards from elsewhere: one pass over the labels (images are skipped, not decoded)
        names: set[str] = set()
        multilabel = False
        for url in urls:
            for key, parts in iter_samples(url):
                labels = sample_labels(parts, None)
                if labels is None:
                    raise DataError(f"sample {key!r} in {url!r} has no .cls or .json label")
                multilabel |= len(labels) != 1
                names.update(labels)
        classes = sorted(names, key=natural_key)
        counts, shard_split = {}, {}
        notes = [f"no {INDEX_FILE} next to the shards: classes found by scanning them"]
    by_split: dict[str, list[str]] = {}
    for url in urls:
        name = shard_split.get(Path(url).name) or _split_of(Path(url).name)
        by_split.setdefault(name, []).append(url)
    if "train" not in by_split:
        by_split = {"train": urls}  # a pattern that names only some shards: they are what to train on
    splits: dict[str, ShardSplit] = {}
    for name, us in by_split.items():
        whole = sorted(Path(u).name for u in us) == sorted(f for f, s in shard_split.items() if s == name)
        splits[name] = ShardSplit(us, counts.get(name) if whole else None, f"{spec} {name}")
    return DataSource(spec, "shards", classes, multilabel, 3, dict(splits), notes)


def _split_of(filename: str) -> str:
    for name in ("train", "val", "test"):
        if filename.startswith(name):
            return name
    return "train"


def parse_size(text: str) -> tuple[int | None, int | None]:
    """'1000' -> (1000 samples, None); '256MB' -> (None, 268435456 bytes)."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)([bB]?)\s*", str(text))
    if not m:
        raise DataError(f"--shard-size {text!r} is not a sample count (1000) or a size (256MB)")
    n, unit, byte = int(m.group(1)), m.group(2).lower(), m.group(3)
    if not unit and not byte:
        return (n, None) if n > 0 else (None, None)
    return None, n * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit]


def _encoded(split: ArraySplit | FileSplit, i: int) -> tuple[str, bytes]:
    if isinstance(split, FileSplit):
        ext = os.path.splitext(split.paths[i])[1].lower().lstrip(".") or "jpg"
        return ext, split.read(i)
    buf = io.BytesIO()
    Image.fromarray(split.images[i]).save(buf, format="PNG")  # lossless: the same pixels back
    return "png", buf.getvalue()


class ShardWriter:
    """Appends samples to ``OUT/{prefix}-NNNNNN.tar``, starting a new shard at a count or size limit."""

    def __init__(self, out: Path, prefix: str, max_count: int | None, max_bytes: int | None) -> None:
        self.out, self.prefix, self.max_count, self.max_bytes = out, prefix, max_count, max_bytes
        self.shards: list[str] = []
        self.tar: tarfile.TarFile | None = None
        self.count = self.size = 0

    def add(self, members: list[tuple[str, bytes]]) -> None:
        nbytes = sum(512 + (len(d) + 511) // 512 * 512 for _, d in members)  # tar header + padded data
        full = (self.max_count and self.count >= self.max_count) or (
            self.max_bytes and self.count and self.size + nbytes > self.max_bytes
        )
        if self.tar is None or full:
            self.close()
            self.shards.append(f"{self.prefix}-{len(self.shards):06d}.tar")
            self.tar = tarfile.open(self.out / (self.shards[-1] + ".tmp"), "w", format=tarfile.USTAR_FORMAT)
            self.count = self.size = 0
        for name, payload in members:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(payload), 0o644, 0
            self.tar.addfile(info, io.BytesIO(payload))
        self.count, self.size = self.count + 1, self.size + nbytes

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()
            os.replace(self.out / (self.shards[-1] + ".tmp"), self.out / self.shards[-1])
            self.tar = None


def write_shards(
    source: DataSource,
    out: str | Path,
    shard_size: str = "256MB",
    seed: int = 0,
    progress: bool = True,
) -> dict[str, dict]:
    """Write each split of ``source`` as shuffled shards ``OUT/{split}-NNNNNN.tar`` plus ``OUT/labels.json``.

    Shards are shuffled (seeded) because streaming reads them in order and a class-sorted shard would
    feed one class at a time. Members carry no owner or time, so the same input gives the same bytes.
    Each shard is written under a temporary name and renamed when complete.
    """
    from ..progress import track

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    max_count, max_bytes = parse_size(shard_size)
    index: dict[str, dict] = {}
    for name, split in source.splits.items():
        if isinstance(split, ShardSplit):
            raise DataError("the source is already sharded; point imgcls data shard at images or label files")
        order = np.random.default_rng(seed).permutation(len(split))
        writer = ShardWriter(out, name, max_count, max_bytes)
        for n, i in enumerate(track(order, f"{name} -> shards", disable=not progress, unit="img")):
            ext, data = _encoded(split, int(i))
            labels = _labels_of(source, split, int(i))
            meta = {"labels": labels} if source.multilabel else {"label": labels[0]}
            members = [(f"{n:08d}.{ext}", data), (f"{n:08d}.json", json.dumps(meta).encode())]
            if not source.multilabel:
                members.append((f"{n:08d}.cls", str(source.classes.index(labels[0])).encode()))
            writer.add(members)
        writer.close()
        index[name] = {"shards": writer.shards, "samples": len(split)}
    (out / INDEX_FILE).write_text(
        json.dumps({"classes": source.classes, "multilabel": source.multilabel, "splits": index}, indent=1)
    )
    return index


def _labels_of(source: DataSource, split: ArraySplit | FileSplit, i: int) -> list[str]:
    t = split.targets[i]
    if source.multilabel:
        return [source.classes[j] for j in np.flatnonzero(t)]
    return [source.classes[int(t)]]
