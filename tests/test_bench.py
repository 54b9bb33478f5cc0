"""imgcls bench and imgcls train --budget: the table's params and GFLOPs are `imgcls models`', every
mode and backend runs, the CSV/JSON carry timm's column names, the report draws the Pareto front, and
a budgeted run ends within 10 % of its budget with the learning rate at zero."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from imgcls.amp import cpu_has_bf16
from imgcls.analysis.zoo_table import describe_models
from imgcls.bench import BenchSpec
from imgcls.bench.measure import measure_one, with_eager
from imgcls.bench.report import pareto
from imgcls.bench.roofline import processor_name
from imgcls.cli import main
from support import FOLDER

QUICK = {"min_time": 0.02, "batch_size": 4}


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "vit_tiny_patch16_224"])
def test_params_and_gflops_are_imgcls_models(name: str) -> None:
    row = measure_one(name, asdict(BenchSpec(mode="infer", precision="fp32", **QUICK)))
    listed = describe_models(name)[0]
    assert row["param_count"] == round(listed["params"] / 1e6, 2)
    assert row["gflops"] == listed["gflops"] and row["infer_gmacs"] == round(listed["gflops"] / 2, 3)
    assert row["infer_img_size"] == listed["input_size"][-1]


@pytest.mark.parametrize(
    ("mode", "backend", "precision"),
    [
        ("infer", "torch", "auto"),
        ("train", "torch", "bf16"),
        ("both", "torch", "fp32"),
        ("infer", "onnx", "auto"),
        ("infer", "compile", "fp32"),
    ],
)
def test_every_mode_and_backend_measures(mode: str, backend: str, precision: str) -> None:
    spec = asdict(BenchSpec(mode=mode, backend=backend, precision=precision, compare_eager=True, **QUICK))
    row = with_eager(measure_one("lenet5", spec), measure_one("lenet5", spec, "eager"))
    for m in ("infer", "train") if mode == "both" else (mode,):
        assert row[f"{m}_samples_per_sec"] > 0 and row[f"eager_{m}_samples_per_sec"] > 0
        assert row[f"{m}_speedup"] == round(
            row[f"{m}_samples_per_sec"] / row[f"eager_{m}_samples_per_sec"], 2
        )
        assert row[f"{m}_precision"] in ("fp32", "bf16", "bf16 + channels_last")
    if backend == "onnx" or precision == "fp32":
        assert row[f"{mode if mode != 'both' else 'infer'}_precision"] == "fp32"
    if mode == "infer":
        assert row["infer_b1_latency_ms"] > 0 and row["infer_gflops_per_sec"] > 0
    assert row["peak_memory_mb"] > 0 and row["threads"] >= 1 and row["processor"]


def test_inference_in_our_defaults_folds_the_batch_norms() -> None:
    spec = asdict(BenchSpec(mode="both", precision="fp32", compare_eager=True, **QUICK))
    row = with_eager(measure_one("resnet20", spec), measure_one("resnet20", spec, "eager"))
    assert row["infer_folded_norms"] == 19  # every conv-norm pair; the eager baseline keeps its norms
    assert "eager_infer_folded_norms" not in row and row["train_samples_per_sec"] > 0


def test_the_processor_is_named_with_its_bf16_units() -> None:
    """The label every row and table carries: bf16 named exactly where the CPU computes it natively."""
    name = processor_name(torch.device("cpu"))
    assert name and ("bf16" in name.replace("no native bf16", "")) == cpu_has_bf16()


def test_onnx_needs_inference_mode() -> None:
    with pytest.raises(Exception, match="inference only"):
        BenchSpec(backend="onnx", mode="both").check()


def test_pareto_front() -> None:
    # (GFLOPs, accuracy): b is beaten by a (cheaper and better); c is the dearest but the best
    points = [(1.0, 70.0), (2.0, 65.0), (4.0, 80.0), (0.5, 50.0)]
    assert pareto(points, lower_x_better=True) == [3, 0, 2]
    assert pareto([(10.0, 70.0), (5.0, 75.0)], lower_x_better=False) == [1, 0]  # img/s: higher is better


def test_the_command_writes_table_csv_json_and_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = [str(tmp_path / f) for f in ("b.csv", "b.json", "b.html")]
    assert main(["bench", "--models", "lenet5,resnet2?", "--mode", "infer", "--batch-size", "4", "--min-time", "0.02",
                 "--compare-eager", "--csv", out[0], "--json", out[1], "--report", out[2], "--no-progress"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "imgcls bench (2 models)" in printed and "Roofline (square matmul): fp32" in printed
    assert f"threads on {processor_name(torch.device('cpu'))}" in " ".join(printed.split())
    rows = list(csv.DictReader(open(out[0])))
    assert [r["model"] for r in rows] == ["lenet5", "resnet20"]
    for column in (
        "param_count",
        "infer_gmacs",
        "infer_samples_per_sec",
        "infer_step_time",
        "infer_batch_size",
        "infer_img_size",
    ):  # fmt: skip  (timm's benchmark.py names)
        assert column in rows[0]
    data = json.loads(Path(out[1]).read_text())
    assert data["roofline_gflops"]["fp32"] > 0 and len(data["rows"]) == 2
    page = Path(out[2]).read_text()
    assert page.count("data:image/png;base64,") == 1 and "<td>resnet20</td>" in page


def test_a_budget_run_ends_on_time_with_the_rate_at_zero_and_its_accuracy_is_added(tmp_path: Path) -> None:
    """bench --data --budget trains through the real ``imgcls train --budget``: the whole command ends
    within 10 % of the budget, the learning rate decays linearly to ~0 at its end, top-1 joins the row."""
    budget = 20.0
    assert main(["bench", "--models", "resnet20", "--mode", "infer", "--batch-size", "4", "--min-time", "0.02",
                 "--data", str(FOLDER), "--budget", f"{budget:g}s", "--out", str(tmp_path / "runs"),
                 "--json", str(tmp_path / "b.json"), "--report", str(tmp_path / "b.html"), "--no-progress"]) == 0  # fmt: skip
    row = json.loads((tmp_path / "b.json").read_text())["rows"][0]
    assert abs(row["budget_wall_s"] - budget) <= 0.1 * budget, row["budget_wall_s"]
    assert 0 <= row["top1"] <= 100 and row["budget_epochs"] >= 1
    run = Path(row["run"])
    assert json.loads((run / "timings.json").read_text())["total"] <= budget * 1.1
    config = (run / "config.yaml").read_text()
    assert "budget: 20s" in config and "schedule: linear" in config
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines()]
    lrs = [s["lr"] for s in steps]
    peak, tail = max(lrs), lrs[int(0.9 * len(lrs)) :]
    # linear to zero, not a cliff (a step an epoch here: 54 training images, batches of 64; on one busy
    # core a few epochs fit, on two idle ones about thirty)
    assert len(steps) >= 4 and lrs[-1] <= 0.02 * peak and max(tail) <= 0.2 * peak
    assert (tmp_path / "b.html").read_text().count(
        "data:image/png;base64,"
    ) == 2  # accuracy vs GFLOPs, vs img/s


def test_budget_values_are_checked() -> None:
    from imgcls.engine.budget import parse_duration

    assert parse_duration("20s") == 20 and parse_duration("10m") == 600 and parse_duration("1.5h") == 5400
    assert parse_duration("90") == 90
    with pytest.raises(Exception, match="expected a duration"):
        parse_duration("ten minutes")
