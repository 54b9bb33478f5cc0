"""`imgcls export`: ONNX (onnxruntime) and pt2 (torch.export.load) files that compute what the model
computes on real images, batch 1 and 7 from one file; the sidecar and the 15-line client of
docs/export.md; the family table of docs/export.md; a one-line reason naming the operator."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import imgcls
from imgcls.export import Exportable, ExportError, export, export_module
from support import FIXTURES, FOLDER, ROOT, cli, config

DOC = (ROOT / "docs" / "export.md").read_text()
TABLE = re.findall(
    r"^\| (.+?) \| `(\w+)` \(.*?\) \| (yes|no)[^|]*\| (yes|no)[^|]*\|$", DOC, flags=re.MULTILINE
)
# the same family classes with fewer repeated blocks: the same operators, a fraction of the export time
REDUCED: dict[str, dict] = {
    "vgg11_bn": {"layers": "64,0,128,0"}, "resnet18": {"layers": "1,1,1,1"}, "resnet20": {"layers": "1,1,1"},
    "resnetv2_50": {"layers": "1,1,1,1"}, "densenet121": {"block_config": "1,1,1,1"}, "xception": {"middle_blocks": 1},
    "efficientnet_b0": {"depth_mult": 0.1}, "efficientnet_v2_s": {"depth_mult": 0.1}, "regnet_y_400mf": {"depth": 4},
    "convnext_tiny": {"depths": "1,1,1,1"}, "vit_tiny_patch16_224": {"depth": 1}, "swin_t": {"depths": "2,1,1,1"},
    "cct_7_3x1": {"depth": 1}, "coatnet_0": {"depths": "1,1,1,1,1"},
}  # fmt: skip


def test_the_table_has_every_family() -> None:
    families = {imgcls.model_info(name).family for _, name, _, _ in TABLE}
    assert families == {imgcls.model_info(n).family for n in imgcls.list_models()}


def test_every_row_of_the_export_table_holds(tmp_path: Path) -> None:
    """Each row, both formats, on the row's model class with fewer repeated blocks; the exports run in
    two processes at once (they are single-threaded Python, minutes in a row). The models exported
    from real runs below are checked there at full depth."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from imgcls.export import check_family

    rows = [(name, fmt, claim) for _, name, onnx, pt2 in TABLE if name not in REAL
            for fmt, claim in (("onnx", onnx), ("pt2", pt2))]  # fmt: skip
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(check_family, name, fmt, str(tmp_path), **REDUCED.get(name, {}))
            for name, fmt, _ in rows
        ]
        results = [f.result(timeout=600) for f in futures]
    wrong = [f"{name} {fmt}: the table says {claim}, the export says {got}"
             for (name, fmt, claim), got in zip(rows, results) if got.split(" ")[0].rstrip(":") != claim]  # fmt: skip
    assert not wrong, "\n".join(wrong)


REAL = ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "vit_tiny_patch16_224", "swin_t"]


@pytest.fixture(scope="module", params=REAL)
def real_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the model trained for an epoch on real CIFAR-10 JPEGs at 64 px."""
    from imgcls.engine.trainer import train

    cfg = config(tmp_path_factory.mktemp(request.param), data=str(FOLDER), model=request.param, img_size=64, epochs=1,
                 batch_size=16, eval_test=False, tensorboard=False)  # fmt: skip
    return train(cfg).run


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_exported_files_match_pytorch_on_real_images(real_run: Path, fmt: str) -> None:
    result = export(real_run, fmt, dynamic_batch=True)
    assert result.max_diff <= 1e-4 and result.batches == (1, 7) and result.images == 8
    meta = json.loads(result.sidecar.read_text())
    clf = imgcls.load(real_run)
    assert meta["classes"] == clf.classes and meta["task"] == "multiclass" and meta["input"]["size"] == 64
    assert meta["input"]["mean"] == list(clf.preprocess.mean) and meta["input"]["dynamic_batch"] is True
    files = sorted((FOLDER / "test").rglob("*.jpg"))[:7]
    x = clf.preprocess.normalizer(torch.stack([clf.preprocess.pixels(f) for f in files]))
    if fmt == "onnx":  # what another program sees: onnxruntime alone on the file
        import onnxruntime as ort

        out = ort.InferenceSession(str(result.path)).run(None, {"images": x.numpy()})[0]
    else:
        out = torch.export.load(str(result.path)).module()(x).detach().numpy()
    expected = clf.predict_proba(files).numpy()
    assert out.shape == (7, len(clf.classes)) and np.allclose(out, expected, atol=1e-4)


def client_code() -> str:
    block = next(b for b in re.findall(r"```python\n(.*?)```", DOC, flags=re.DOTALL) if "onnxruntime" in b)
    return block


def test_the_documented_client_predicts_what_imgcls_predicts(tmp_path: Path) -> None:
    run = tmp_path / "run"
    import shutil

    shutil.copytree(FIXTURES / "legacy" / "lenet5-format1", run)
    r = cli("export", str(run), "--dynamic-batch")
    assert r.returncode == 0, r.stderr
    assert "checked on 8 real images at batch 1 and 7" in r.stdout
    image = ROOT / "tests" / "fixtures" / "images" / "cifar" / "cat_0000.jpg"
    code = re.sub(
        r"^MODEL, IMAGE = .*$", f'MODEL, IMAGE = "{run / "model.onnx"}", "{image}"', client_code(), flags=re.M
    )
    assert len([line for line in code.splitlines() if line.strip()]) <= 16
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    printed = [line.split() for line in out.stdout.splitlines()]
    expected = imgcls.load(run).predict(image, topk=3).top(3)
    assert [c for c, _ in printed] == [c for c, _ in expected]
    assert np.allclose([float(p) for _, p in printed], [p for _, p in expected], atol=1e-4)


def test_a_failed_export_names_the_operator(tmp_path: Path) -> None:
    class Histogram(torch.nn.Module):
        def forward_features(self, x: torch.Tensor) -> torch.Tensor:
            return x

        def forward_head(self, x: torch.Tensor) -> torch.Tensor:
            return torch.histc(x, bins=4)[None].expand(x.shape[0], 4)

    with pytest.raises(ExportError) as e:
        export_module(Exportable(Histogram(), logits=True), torch.randn(4, 3, 8, 8), "onnx", tmp_path / "h.onnx", True,
                      name="histogram-net")  # fmt: skip
    message = str(e.value)
    assert "histogram-net does not export to onnx: operator aten.histc" in message and "\n" not in message
    assert "\x1b" not in message


def test_export_without_images_to_check_says_what_to_give(tmp_path: Path) -> None:
    from imgcls.run import RunFolder

    run = tmp_path / "run"
    import shutil

    shutil.copytree(FIXTURES / "legacy" / "lenet5-format1", run)
    text = RunFolder(run).config.read_text().replace("mnist:tests/fixtures/mnist", "mnist:/nowhere")
    RunFolder(run).config.write_text(text)
    r = cli("export", str(run), "--format", "pt2")
    assert r.returncode == 2 and "--check-images" in r.stderr
    r = cli(
        "export",
        str(run),
        "--format",
        "pt2",
        "--check-images",
        str(ROOT / "tests" / "fixtures" / "images" / "cifar"),
    )
    assert r.returncode == 0, r.stderr
