"""``report.html``: self-contained, every section there, rendered by real headless Chromium with
no console errors and the confusion matrix and curves visibly drawn; Grad-CAM / attention maps."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imgcls
from imgcls.analysis.cam import attention_map, explain, grad_cam
from imgcls.evaluation import evaluate_run

ROOT = Path(__file__).parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="headless Chromium is not installed (CI installs it)",
)


@pytest.fixture(scope="module")
def report(mnist_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    evaluate_run(mnist_run, out=out, progress=False)
    return out / "report.html"


def test_report_is_self_contained_with_every_section(report: Path) -> None:
    page = report.read_text()
    for section in ("summary", "per-class", "confusion", "curves", "calibration", "top-losses", "explain"):
        assert f'id="{section}"' in page, section
    sources = re.findall(r'src="([^"]*)"', page)
    assert len(sources) == 3 + 16 + 12 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page and "http" not in page.split("<body>")[1]
    assert "Grad-CAM" in page and "Most confused" in page


def chromium(html_file: Path, screenshot: Path, height: int = 1400) -> str:
    assert CHROMIUM, "headless Chromium is required (apt-get install chromium)"
    r = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
         f"--screenshot={screenshot}", f"--window-size=1200,{height}", html_file.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and screenshot.is_file(), r.stderr[-2000:]
    return r.stderr


def console_errors(log: str) -> list[str]:
    return [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]


def ink(png: Path) -> float:
    """Share of the screenshot that is not (near) white."""
    a = np.asarray(Image.open(png).convert("L"), dtype=np.float64)
    return float((a < 235).mean())


@needs_chromium
def test_chromium_renders_the_report_without_console_errors(report: Path, tmp_path: Path) -> None:
    log = chromium(report, tmp_path / "page.png")
    assert console_errors(log) == []
    broken = tmp_path / "broken.html"  # the check itself can fail: a page with a script error
    broken.write_text(
        "<!doctype html><html><body><script>console.error('boom'); undefinedCall();</script></body></html>"
    )
    assert console_errors(chromium(broken, tmp_path / "broken.png"))


@needs_chromium
@pytest.mark.parametrize("section", ["confusion", "curves"])
def test_confusion_matrix_and_curves_are_drawn(report: Path, tmp_path: Path, section: str) -> None:
    page = report.read_text().replace(
        "</style>", f"section {{ display: none; }} #{section} {{ display: block; }}</style>"
    )
    only = tmp_path / f"{section}.html"
    only.write_text(page)
    chromium(only, tmp_path / f"{section}.png", height=1000)
    assert ink(tmp_path / f"{section}.png") > 0.01  # a heatmap / plotted axes, not a blank page
    empty = tmp_path / "empty.html"
    empty.write_text(page.replace(f"#{section} {{ display: block; }}", ""))
    chromium(empty, tmp_path / "empty.png", height=1000)
    assert ink(tmp_path / "empty.png") < ink(tmp_path / f"{section}.png") / 3  # the control: title only


def test_embedded_figures_are_not_blank(report: Path) -> None:
    page = report.read_text()
    for alt in ("confusion matrix", "training curves", "reliability diagram"):
        data = re.search(rf'alt="{alt}" src="data:image/png;base64,([^"]+)"', page).group(1)
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("L"))
        assert img.std() > 20, alt


def test_grad_cam_and_attention_maps() -> None:
    torch.manual_seed(0)
    cnn = imgcls.create_model("resnet20").eval()
    maps = grad_cam(cnn, torch.randn(2, 3, 32, 32))
    assert maps.shape == (2, 32, 32) and maps.min() >= 0 and maps.max() <= 1
    vit = imgcls.create_model("vit_tiny_patch16_224", img_size=64, num_classes=5).eval()
    att = attention_map(vit, torch.randn(2, 3, 64, 64))
    assert att.shape == (2, 64, 64) and abs(float(att.max()) - 1) < 1e-6
    assert explain(vit, torch.randn(1, 3, 64, 64))[0] == "attention"
    assert explain(cnn, torch.randn(1, 3, 32, 32))[0] == "grad-cam"


@pytest.mark.parametrize("kind", ["binary", "multilabel"])
def test_binary_and_multilabel_reports(tmp_path: Path, kind: str) -> None:
    from imgcls.config import apply_overrides

    fixtures = ROOT / "tests" / "fixtures"
    if kind == "binary":
        data = tmp_path / "catdog"
        for split in ("train", "test"):
            (data / split).mkdir(parents=True)
            for cls in ("cat", "dog"):
                os.symlink(fixtures / "cifar_jpg" / split / cls, data / split / cls)
    else:
        data = fixtures / "labels" / "multilabel.csv"
    cfg = apply_overrides(imgcls.TrainConfig, {}, {"data": str(data), "model": "resnet20", "epochs": 1, "batch_size": 8,
                                                   "out": str(tmp_path / "runs"), "progress": False, "precision": "fp32"})  # fmt: skip
    run = imgcls.train(cfg).run
    result = evaluate_run(run, out=tmp_path / "eval", progress=False)
    page = (tmp_path / "eval" / "report.html").read_text()
    assert 'id="roc"' in page and 'id="top-losses"' in page
    if kind == "binary":
        assert result.metrics["task"] == "binary" and result.metrics["roc_auc"] is not None
        assert 'id="confusion"' in page and 0 <= result.metrics["best_f1_threshold"] <= 1
    else:
        assert (
            result.metrics["task"] == "multilabel"
            and "mAP" in result.metrics
            and 'id="confusion"' not in page
        )
