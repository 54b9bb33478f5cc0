"""How long `imgcls` takes to list an ImageNet-style tree (issue 32): a synthetic ILSVRC-2012 layout of
empty files — the 1,000 standard synsets under train/, a flat val/ labelled by Kaggle's files — opened
by `open_source("imagenet:DIR")` (listing, labels, class names; nothing decoded), and the same tree
opened as a plain image folder, for comparison. Writes benchmarks/imagenet_listing.json + .md.

    .venv/bin/python benchmarks/imagenet_listing.py                 # 100,000 files, ~1 min on 2 cores
    .venv/bin/python benchmarks/imagenet_listing.py --files 1281167 # the real train split's count
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

from imgcls.data.imagenet import STANDARD
from imgcls.data.source import open_source

HERE = Path(__file__).parent


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def build(root: Path, files: int, val: int) -> None:
    per = files // len(STANDARD)
    for s in STANDARD:
        folder = root / "train" / s
        folder.mkdir(parents=True)
        for j in range(per):
            (folder / f"{s}_{j}.JPEG").touch()
    (root / "val").mkdir()
    rows = []
    for k in range(val):
        name = f"ILSVRC2012_val_{k + 1:08d}"
        (root / "val" / f"{name}.JPEG").touch()
        rows.append(f"{name},{STANDARD[k % len(STANDARD)]} 0 0 1 1")
    (root / "LOC_val_solution.csv").write_text("ImageId,PredictionString\n" + "\n".join(rows) + "\n")


def timed(spec: str) -> tuple[float, int]:
    start = time.perf_counter()
    source = open_source(spec)
    seconds = time.perf_counter() - start
    return seconds, sum(len(s) for s in source.splits.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--files", type=int, default=100_000, help="training files (spread over the 1,000 synsets)"
    )
    ap.add_argument("--val", type=int, default=5_000, help="flat validation files")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        build(root, args.files, args.val)
        made = time.perf_counter() - start
        os.sync()
        imagenet_s, n = timed(f"imagenet:{root}")
        folder_s, _ = timed(str(root / "train"))
    result = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "files": n,
        "imagenet_s": imagenet_s,
        "folder_s": folder_s,
        "build_s": made,
    }
    (HERE / "imagenet_listing.json").write_text(json.dumps(result, indent=1) + "\n")
    md = "\n".join([
        "# Listing an ImageNet-style tree",
        "",
        f"`.venv/bin/python benchmarks/imagenet_listing.py --files {args.files}` on {result['cpu']} "
        f"({result['cores']} cores), {result['date']}: a synthetic ILSVRC-2012 tree of empty files (the 1,000 "
        f"standard synsets under train/, {args.val:,} flat val/ images labelled by LOC_val_solution.csv), "
        "in the page cache (it was just written).",
        "",
        "| opened as | files | seconds | files/s |",
        "| --- | --- | --- | --- |",
        f"| `imagenet:DIR` (train + val, labels, names) | {n:,} | {imagenet_s:.2f} | {n / imagenet_s:,.0f} |",
        f"| `DIR/train` as a plain image folder | {args.files // 1000 * 1000:,} | {folder_s:.2f} | "
        f"{args.files / folder_s:,.0f} |",
        "",
        f"At this rate the 1.28 M files of the real train split list in about {1_281_167 / (n / imagenet_s):.0f} s "
        "(more on a cold disk); under torchrun, shard once (`imgcls data shard imagenet:DIR OUT`) and train from "
        "the shards.",
    ])  # fmt: skip
    (HERE / "imagenet_listing.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
