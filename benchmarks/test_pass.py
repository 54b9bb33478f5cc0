"""The final test pass of a trained run, timed in each inference precision (`--test-precision`): what
the pass costs a speed-run and what bf16 changes in its figure.

    .venv/bin/python benchmarks/test_pass.py RUN [RUN ...] [--precisions fp32 bf16-if-native]

For each run folder and precision: the run's own training config (its config.yaml) rebuilt in a scratch
folder, the run's weights loaded, and ``engine/validation.test`` — the pass a run ends with, with the run's
test-time views, in channels_last for a conv net — timed. Writes benchmarks/test_pass.{json,md} (a run
already measured is replaced). Measure on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from imgcls.amp import INFER_PRECISIONS, infer_precision
from imgcls.bench.roofline import processor_name
from imgcls.config import compose, load_yaml
from imgcls.engine import validation
from imgcls.engine.config import TrainConfig
from imgcls.engine.trainer import Trainer
from imgcls.run import RunFolder

HERE = Path(__file__).parent
RESULTS = HERE / "test_pass.json"


def measure(run: Path, test_precision: str) -> dict:
    """One timed test pass of ``run``'s weights in ``test_precision``."""
    layer = load_yaml(run / "config.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        options = {"out": tmp, "test_precision": test_precision, "progress": False, "tensorboard": False}
        cfg, _ = compose(TrainConfig, [(str(run), layer)], options)
        t = Trainer(cfg)
        try:
            state, _ = RunFolder.of(run).read_weights()
            t.model.load_state_dict(state)
            start = time.perf_counter()
            metrics = validation.test(t)
            seconds = time.perf_counter() - start
        finally:
            t.close()
    return {"run": str(run), "model": layer["model"]["arch"], "tta": layer.get("test_tta", "none"),
            "test_precision": test_precision, "ran_in": infer_precision(test_precision, torch.device("cpu")),
            "seconds": round(seconds, 2), "acc": metrics["acc"], "loss": metrics["loss"],
            "images": int(metrics["images"]), "processor": processor_name(torch.device("cpu")),
            "threads": torch.get_num_threads()}  # fmt: skip


def write_markdown(rows: list[dict]) -> Path:
    lines = [
        "# The final test pass in each inference precision",
        "",
        "`.venv/bin/python benchmarks/test_pass.py RUN --precisions fp32 bf16-if-native` — a trained run's",
        "weights through the test pass a run ends with (`engine/validation.test`: its test-time views, channels_last",
        "for a conv net), timed on an idle machine.",
        "",
        "| run | model | views | test_precision (ran in) | seconds | test accuracy | test loss | measured on |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {Path(r['run']).name} | {r['model']} | {r['tta']} | {r['test_precision']} ({r['ran_in']}) | "
            f"{r['seconds']:.1f} | {100 * r['acc']:.2f} % | {r['loss']:.4f} | {r['processor']}, {r['threads']} threads |"
        )
    out = HERE / "test_pass.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (with config.yaml and model.safetensors)")
    ap.add_argument("--precisions", nargs="+", default=list(INFER_PRECISIONS), choices=INFER_PRECISIONS)
    args = ap.parse_args()
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.is_file() else []
    rows = [r for r in old if Path(r["run"]).resolve() not in {p.resolve() for p in args.runs}]
    for run in args.runs:
        for p in args.precisions:
            rows.append(measure(run, p))
            print(json.dumps(rows[-1]), flush=True)
    RESULTS.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(write_markdown(rows).read_text())


if __name__ == "__main__":
    main()
