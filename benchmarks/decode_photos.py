"""What decoding a big photo costs on the way to a 224-px input (issue 32): photo-sized JPEGs (real CIFAR-10
images scaled up to 512 … 4032 px, with sensor-like noise), each turned into ResNet-50's eval input by the
full decode evaluation uses and by the reduced-scale (DCT `draft`) decode training augmentation uses, timed,
and compared with torchvision's Resize(256) + CenterCrop(224) of the fully decoded photo. Writes
benchmarks/decode_photos.json + .md.

    .venv/bin/python benchmarks/decode_photos.py --data DIR     # DIR: CIFAR-10 JPEGs (any images), ~1 min
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

import imgcls
from imgcls.data import preprocess_for

HERE = Path(__file__).parent
SIZES = [(4032, 3024), (3024, 4032), (1920, 1080), (1280, 960), (800, 600), (640, 512),
         (512, 700), (1000, 1000), (4000, 3000), (600, 512), (2048, 1536), (3264, 2448)]  # fmt: skip


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def torchvision_eval(img: Image.Image, resize: int = 256, crop: int = 224) -> np.ndarray:
    """torchvision's Resize(256) + CenterCrop(224) on a PIL image (its arithmetic, spelled out)."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new = (resize, int(resize * long / short))
    new_w, new_h = new if w <= h else new[::-1]
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = int(round((new_w - crop) / 2.0)), int(round((new_h - crop) / 2.0))  # noqa: RUF046
    return np.asarray(img.crop((left, top, left + crop, top + crop)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="a folder of images to scale up")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    sources = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[
        : len(SIZES)
    ]
    pre = preprocess_for(imgcls.model_info("resnet50"), 3)
    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (src, (w, h)) in enumerate(zip(sources, SIZES)):
            img = np.asarray(Image.open(src).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)).astype(
                np.int16
            )
            path = Path(tmp) / f"{w}x{h}-{i}.jpg"
            Image.fromarray(np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)).save(
                path, quality=90
            )
            theirs = torchvision_eval(Image.open(path).convert("RGB"))
            row = {"size": f"{w}x{h}"}
            for name, draft in (("full", False), ("draft", True)):
                start = time.perf_counter()
                for _ in range(args.repeats):
                    x = pre.pixels(pre.load(path, draft=draft))
                row[f"{name}_ms"] = 1e3 * (time.perf_counter() - start) / args.repeats
                diff = np.abs(x.permute(1, 2, 0).numpy().astype(np.int16) - theirs)
                row[f"{name}_identical"] = bool(diff.max() == 0)
                row[f"{name}_max_diff"] = int(diff.max())
            rows.append(row)
    result = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "date": datetime.date.today().isoformat(),
        "rows": rows,
    }
    (HERE / "decode_photos.json").write_text(json.dumps(result, indent=1) + "\n")
    full = np.mean([r["full_ms"] for r in rows])
    draft = np.mean([r["draft_ms"] for r in rows])
    lines = [
        "# Decoding big photos: full (evaluation) against reduced-scale (training augmentation)",
        "",
        f"`.venv/bin/python benchmarks/decode_photos.py --data DIR` on {result['cpu']} ({result['cores']} cores), "
        f"{result['date']}: JPEG file to ResNet-50's 224 × 224 eval input, mean of {args.repeats} runs; "
        "compared with torchvision's Resize(256) + CenterCrop(224) of the fully decoded photo.",
        "",
        "| photo | full decode ms | identical to torchvision | DCT draft ms | identical | max diff (grey levels) |",
        "| --- | --- | --- | --- | --- | --- |",
        *[f"| {r['size']} | {r['full_ms']:.1f} | {'yes' if r['full_identical'] else 'no'} | {r['draft_ms']:.1f} | "
          f"{'yes' if r['draft_identical'] else 'no'} | {r['draft_max_diff']} |" for r in rows],
        "",
        f"Mean: full {full:.1f} ms, draft {draft:.1f} ms ({full / draft:.1f}x). Evaluation, prediction and the server "
        "decode in full; training augmentation keeps the draft decode.",
    ]  # fmt: skip
    (HERE / "decode_photos.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
