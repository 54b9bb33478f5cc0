"""The comparison table of issue 16 on this machine: eight models at batch 32 and 224x224, inference
and training, plain fp32 eager PyTorch against our defaults (``--precision auto``: the faster of bf16
autocast (+ channels_last for conv nets) and fp32, measured), with the machine's matmul roofline.
Writes benchmarks/bench_cpu.md (and .json). Run it on an idle machine: a second busy process halves
every figure.

    .venv/bin/python benchmarks/bench_cpu.py                      # ~15 min on 2 cores
    .venv/bin/python benchmarks/bench_cpu.py --models resnet50 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from datetime import date
from pathlib import Path

import torch

from imgcls.bench import BenchSpec, bench_models
from imgcls.bench.roofline import processor_name, roofline

MODELS = (
    "resnet18,resnet50,mobilenet_v2,efficientnet_b0,vit_small_patch16_224,swin_t,convnext_tiny,densenet121"
)
OUT = Path(__file__).with_name("bench_cpu.md")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=MODELS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0)
    args = ap.parse_args()
    roof = roofline(torch.device("cpu"))
    spec = BenchSpec(img_size=224, batch_size=32, precision="auto", mode="both", compare_eager=True,
                     repeats=args.repeats, min_time=args.min_time)  # fmt: skip
    rows = bench_models(args.models.split(","), spec)
    compiled, fp32_kept = [], []
    if "resnet50" in args.models.split(","):
        # the roofline target's other path: torch.compile (inductor)
        compiled = bench_models(
            ["resnet50"], replace(spec, mode="infer", backend="compile", compare_eager=False)
        )
        # where the training speed-up comes from: fp32 contiguous with only the freed memory kept
        fp32_kept = bench_models(
            ["resnet50"], replace(spec, mode="train", precision="fp32", compare_eager=False)
        )
    OUT.with_suffix(".json").write_text(
        json.dumps({"roofline_gflops": roof, "rows": rows, "compiled": compiled, "fp32_kept": fp32_kept},
                   indent=1) + "\n"
    )  # fmt: skip
    lines = [
        f"# imgcls bench on this CPU ({processor_name(torch.device('cpu'))}, {os.cpu_count()} cores, torch {torch.__version__})",
        "",
        "`.venv/bin/python benchmarks/bench_cpu.py` — batch 32, 224x224, the median of timed calls after two",
        "warm-up calls; eager = plain fp32 contiguous PyTorch; ours = `imgcls bench --precision auto` (the faster of",
        "bf16 autocast (+ channels_last for conv nets) and fp32, measured; for inference the batch norms folded into",
        "their convs — `norms folded` — as `imgcls bench` does; freed memory kept in the process for reuse, as",
        "every imgcls command does (`imgcls.memory`); eager runs in a process of its own with PyTorch's",
        "allocator as it comes). Training step: forward, backward, SGD.",
        f"Roofline (2048² matmul): fp32 {roof['fp32']:,.0f} GFLOP/s"
        + (f", bf16 {roof['bf16']:,.0f} GFLOP/s" if "bf16" in roof else "")
        + ".",
        "",
        "| model | params M | GFLOPs | infer eager img/s | infer ours img/s | × | ours in | GFLOP/s (% of roofline) "
        "| norms folded | train eager img/s | train ours img/s | × | ours in | peak MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        dtype = "bf16" if r["infer_precision"].startswith("bf16") else "fp32"
        pct = 100 * r["infer_gflops_per_sec"] / roof.get(dtype, roof["fp32"])
        lines.append(
            f"| {r['model']} | {r['param_count']} | {r['gflops']:.2f} | {r['eager_infer_samples_per_sec']:.1f} | "
            f"{r['infer_samples_per_sec']:.1f} | {r['infer_speedup']:.2f} | {r['infer_precision']} | "
            f"{r['infer_gflops_per_sec']:.0f} ({pct:.0f} % of {dtype}) | {r.get('infer_folded_norms', 0)} | "
            f"{r['eager_train_samples_per_sec']:.1f} | "
            f"{r['train_samples_per_sec']:.1f} | {r['train_speedup']:.2f} | {r['train_precision']} | {r['peak_memory_mb']:.0f} |"
        )
    lines += targets(rows, roof, compiled, fp32_kept)
    OUT.write_text("\n".join(lines) + "\n")
    print(OUT.read_text())


def targets(rows: list[dict], roof: dict, compiled: list[dict], fp32_kept: list[dict]) -> list[str]:
    """Issue 16's three ResNet-50 targets, read from the measured rows (``compiled``: ResNet-50 inference
    with ``--backend compile``, inductor with frozen weights; ``fp32_kept``: ResNet-50 training in fp32
    contiguous with freed memory kept, the first of the two steps from eager to ours)."""
    r = next((r for r in rows if r["model"] == "resnet50"), None)
    if r is None:
        return []

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**not met**"

    pct = 100 * r["infer_gflops_per_sec"] / roof.get("bf16", roof["fp32"])
    lines = [
        "",
        f"Targets of issue 16 on this CPU (read from the table above, measured {date.today()}):",
        f"- ResNet-50 inference, ours ≥ 2.5× plain fp32: {verdict(r['infer_speedup'] >= 2.5)}, "
        f"{r['infer_speedup']:.2f}× ({r['eager_infer_samples_per_sec']:.1f} → {r['infer_samples_per_sec']:.1f} img/s).",
        f"- ResNet-50 training, ours ≥ 3×: {verdict(r['train_speedup'] >= 3)}, {r['train_speedup']:.2f}× "
        f"({r['eager_train_samples_per_sec']:.1f} → {r['train_samples_per_sec']:.1f} img/s).",
        f"- ResNet-50 bf16 inference ≥ 70 % of the bf16 matmul roofline: {verdict(pct >= 70)}, {pct:.0f} % "
        f"({r['infer_gflops_per_sec']:.0f} of {roof.get('bf16', roof['fp32']):.0f} GFLOP/s, in {r['infer_precision']}).",
    ]
    if fp32_kept:
        k = fp32_kept[0]
        lines.append(
            f"- where the training speed-up comes from: plain fp32 {r['eager_train_samples_per_sec']:.1f} img/s → "
            f"fp32 with freed memory kept {k['train_samples_per_sec']:.1f} "
            f"({k['train_samples_per_sec'] / r['eager_train_samples_per_sec']:.2f}×) → {r['train_precision']} "
            f"{r['train_samples_per_sec']:.1f} img/s."
        )
    if compiled:
        c = compiled[0]
        pct = 100 * c["infer_gflops_per_sec"] / roof.get("bf16", roof["fp32"])
        lines.append(
            f"- the same with `imgcls bench --backend compile` (torch.compile, inductor, frozen weights): "
            f"{verdict(pct >= 70)}, {pct:.0f} % ({c['infer_samples_per_sec']:.1f} img/s, "
            f"{c['infer_gflops_per_sec']:.0f} GFLOP/s, in {c['infer_precision']})."
        )
    return lines


if __name__ == "__main__":
    main()
