"""Data-pipeline throughput on CIFAR-10 from its JPEG folders: images/s a training loop would get.

    .venv/bin/python benchmarks/data_throughput.py                       # unpacks shared/data's CIFAR-10
    .venv/bin/python benchmarks/data_throughput.py --data /path/to/cifar10 --workers 0,2

Measures, for a CIFAR network's input (32 px, flip + pad-and-crop 4, normalised float batches of 512):
1. the first epoch from JPEG files: every image decoded per sample by the file loader
   (worker processes), as a data set too large to cache would be read every epoch;
2. building the decoded uint8 cache (one pass of decoding, written to the cache folder);
3. epochs from the cache with batched tensor augmentation (the fast path), with the "basic"
   recipe (flip + pad-crop) and the "strong" one (+ TrivialAugment per image, erasing, mixup/cutmix).
Target: (3, basic) >= 50,000 img/s on 2 cores. Run on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

import imgcls
from imgcls.data.loader import make_loader
from imgcls.data.pipeline import augment_preset, preprocess_for
from imgcls.data.source import open_source

ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10" / "cifar10-jpg.tar.gz"


def unpack(archive: Path, dest: Path) -> Path:
    root = dest / "cifar10"
    if not (root / "train").is_dir():
        print(f"unpacking {archive} -> {dest} ...", file=sys.stderr)
        with tarfile.open(archive) as tar:
            tar.extractall(dest, filter="data")
    return root


def epoch(loader, epoch_index: int, limit: int | None = None) -> tuple[int, float]:
    loader.set_epoch(epoch_index)
    n, start = 0, time.perf_counter()
    for b, batch in enumerate(loader):
        n += len(batch)
        if limit and b + 1 >= limit:
            break
    return n, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", help="a CIFAR-10 JPEG folder (train/CLASS/*.jpg); default: unpack shared/data's"
    )
    parser.add_argument("--workers", default="2", help="comma-separated worker counts for the JPEG epoch")
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=3, help="cached epochs to time (the best is reported)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tmp = tempfile.TemporaryDirectory()
    root = Path(args.data) if args.data else unpack(ARCHIVE, Path(tmp.name))
    os.environ.setdefault("IMGCLS_CACHE", str(Path(tmp.name) / "cache"))
    source = open_source(str(root))
    pre = preprocess_for(imgcls.model_info("resnet20"), source.channels)
    basic, strong = augment_preset("basic", pre.size, 3), augment_preset("strong", pre.size, 3)
    rows: list[tuple[str, int, float]] = []

    for w in (int(x) for x in args.workers.split(",")):
        loader = make_loader(source, "train", pre, basic, args.batch, workers=w, cache=False, seed=0)
        n, dt = epoch(loader, 0)
        rows.append((f"JPEG folder, first epoch, per-image decode + aug, {w} worker(s)", n, dt))

    start = time.perf_counter()
    loader = make_loader(source, "train", pre, basic, args.batch, workers=2, cache=True, seed=0)
    rows.append(
        (
            "build the uint8 cache (decode once, 2 workers)",
            len(source.split("train")),
            time.perf_counter() - start,
        )
    )
    start = time.perf_counter()
    loader = make_loader(source, "train", pre, basic, args.batch, workers=2, cache=True, seed=0)
    rows.append(("open the cache again (next run)", len(source.split("train")), time.perf_counter() - start))
    for name, aug in (
        ("flip + pad-crop", basic),
        ("strong: + TrivialAugment, erasing, mixup/cutmix", strong),
    ):
        loader = make_loader(source, "train", pre, aug, args.batch, cache=True, seed=0)
        best = min((epoch(loader, e) for e in range(args.epochs)), key=lambda r: r[1])
        rows.append((f"cached epoch, {name}", *best))

    table = Table(title=f"CIFAR-10 train ({len(source.split('train')):,} images), batch {args.batch}, "
                        f"{torch.get_num_threads()} threads")  # fmt: skip
    table.add_column("path")
    table.add_column("images", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("img/s", justify="right")
    for name, n, dt in rows:
        table.add_row(name, f"{n:,}", f"{dt:.2f}", f"{n / dt:,.0f}")
    Console().print(table)
    target = rows[-2][1] / rows[-2][2]
    print(
        f"cached flip + pad-crop: {target:,.0f} img/s (target >= 50,000): {'met' if target >= 50_000 else 'NOT met'}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps([{"path": r[0], "images": r[1], "seconds": r[2]} for r in rows], indent=1)
        )


if __name__ == "__main__":
    main()
