"""Inference and training throughput of the base variant of every family, fp32 vs bf16 autocast +
channels_last, at one batch size and resolution (default: batch 32, 224x224).

    .venv/bin/python benchmarks/model_throughput.py                 # every family's base model
    .venv/bin/python benchmarks/model_throughput.py --models resnet50,vit_base_patch16_224 --batch 16

Small-image models (default input <= 64 px: LeNet-5, the CIFAR nets, CCT-7/3x1) run at their own
size: at 224 they would spend minutes per step on a resolution nobody uses them at.
Prints a table (img/s and achieved GFLOP/s, so families can be compared per unit of work) and,
with --json PATH, writes the measurements. Run it on an idle machine: a second busy process
halves every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
from rich.console import Console
from rich.table import Table

import imgcls
from imgcls.analysis.complexity import count_flops

BASE_VARIANTS = [
    "lenet5", "alexnet", "vgg16", "googlenet", "inception_v3", "resnet50", "resnet56", "wrn28_10", "cct_7_3x1",
    "densenet121", "xception", "mobilenet_v2", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny",
    "vit_base_patch16_224", "swin_t", "cct_14_7x2", "coatnet_0",
]  # fmt: skip


def timed(step: Callable[[], None], min_time: float, min_iters: int) -> float:
    """Seconds per call of ``step``: the best of the timed calls (timeit's convention: noise only
    ever adds time), after one warm-up call; calls repeat for ``min_time`` s and ``min_iters`` calls."""
    step()
    times: list[float] = []
    while len(times) < min_iters or sum(times) < min_time:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times)


def input_size(name: str, size: int) -> int:
    native = imgcls.model_info(name).input_size[-1]
    return native if native <= 64 else size


def measure(
    name: str, batch: int, size: int, fast: bool, train: bool, min_time: float, min_iters: int
) -> float:
    """Images per second."""
    model = imgcls.create_model(name)
    x = torch.randn(batch, model.in_chans, size, size)
    y = torch.randint(0, model.num_classes, (batch,))
    if fast:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if fast else nullcontext()
    if train:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

        def step() -> None:
            with autocast:
                loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    else:
        model.eval()

        def step() -> None:
            with torch.inference_mode(), autocast:
                model(x)

    return batch / timed(step, min_time, min_iters)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(BASE_VARIANTS))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224, help="resolution of the ImageNet-size models")
    p.add_argument(
        "--min-time", type=float, default=3.0, help="seconds of timed calls per measurement (at least)"
    )
    p.add_argument("--min-iters", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--from-json", default=None, help="re-print the table of a --json file without measuring")
    args = p.parse_args()

    console = Console(width=None if sys.stdout.isatty() else 160)
    if args.from_json:
        with open(args.from_json) as f:
            print_table(console, json.load(f), args)
        return
    console.print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, {args.size}x{args.size}"
    )
    rows = []
    for name in args.models.split(","):
        size = input_size(name, args.size)
        meta = imgcls.create_model(name, device="meta")
        gflops = count_flops(meta, (1, meta.in_chans, size, size)) / 1e9
        row = {"model": name, "family": imgcls.model_info(name).family, "size": size, "gflops": gflops}
        for train in (False, True):
            for fast in (False, True):
                key = f"{'train' if train else 'infer'}_{'bf16_cl' if fast else 'fp32'}"
                row[key] = measure(name, args.batch, size, fast, train, args.min_time, args.min_iters)
        rows.append(row)
        console.print(
            f"{name:22s} infer {row['infer_fp32']:8.1f} / {row['infer_bf16_cl']:8.1f}   "
            f"train {row['train_fp32']:7.1f} / {row['train_bf16_cl']:7.1f} img/s (fp32 / bf16+CL)"
        )

    print_table(console, rows, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


def print_table(console: Console, rows: list[dict], args: argparse.Namespace) -> None:
    table = Table(
        title=f"img/s, batch {args.batch}, {args.size}x{args.size} (GFLOP/s = img/s x GFLOPs; training ~3x forward)"
    )
    for col in ("model", "family", "size", "GFLOPs", "infer fp32", "infer bf16+CL", "x", "train fp32", "train bf16+CL", "x",
                "GFLOP/s infer fp32", "GFLOP/s train bf16+CL"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("model", "family") else "right")
    for r in rows:
        table.add_row(
            r["model"], r["family"], str(r["size"]), f"{r['gflops']:.2f}",
            f"{r['infer_fp32']:.1f}", f"{r['infer_bf16_cl']:.1f}", f"{r['infer_bf16_cl'] / r['infer_fp32']:.2f}",
            f"{r['train_fp32']:.1f}", f"{r['train_bf16_cl']:.1f}", f"{r['train_bf16_cl'] / r['train_fp32']:.2f}",
            f"{r['infer_fp32'] * r['gflops']:.0f}", f"{r['train_bf16_cl'] * r['gflops'] * 3:.0f}",
        )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
