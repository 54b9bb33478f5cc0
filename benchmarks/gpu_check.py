"""The GPU check of issue 33: one prepared script for a machine lent for minutes. It runs the ``cuda``
tests, then measures and writes benchmarks/gpu_check.json and .md (device, torch / CUDA, date):

1. the CIFAR-10 speed-run: ``imgcls train --preset cifar10-94 --device cuda``, several seeds, test
   accuracy and wall time beside airbench94's published 94.01 % in 3.83 s on an A100, with the
   achieved training FLOP/s against the measured bf16 matmul rate;
2. ResNet-50 at 224, batch 256: training and inference img/s (bf16 autocast + channels_last), eager and
   ``torch.compile``, beside NVIDIA's and timm's published figures and against the roofline;
3. ``imgcls bench --device cuda`` over the bench models, and the MNIST preset end to end.

Every stage is time-boxed (``--budget-s`` for the whole check) and a failing stage is recorded and the
next one runs; the exit status says whether all passed. ``--smoke`` runs every stage at tiny sizes on
the CPU (the test suite does: the script never rots).

    python benchmarks/gpu_check.py --data .gpu-data/cifar10-jpg.tar.gz     # on the GPU machine, ~5 min
    .venv/bin/python benchmarks/gpu_check.py --smoke --out /tmp/gpu-smoke   # anywhere, ~1 min

On a lent machine (no network; its own torch, no install needed): here, ``mkdir -p .gpu-data && cp
../shared/data/cifar10/cifar10-jpg.tar.gz .gpu-data/`` (an ignored folder: name it in the call's carry),
then there ``PYTHONPATH=src PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = {
    "airbench94": "94.01 % in 3.83 s on an A100 (lossless CIFAR-10; airbench94_muon: 94.01 % in 2.59 s)",
    "resnet50_train": ("NVIDIA DeepLearningExamples, A100-80GB, AMP, batch 256", 2470.0),
    "resnet50_infer": ("timm benchmark, RTX 4090, AMP, batch 256", 5088.0),
}
BENCH_MODELS = (
    "resnet18,resnet50,mobilenet_v2,efficientnet_b0,vit_small_patch16_224,swin_t,convnext_tiny,densenet121"
)


class Check:
    """The stages' results, the clock and the environment the subprocesses run in."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args, self.start, self.stages = args, time.monotonic(), {}
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", "IMGCLS_CACHE": str(self.work / "cache")}
        self.device = "cpu" if args.smoke else "cuda"

    def left(self) -> float:
        return self.args.budget_s - (time.monotonic() - self.start)

    def stage(self, name: str, fn: Any) -> None:
        began = time.monotonic()
        print(f"== {name} ({self.left():.0f} s left)", flush=True)
        try:
            result = fn()
            self.stages[name] = {"ok": True, **result}
        except Exception as e:  # a stage that fails is recorded; the next one still runs
            self.stages[name] = {"ok": False, "error": f"{type(e).__name__}: {e}"[-2000:]}
        self.stages[name]["seconds"] = round(time.monotonic() - began, 1)
        print(json.dumps({name: self.stages[name]}, indent=1)[:3000], flush=True)

    def run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        timeout = max(10.0, min(timeout, self.left()))
        r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                           env=self.env)  # fmt: skip
        if r.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:6])} ... exited {r.returncode}: {(r.stdout + r.stderr)[-1500:]}"
            )
        return r

    def imgcls(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "imgcls", *args, "--device", self.device, timeout=timeout)


def environment(c: Check) -> dict[str, Any]:
    import torch

    from imgcls.bench.roofline import processor_name, roofline

    device = torch.device(c.device)
    out: dict[str, Any] = {
        "device": processor_name(device), "torch": torch.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "smoke": c.args.smoke,
    }  # fmt: skip
    if device.type == "cuda":
        out["memory_gib"] = round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1)
        out["bf16"] = torch.cuda.is_bf16_supported()
    out["roofline_gflops"] = {k: round(v, 1) for k, v in roofline(device).items()}
    return out


def cuda_tests(c: Check) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "cuda", "tests/gpu", "-p", "no:cacheprovider", "-rfEs"],
                       capture_output=True, text=True, timeout=max(10.0, min(240.0, c.left())), cwd=ROOT, env=c.env)  # fmt: skip
    tail = r.stdout.strip().splitlines()[-25:]
    summary = tail[-1] if tail else ""
    result = {"summary": summary, "tail": tail, "exit": r.returncode}
    if r.returncode not in (0, 5) and not (c.args.smoke and "skipped" in summary):
        raise RuntimeError(f"cuda tests: {summary}\n" + "\n".join(tail))
    return result


def cifar_data(c: Check) -> str:
    """An image folder of CIFAR-10: the given folder, or the JPEG copy's tar.gz unpacked once."""
    data = Path(c.args.data)
    if data.is_file() and data.name.endswith((".tar.gz", ".tgz")):
        target = c.work / "cifar"
        with tarfile.open(data) as tar:
            tar.extractall(target, filter="data")
        found = [p.parent for p in target.rglob("train") if p.is_dir() and (p.parent / "test").is_dir()]
        if not found:
            raise RuntimeError(f"{data}: no train/ and test/ folders inside")
        return str(found[0])
    return str(data)


def speedrun(c: Check) -> dict[str, Any]:
    from imgcls.analysis.zoo_table import describe_models

    data = cifar_data(c)
    extra = ["--epochs", "1", "--model-arg", "widths=8,16,16"] if c.args.smoke else []
    runs = []
    for seed in range(c.args.seeds):
        if runs and c.left() < 2 * max(r["wall_s"] for r in runs) + 60:
            break  # keep time for the stages after this one
        began = time.monotonic()
        c.imgcls("train", "--preset", "cifar10-94", "--data", data, "--seed", str(seed), "--out", str(c.work / "runs"),
                 "--name", f"speedrun-{seed}", "--no-progress", "--no-tensorboard", *extra, timeout=600)  # fmt: skip
        wall = time.monotonic() - began
        run = c.work / "runs" / f"speedrun-{seed}"
        test = json.loads((run / "test_metrics.json").read_text())
        timings = json.loads((run / "timings.json").read_text())
        steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
        runs.append({"seed": seed, "test_acc": test["acc"], "wall_s": round(wall, 2),
                     "train_s": timings["train"], "startup_s": timings["startup"], "eval_s": timings["eval"],
                     "data_s": timings["data"], "images": sum(s["images"] for s in steps)})  # fmt: skip
    fwd = describe_models("airbench94")[0]["gflops"] * 1e9
    flops = 3 * fwd * sum(r["images"] for r in runs) / len(runs)  # forward + backward ~ 3 forwards
    train_s = sum(r["train_s"] for r in runs) / len(runs)
    accs = [r["test_acc"] for r in runs]
    return {
        "runs": runs, "mean_acc": sum(accs) / len(accs), "min_acc": min(accs), "max_acc": max(accs),
        "mean_wall_s": sum(r["wall_s"] for r in runs) / len(runs), "mean_train_s": train_s,
        "train_pflop": flops / 1e15, "train_tflops_per_s": flops / train_s / 1e12, "published": PUBLISHED["airbench94"],
    }  # fmt: skip


def resnet50(c: Check) -> dict[str, Any]:
    model, size, batch = ("resnet18", 32, 2) if c.args.smoke else ("resnet50", 224, 256)
    backends = ["torch"] if c.args.smoke else ["torch", "compile"]
    rows = {}
    for backend in backends:
        out = c.work / f"bench-{model}-{backend}.json"
        c.imgcls("bench", "--models", model, "--img-size", str(size), "--batch-size", str(batch), "--backend", backend,
                 "--precision", "auto", "--mode", "both", "--min-time", "0.2" if c.args.smoke else "2", "--repeats",
                 "2" if c.args.smoke else "5", "--json", str(out), timeout=300)  # fmt: skip
        body = json.loads(out.read_text())
        rows[backend] = body["rows"][0]
        roof = body.get("roofline_gflops", {})
    peak = roof.get("bf16") or roof.get("fp32")
    result: dict[str, Any] = {"model": model, "img_size": size, "batch": batch, "roofline_gflops": roof}
    for backend, row in rows.items():
        result[backend] = {
            "train_img_s": row.get("train_samples_per_sec"), "infer_img_s": row.get("infer_samples_per_sec"),
            "train_precision": row.get("train_precision"), "infer_precision": row.get("infer_precision"),
            "train_share_of_roofline": (row.get("train_gflops_per_sec") or 0) / peak if peak else None,
            "infer_share_of_roofline": (row.get("infer_gflops_per_sec") or 0) / peak if peak else None,
        }  # fmt: skip
    result["published"] = {
        k: {"what": PUBLISHED[k][0], "img_s": PUBLISHED[k][1]} for k in ("resnet50_train", "resnet50_infer")
    }
    return result


def bench_models(c: Check) -> dict[str, Any]:
    models = "lenet5" if c.args.smoke else BENCH_MODELS
    out = c.work / "bench.json"
    c.imgcls("bench", "--models", models, "--batch-size", "4" if c.args.smoke else "64", "--mode", "both",
             "--min-time", "0.2" if c.args.smoke else "0.5", "--repeats", "2" if c.args.smoke else "3",
             "--json", str(out), timeout=300)  # fmt: skip
    body = json.loads(out.read_text())
    keep = ("model", "infer_samples_per_sec", "train_samples_per_sec", "infer_precision", "train_precision",
            "infer_gflops_per_sec", "train_gflops_per_sec", "peak_memory_mb")  # fmt: skip
    return {
        "rows": [{k: r.get(k) for k in keep} for r in body["rows"]],
        "roofline_gflops": body.get("roofline_gflops"),
    }


def mnist(c: Check) -> dict[str, Any]:
    data = f"mnist:{ROOT / ('tests/fixtures/mnist' if c.args.smoke else 'data/mnist')}"
    extra = ["--epochs", "1"] if c.args.smoke else []
    began = time.monotonic()
    c.imgcls("train", "--preset", "mnist-speedrun", "--data", data, "--out", str(c.work / "runs"), "--name", "mnist",
             "--no-progress", "--no-tensorboard", *extra, timeout=300)  # fmt: skip
    run = c.work / "runs" / "mnist"
    return {"test_acc": json.loads((run / "test_metrics.json").read_text())["acc"],
            "wall_s": round(time.monotonic() - began, 2)}  # fmt: skip


def table(stages: dict[str, Any]) -> str:
    env = stages.get("environment", {})
    lines = [f"# GPU check: {env.get('device', '?')}", "",
             f"`benchmarks/gpu_check.py`, {env.get('date', '?')}: torch {env.get('torch')}, CUDA {env.get('cuda')}, "
             f"cuDNN {env.get('cudnn')}; measured matmul roofline {env.get('roofline_gflops')} GFLOP/s.", "",
             "| stage | ok | seconds | result |", "| --- | --- | --- | --- |"]  # fmt: skip
    for name, s in stages.items():
        if name == "environment":
            continue
        if not s.get("ok"):
            shown = s.get("error", "").splitlines()[0][:200]
        elif name == "cuda tests":
            shown = s["summary"]
        elif name == "speedrun":
            shown = (f"{len(s['runs'])} runs: {100 * s['mean_acc']:.2f} % mean ({100 * s['min_acc']:.2f}-"
                     f"{100 * s['max_acc']:.2f}), {s['mean_wall_s']:.1f} s wall ({s['mean_train_s']:.1f} s of steps), "
                     f"{s['train_tflops_per_s']:.1f} TFLOP/s; published: {s['published']}")  # fmt: skip
        elif name == "resnet50":
            shown = "; ".join(f"{b}: train {s[b]['train_img_s']} img/s, infer {s[b]['infer_img_s']} img/s "
                              f"({100 * (s[b]['train_share_of_roofline'] or 0):.0f} % / "
                              f"{100 * (s[b]['infer_share_of_roofline'] or 0):.0f} % of the roofline)"
                              for b in ("torch", "compile") if b in s)  # fmt: skip
            shown += "; published: " + ", ".join(
                f"{v['what']}: {v['img_s']:.0f} img/s" for v in s["published"].values()
            )
        elif name == "bench":
            shown = ", ".join(
                f"{r['model']} {r['infer_samples_per_sec']}/{r['train_samples_per_sec']}" for r in s["rows"]
            )
            shown += " img/s (inference / training)"
        elif name == "mnist":
            shown = f"{100 * s['test_acc']:.2f} % in {s['wall_s']:.1f} s"
        else:
            shown = ""
        lines.append(f"| {name} | {'yes' if s.get('ok') else 'NO'} | {s.get('seconds')} | {shown} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="every stage at tiny sizes on the CPU")
    ap.add_argument("--data", default=str(ROOT / ".gpu-data" / "cifar10-jpg.tar.gz"),
                    help="CIFAR-10 as an image folder or the JPEG copy's tar.gz")  # fmt: skip
    ap.add_argument("--seeds", type=int, default=5, help="speed-run seeds (fewer when the budget runs short)")
    ap.add_argument("--budget-s", type=float, default=290.0, help="seconds for the whole check")
    ap.add_argument("--out", default=str(ROOT / "benchmarks"), help="where gpu_check.json and .md go")
    args = ap.parse_args(argv)
    if args.smoke and args.data == ap.get_default("data"):
        args.data = str(ROOT / "tests" / "fixtures" / "cifar_jpg")
    if args.smoke:
        args.seeds = min(args.seeds, 1)
    c = Check(args)
    c.stage("environment", lambda: environment(c))
    for name, fn in (("cuda tests", cuda_tests), ("speedrun", speedrun), ("resnet50", resnet50), ("mnist", mnist),
                     ("bench", bench_models)):  # fmt: skip
        if c.left() < 15:
            c.stages[name] = {"ok": False, "error": "not run: the check's time budget was spent"}
            continue
        c.stage(name, lambda fn=fn: fn(c))
    (c.out / "gpu_check.json").write_text(json.dumps(c.stages, indent=1) + "\n")
    (c.out / "gpu_check.md").write_text(table(c.stages))
    print(table(c.stages))
    return 0 if all(s.get("ok") for s in c.stages.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
