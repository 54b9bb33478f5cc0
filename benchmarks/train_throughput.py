"""Training throughput (img/s) at batch 32, 224 px: ``--precision auto`` (what ``imgcls train``
picks by measuring: fp32, bf16 autocast, bf16 + channels_last) against plain fp32.

    .venv/bin/python benchmarks/train_throughput.py
    .venv/bin/python benchmarks/train_throughput.py --models resnet50 --batch 16 --steps 3

A step is forward, loss, backward and an AdamW update on random images and labels. Each figure is
the best of ``--steps`` timed steps after a warm-up step (noise only ever adds time). Run it on an
idle machine: a second busy process halves every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

import imgcls
from imgcls.amp import autocast
from imgcls.engine.precision import choose

MODELS = ["resnet50", "efficientnet_b0", "vit_small_patch16_224"]


def step_time(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str, cl: bool, steps: int
) -> float:
    model = model.to(memory_format=torch.channels_last if cl else torch.contiguous_format).train()
    x = x.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    device = torch.device("cpu")
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with autocast(device, precision):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", help="also write the measurements here")
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = imgcls.create_model(name)
        x = torch.randn(args.batch, 3, args.size, args.size)
        y = torch.randint(0, model.info.num_classes, (args.batch,))
        verdict = choose(model, x, lambda out, y=y: F.cross_entropy(out.float(), y), torch.device("cpu"),
                                      "auto", "auto", key=f"bench:{name}")  # fmt: skip
        precision, cl = verdict.precision, verdict.channels_last
        fp32 = step_time(model, x, y, "fp32", False, args.steps)
        auto = (
            step_time(model, x, y, precision, cl, args.steps) if (precision, cl) != ("fp32", False) else fp32
        )
        rows.append({"model": name, "auto": precision + ("+channels_last" if cl else ""), "fp32_img_s": args.batch / fp32,
                     "auto_img_s": args.batch / auto, "trial_s_per_step": verdict.seconds})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    table = Table(
        title=f"training img/s, batch {args.batch}, {args.size}x{args.size}, {torch.get_num_threads()} threads"
    )
    for col in ("model", "auto picks", "fp32 img/s", "auto img/s", "speed-up"):
        table.add_column(col, justify="left" if col in ("model", "auto picks") else "right")
    for r in rows:
        table.add_row(
            r["model"],
            r["auto"],
            f"{r['fp32_img_s']:.2f}",
            f"{r['auto_img_s']:.2f}",
            f"{r['auto_img_s'] / r['fp32_img_s']:.2f}x",
        )
    Console().print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
