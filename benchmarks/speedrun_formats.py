"""Which number format and memory layout trains the speed-run nets fastest on this CPU (issue 17):
whole SGD steps (forward, backward, step) of airbench at several widths, in fp32 and bf16 autocast,
contiguous and channels_last, beside the matmul roofline. Writes benchmarks/speedrun_formats.md.

    .venv/bin/python benchmarks/speedrun_formats.py          # ~3 min on 2 cores, on an idle machine
"""

from __future__ import annotations

import argparse
import os
import platform
from pathlib import Path

import torch
import torch.nn.functional as F

from imgcls import create_model
from imgcls.amp import autocast
from imgcls.analysis.complexity import count_flops
from imgcls.bench.roofline import roofline
from imgcls.bench.timing import time_calls

OUT = Path(__file__).with_name("speedrun_formats.md")
VARIANTS = [("airbench94", "64,256,256", 32, 3), ("airbench94", "32,128,128", 32, 3),
            ("airbench94", "16,64,64", 32, 3), ("airbench_mnist", "24,48,64", 28, 1)]  # fmt: skip
FORMATS = [("fp32", False), ("fp32", True), ("bf16", False), ("bf16", True)]


def step_seconds(
    name: str, widths: str, size: int, chans: int, batch: int, precision: str, cl: bool
) -> float:
    torch.manual_seed(0)
    model = create_model(name, widths=tuple(int(w) for w in widths.split(","))).train()
    fmt = torch.channels_last if cl else torch.contiguous_format
    model.to(memory_format=fmt)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    x = torch.randn(batch, chans, size, size).to(memory_format=fmt)
    y = torch.randint(0, 10, (batch,))

    def step() -> None:
        with autocast(torch.device("cpu"), precision):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.2)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return time_calls(step, warmup=2, min_repeats=5, min_time=3.0).median_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()
    roof = roofline(torch.device("cpu"))
    lines = [
        f"# Speed-run nets: number format and layout on this CPU ({platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__})",
        "",
        f"`.venv/bin/python benchmarks/speedrun_formats.py` — training img/s of whole SGD steps at batch {args.batch} "
        "(median after warm-up); GFLOP/s = 3 x forward FLOPs x img/s.",
        f"Roofline (2048² matmul): fp32 {roof['fp32']:,.0f} GFLOP/s"
        + (f", bf16 {roof['bf16']:,.0f} GFLOP/s" if "bf16" in roof else "")
        + ".",
        "",
        "| model | widths | input | GFLOPs fwd | "
        + " | ".join(f"{p}{' + CL' if c else ''} img/s" for p, c in FORMATS)
        + " | best (GFLOP/s, % of its roofline) |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in FORMATS) + " | --- |",
    ]
    for name, widths, size, chans in VARIANTS:
        flops = _forward_gflops(name, widths, size, chans)
        speeds = [args.batch / step_seconds(name, widths, size, chans, args.batch, p, c) for p, c in FORMATS]
        best = max(range(len(FORMATS)), key=lambda i: speeds[i])
        achieved = 3 * flops * speeds[best]
        dtype = FORMATS[best][0]
        pct = 100 * achieved / roof.get(dtype, roof["fp32"])
        label = f"{FORMATS[best][0]}{' + CL' if FORMATS[best][1] else ''}"
        lines.append(
            f"| {name} | {widths} | {chans}x{size}x{size} | {flops:.3f} | "
            + " | ".join(f"{s:,.0f}" for s in speeds)
            + f" | {label} ({achieved:.0f}, {pct:.0f} %) |"
        )
        print(lines[-1], flush=True)
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())


def _forward_gflops(name: str, widths: str, size: int, chans: int) -> float:
    model = create_model(name, widths=tuple(int(w) for w in widths.split(",")))
    return count_flops(model, (1, chans, size, size)) / 1e9


if __name__ == "__main__":
    main()
