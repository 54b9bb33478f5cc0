"""Time to accuracy (issue 17): the whole ``imgcls train --preset P`` command, end to end — process
start, imports, data decoding (cold: an empty decode cache; warm: the cache a first run left),
training, evaluation — timed from outside, and the final test accuracy it wrote. N runs with
different seeds; mean, spread and the share of runs reaching the target.

    .venv/bin/python benchmarks/time_to_accuracy.py --preset mnist-speedrun --data mnist:/tmp/mnist --runs 5
    .venv/bin/python benchmarks/time_to_accuracy.py --preset cifar10-speedrun --data /tmp/cifar10 --runs 3

Each preset's figures go to benchmarks/time_to_accuracy/PRESET.json, and all of them into
benchmarks/time_to_accuracy.md. Extra options after ``--`` go to ``imgcls train`` (e.g. ``-- --epochs 4``).
Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from imgcls.bench.roofline import processor_name

HERE = Path(__file__).parent
RESULTS = HERE / "time_to_accuracy"
TARGETS = {"mnist-speedrun": 0.99, "cifar10-speedrun": 0.94, "cifar10-94": 0.94, "cifar10-94-muon": 0.94}


def one_run(preset: str, data: str, seed: int, cache: Path, out: Path, extra: list[str]) -> dict:
    env = {**os.environ, "IMGCLS_CACHE": str(cache)}
    cmd = [sys.executable, "-m", "imgcls", "train", "--preset", preset, "--data", data, "--seed", str(seed),
           "--out", str(out), "--name", f"seed{seed}", "--no-progress", "--no-tensorboard", *extra]  # fmt: skip
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if r.returncode != 0:
        raise SystemExit(f"imgcls train failed ({r.returncode}):\n{r.stderr[-2000:]}")
    run = out / f"seed{seed}"
    test = json.loads((run / "test_metrics.json").read_text())
    timings = json.loads((run / "timings.json").read_text())
    epochs = len((run / "metrics.jsonl").read_text().splitlines())
    return {"seed": seed, "wall_s": round(wall, 2), "test_acc": test["acc"], "epochs": epochs,
            "timings": {k: round(v, 2) for k, v in timings.items()}}  # fmt: skip


def summary(runs: list[dict], target: float) -> dict:
    walls, accs = [r["wall_s"] for r in runs], [r["test_acc"] for r in runs]
    return {
        "runs": len(runs),
        "wall_mean_s": round(statistics.mean(walls), 2),
        "wall_sd_s": round(statistics.stdev(walls), 2) if len(walls) > 1 else 0.0,
        "acc_mean": round(statistics.mean(accs), 4),
        "acc_sd": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
        "reached": sum(a >= target for a in accs),
    }


def write_markdown() -> Path:
    lines = [
        f"# Time to accuracy on this CPU ({os.cpu_count()} cores)",
        "",
        "`.venv/bin/python benchmarks/time_to_accuracy.py --preset P --data D --runs N` — the whole `imgcls train`",
        "command timed from outside (process start to exit); test accuracy on the data's own test split. Cold: an",
        "empty decode cache; warm: the cache the cold run left (MNIST's IDX files need none). Wall-time parts:",
        "the run's own timings.json (start-up = process start to the first step: imports, data, model).",
        "",
        "| preset | extra options | cache | runs | wall s (mean ± sd) | test acc (mean ± sd) | reached target | "
        "start-up / data / train / eval / checkpoints s | measured on |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in sorted(RESULTS.glob("*.json")):
        res = json.loads(f.read_text())
        for cache in ("cold", "warm"):
            runs = res.get(cache)
            if not runs:
                continue
            s = summary(runs, res["target"])
            t = {
                k: statistics.mean(r["timings"][k] for r in runs) for k in runs[0]["timings"] if k != "total"
            }
            parts = " / ".join(f"{t[k]:.1f}" for k in ("startup", "data", "train", "eval", "checkpoint"))
            lines.append(
                f"| {res['preset']}{' (' + res['note'] + ')' if res.get('note') else ''} | {' '.join(res['extra']) or '-'} | {cache} | {s['runs']} | "
                f"{s['wall_mean_s']:.1f} ± {s['wall_sd_s']:.1f} | {100 * s['acc_mean']:.2f} ± "
                f"{100 * s['acc_sd']:.2f} % | {s['reached']}/{s['runs']} at ≥ {100 * res['target']:.1f} % | {parts} | "
                f"{res.get('processor', 'a 2-core Intel Xeon (amx_bf16, avx512_bf16)')} |"
            )
    out = HERE / "time_to_accuracy.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", required=True, choices=sorted(TARGETS))
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument(
        "--seed-start", type=int, default=0, help="the cold run's seed; warm runs take the next ones"
    )
    ap.add_argument("--target", type=float, help="the accuracy a run must reach (default: the preset's)")
    ap.add_argument("--tag", default="", help="a name for this variant's result file (default: the preset)")
    ap.add_argument("--note", default="", help="a word on this variant, shown beside the preset in the table")
    ap.add_argument("extra", nargs="*", help="options passed to imgcls train (after --)")
    args = ap.parse_args()
    target = args.target or TARGETS[args.preset]
    result: dict = {"preset": args.preset, "note": args.note, "data": args.data, "extra": args.extra, "target": target,
                    "processor": processor_name(torch.device("cpu"))}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        cache, out = Path(tmp) / "cache", Path(tmp) / "runs"
        result["cold"] = [one_run(args.preset, args.data, args.seed_start, cache, out, args.extra)]
        print(f"cold: {result['cold'][0]}", file=sys.stderr)
        result["warm"] = []
        for seed in range(args.seed_start + 1, args.seed_start + args.runs + 1):
            result["warm"].append(one_run(args.preset, args.data, seed, cache, out, args.extra))
            print(f"warm: {result['warm'][-1]}", file=sys.stderr)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.tag or args.preset}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(write_markdown().read_text())


if __name__ == "__main__":
    main()
