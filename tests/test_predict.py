"""``imgcls.load`` / ``predict`` / ``eval`` on the session's trained LeNet-5 (tests/conftest.py)."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imgcls
from imgcls.data import load_mnist
from imgcls.engine.precision import cpu_has_bf16
from imgcls.errors import ConfigError
from imgcls.evaluation import evaluate_run
from imgcls.predict import Prediction, to_csv

ROOT = Path(__file__).parents[1]
BAD = ROOT / "tests" / "fixtures" / "images" / "bad"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """1,000 real MNIST test digits as PNG files, and their labels."""
    folder = tmp_path_factory.mktemp("digits")
    images, labels = load_mnist(ROOT / "data" / "mnist", "test")
    for i in range(1000):
        Image.fromarray(images[i]).save(folder / f"{i:04d}.png")
    return folder, labels[:1000]


def test_predict_accepts_every_kind_of_input(mnist_run: Path, digits: tuple[Path, np.ndarray]) -> None:
    clf = imgcls.load(mnist_run)
    folder, labels = digits
    path = folder / "0000.png"
    one = clf.predict(path)
    assert isinstance(one, Prediction) and one.label == str(labels[0]) and 0.5 < one.probability <= 1
    assert str(one).startswith(f"{labels[0]} ") and len(one.top(3)) == 3
    pixels = np.array(Image.open(path))
    same = [
        clf.predict(str(path)), clf.predict(path.read_bytes()), clf.predict(Image.open(path)), clf.predict(pixels),
        clf.predict(torch.from_numpy(pixels)[None]),  # uint8 (C, H, W)
    ]  # fmt: skip
    for p in same:
        assert p.probs == one.probs
    batch = clf.predict(np.stack([pixels, pixels]))
    assert isinstance(batch, list) and len(batch) == 2 and batch[1].label == one.label
    assert np.allclose(
        batch[1].probs, one.probs, rtol=1e-5, atol=1e-7
    )  # a batch of 2: kernels may round differently
    many = clf.predict([folder / f"{i:04d}.png" for i in range(200)])
    accuracy = np.mean([p.label == str(y) for p, y in zip(many, labels[:200])])
    assert accuracy > 0.95


def test_prediction_equals_the_evaluation_output(mnist_run: Path, tmp_path: Path) -> None:
    result = evaluate_run(mnist_run, split="test", out=tmp_path, report=False, progress=False)
    clf = imgcls.load(mnist_run)
    for i in (0, 17, 9999):
        # the same input tensor (tests/data/test_loader.py); outputs may differ in the last bit only,
        # as the evaluation ran a batch of 64 and this a batch of 1 (kernels block by batch size)
        single = clf.predict_proba(result.sources[i])[0]
        assert torch.allclose(single, torch.from_numpy(result.probs[i]).float(), rtol=1e-5, atol=1e-7)
        assert int(single.argmax()) == int(result.probs[i].argmax())
    assert (
        abs(result.metrics["accuracy"] - json.loads((mnist_run / "test_metrics.json").read_text())["acc"])
        < 1e-9
    )


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_a_bf16_run_records_the_test_figures_eval_gives(tmp_path: Path) -> None:
    """Trained in bf16, a run's test_metrics.json is still what `imgcls eval` (fp32) gives for its
    weights: the training's test evaluation runs in fp32, not in the training precision."""
    fixture = ROOT / "tests" / "fixtures" / "mnist"
    r = subprocess.run(
        [sys.executable, "-m", "imgcls", "train", "--data", f"mnist:{fixture}", "--model", "lenet5", "--epochs", "1",
         "--precision", "bf16", "--out", str(tmp_path), "--no-progress", "--no-tensorboard"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = tmp_path / "lenet5"
    recorded = json.loads((run / "test_metrics.json").read_text())
    result = evaluate_run(run, split="test", out=tmp_path / "eval", report=False, progress=False)
    assert abs(result.metrics["loss"] - recorded["loss"]) < 1e-6  # bf16 would differ in the third digit


def test_cli_predict_folder_of_1000_with_bad_files(
    mnist_run: Path, digits: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    shutil.copytree(digits[0], folder)
    for name in ("truncated.jpg", "page.jpg", "empty.jpg"):
        shutil.copy(BAD / name, folder / name)
    r = subprocess.run([sys.executable, "-m", "imgcls", "predict", str(mnist_run), str(folder), "--format", "csv", "--topk", "3"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "predicting" in r.stderr  # the progress bar
    for name in ("truncated.jpg", "page.jpg", "empty.jpg"):
        assert f"skipped {folder / name}" in r.stderr
    clf = imgcls.load(mnist_run)
    files = sorted(str(p) for p in folder.iterdir())
    from imgcls.sorting import natural_key

    files.sort(key=natural_key)
    api = to_csv(clf.predict(files, topk=3, skip_bad=True), 3)
    assert r.stdout == api
    rows = r.stdout.splitlines()
    assert (
        len(rows) == 1 + 1003 and sum(1 for x in rows if x.endswith(",")) == 1000
    )  # no error column: the digits


def test_ten_crop_at_least_as_accurate_as_single_crop(mnist_run: Path, tmp_path: Path) -> None:
    """The ten-crop rule (half the training shift for images already at the input size) was chosen on
    the MNIST *test* split, so it is checked here on images that played no part in choosing it: the
    training images the run held out for validation (10 %)."""
    single = evaluate_run(mnist_run, split="val", out=tmp_path / "a", report=False, progress=False)
    ten = evaluate_run(
        mnist_run, split="val", tta="ten_crop", out=tmp_path / "b", report=False, progress=False
    )
    assert single.metrics["images"] == ten.metrics["images"] > 5900
    assert ten.metrics["accuracy"] >= single.metrics["accuracy"], (
        ten.metrics["accuracy"],
        single.metrics["accuracy"],
    )
    flip = evaluate_run(mnist_run, split="val", tta="flip", out=tmp_path / "c", report=False, progress=False)
    assert (
        flip.metrics["accuracy"] == single.metrics["accuracy"]
    )  # digits were trained without flips: none applied


def test_cli_eval_prints_and_writes_the_metrics(mnist_run: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "imgcls", "eval", str(mnist_run), "--out", str(tmp_path), "--no-progress"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    test = json.loads((mnist_run / "test_metrics.json").read_text())
    assert metrics["images"] == 10_000 and abs(metrics["accuracy"] - test["acc"]) < 1e-9
    assert (
        f"accuracy {metrics['accuracy']:.4f}" in r.stdout
        and "[test, 10000 images, tta none, fp32]" in r.stdout
    )
    assert f"written: {tmp_path}/metrics.json, {tmp_path}/report.html" in r.stdout
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_multiscale_tta_averages_three_scales(mnist_run: Path, tmp_path: Path) -> None:
    clf = imgcls.load(mnist_run)
    images, _ = load_mnist(ROOT / "tests" / "fixtures" / "mnist", "test")
    views = clf._views(images[0], "multiscale")
    assert (
        views.shape == (3, 1, 32, 32)
        and not torch.equal(views[0], views[1])
        and not torch.equal(views[1], views[2])
    )
    expected = clf.task.probs(clf.logits(clf.preprocess.normalizer(views))).mean(0)
    assert torch.allclose(clf.predict_proba(images[0], tta="multiscale")[0], expected, atol=1e-6)
    result = evaluate_run(mnist_run, data=f"mnist:{ROOT / 'tests' / 'fixtures' / 'mnist'}", split="test", tta="multiscale",
                          out=tmp_path, report=False, progress=False)  # fmt: skip
    assert result.metrics["tta"] == "multiscale" and result.metrics["images"] == 64
    assert result.metrics["accuracy"] >= 0.9


def test_cli_predict_json_is_the_api_output(mnist_run: Path, digits: tuple[Path, np.ndarray]) -> None:
    files = [str(digits[0] / f"{i:04d}.png") for i in range(5)]
    r = subprocess.run([sys.executable, "-m", "imgcls", "predict", str(mnist_run), *files, "--format", "json", "--topk", "2"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    api = [p.as_dict() for p in imgcls.load(mnist_run).predict(files, topk=2)]
    assert json.loads(r.stdout) == json.loads(json.dumps(api))
    assert [len(row["top"]) for row in api] == [2] * 5


def test_cli_predict_exits_1_when_no_file_can_be_read(mnist_run: Path) -> None:
    bad = [str(BAD / n) for n in ("truncated.jpg", "page.jpg")]
    r = subprocess.run([sys.executable, "-m", "imgcls", "predict", str(mnist_run), *bad],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 1
    assert all(f"skipped {b}" in r.stderr for b in bad)


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from imgcls.engine.trainer import train
    from support import FIXTURES, config

    cfg = config(tmp_path_factory.mktemp("ml"), data=str(FIXTURES / "labels" / "multilabel.csv"), model="resnet20",
                 epochs=1, batch_size=16, eval_test=False, tensorboard=False)  # fmt: skip
    return train(cfg).run


@pytest.mark.parametrize(("threshold", "every"), [(0.0, True), (1.0, False)])
def test_cli_predict_threshold_decides_the_labels(
    multilabel_run: Path, threshold: float, every: bool
) -> None:
    image = str(ROOT / "tests" / "fixtures" / "images" / "cifar" / "cat_0000.jpg")
    r = subprocess.run([sys.executable, "-m", "imgcls", "predict", str(multilabel_run), image, "--format", "json",
                        "--threshold", str(threshold)], capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (row,) = json.loads(r.stdout)
    classes = imgcls.load(multilabel_run).classes
    assert row["labels"] == (classes if every else [])


def test_calibration_is_fitted_on_val_and_saved(mnist_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(mnist_run, run)
    result = evaluate_run(run, calibrate=True, report=False, progress=False)
    saved = json.loads((run / "calibration.json").read_text())
    assert saved["fitted_on"] == "val" and 0.2 < saved["temperature"] < 5
    assert imgcls.load(run).temperature == saved["temperature"] == result.metrics["temperature"]


@pytest.mark.parametrize("mirror", [True, False])
def test_batch_views_are_the_views_training_tests_with(mirror: bool) -> None:
    """One vocabulary: predict/eval's ``flip`` and ``flip-shift`` average the logits of exactly the views
    training's test evaluation averages (``tta_logits``), mirrors only for a model trained with them."""
    from imgcls.data.pipeline import Preprocess
    from imgcls.engine.evaluate import tta_logits
    from imgcls.predict import Predictor
    from imgcls.tasks import Task

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))  # not mirror-symmetric
    pre = Preprocess(size=8, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    clf = Predictor(model, list("abcd"), Task("multiclass", 4), pre, hflip_ok=mirror)
    images = [np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8) for i in range(5)]
    x = pre.normalizer(torch.stack([torch.from_numpy(im).permute(2, 0, 1) for im in images]))
    with torch.no_grad():
        for tta in ("none", "flip", "flip-shift"):
            want = tta_logits(model, x, tta, mirror).softmax(1)
            assert torch.allclose(clf.predict_proba(images, tta=tta), want, atol=1e-6), tta
            got = clf.predict(images, topk=4, tta=tta)
            assert np.allclose([p.probs for p in got], want.numpy(), atol=1e-6), tta
        plain, flipped = tta_logits(model, x, "none"), tta_logits(model, x, "flip", True)
        assert not torch.allclose(plain, flipped, atol=1e-3)  # the views differ: the test can tell them apart


def test_the_test_pass_and_the_predictor_run_a_conv_net_in_channels_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A conv net trained contiguous is tested — by the run's own test pass, by ``imgcls eval`` and by
    ``imgcls predict`` — with channels_last weights and inputs (the same figure, 1.5x faster on a CPU)."""
    from imgcls.engine import validation
    from imgcls.engine.trainer import train
    from support import MNIST, config

    seen: list[tuple[bool, bool]] = []  # per conv call: (input channels_last, weights channels_last)

    def watch(model: torch.nn.Module) -> list[torch.utils.hooks.RemovableHandle]:
        def hook(m: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            fmt = torch.channels_last
            seen.append((args[0].is_contiguous(memory_format=fmt), m.weight.is_contiguous(memory_format=fmt)))

        convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1)]
        return [m.register_forward_pre_hook(hook) for m in convs]

    evaluate, calls = validation.evaluate, []

    def watched(model: torch.nn.Module, *args: object, **kwargs: object) -> dict[str, float]:
        seen.clear()
        handles = watch(model)
        try:
            return evaluate(model, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            calls.append(list(seen))
            for h in handles:
                h.remove()

    monkeypatch.setattr(validation, "evaluate", watched)
    cfg = config(tmp_path, data=f"mnist:{MNIST}", model="resnet20", epochs=1, batch_size=64, augment="none",
                 tensorboard=False, channels_last="off")  # fmt: skip
    result = train(cfg)
    *validations, testing = calls  # the epoch's validation, then the test pass
    assert validations and all(not x and not w for c in validations for x, w in c)  # trained contiguous
    assert testing and all(x and w for x, w in testing), testing

    seen.clear()
    clf = imgcls.load(result.run)
    watch(clf.model)
    images, _ = load_mnist(MNIST, "test")
    clf.predict(images[:3])
    evaluate_run(result.run, split="test", out=tmp_path / "eval", report=False, progress=False)
    assert len(seen) > 2 and all(x and w for x, w in seen), seen
    assert clf.precision == "fp32"  # the default test precision

    with pytest.raises(ConfigError, match="test_precision must be one of fp32, bf16-if-native, got 'bf16'"):
        train(config(tmp_path / "bad", data=f"mnist:{MNIST}", model="resnet20", test_precision="bf16"))


@pytest.mark.skipif(not cpu_has_bf16(), reason="this CPU has no native bf16")
def test_a_run_tested_in_bf16_if_native_is_evaluated_and_predicted_in_bf16(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``test_precision: bf16-if-native``: the test pass runs in bf16 (conv outputs bf16) though training
    ran in fp32, the weights say so, and ``imgcls eval``/``predict`` run in bf16 too — the recorded
    figure — where bf16 is native, and in fp32 (a different figure) where it is not."""
    from imgcls import amp
    from imgcls.engine import validation
    from imgcls.engine.trainer import train
    from imgcls.run import RunFolder
    from support import MNIST, config

    dtypes: list[torch.dtype] = []
    evaluate = validation.evaluate

    def watched(model: torch.nn.Module, *args: object, **kwargs: object) -> dict[str, float]:
        hooks = [m.register_forward_hook(lambda m, i, o: dtypes.append(o.dtype))
                 for m in model.modules() if isinstance(m, torch.nn.Conv2d)]  # fmt: skip
        try:
            return evaluate(model, *args, **kwargs)  # type: ignore[arg-type]
        finally:
            for h in hooks:
                h.remove()

    monkeypatch.setattr(validation, "evaluate", watched)
    cfg = config(tmp_path, data=f"mnist:{MNIST}", model="resnet20", epochs=1, batch_size=64, augment="none",
                 tensorboard=False, val_fraction=0, test_precision="bf16-if-native")  # fmt: skip
    run = train(cfg).run
    assert dtypes and set(dtypes) == {torch.bfloat16}  # no val split: the test pass alone, in bf16
    recorded = json.loads((run / "test_metrics.json").read_text())
    assert RunFolder.of(run).read_weights()[1].test_precision == "bf16-if-native"
    assert imgcls.load(run).precision == "bf16"
    in_bf16 = evaluate_run(run, split="test", out=tmp_path / "bf16", report=False, progress=False)
    bf16 = in_bf16.metrics
    # the same figure: the loss to float32 summation order (another batch size), the accuracy exactly
    assert math.isclose(bf16["loss"], recorded["loss"], rel_tol=1e-6) and bf16["accuracy"] == recorded["acc"]

    monkeypatch.setattr(amp, "cpu_has_bf16", lambda: False)  # a CPU without native bf16: fp32
    assert imgcls.load(run).precision == "fp32"
    in_fp32 = evaluate_run(run, split="test", out=tmp_path / "fp32", report=False, progress=False)
    scale = np.abs(in_fp32.logits).max()
    assert np.abs(in_fp32.logits - in_bf16.logits).max() > 1e-3 * scale  # bf16 keeps ~3 significant digits


def test_precision_overrides_what_the_run_was_tested_in(
    mnist_run: Path,
    digits: tuple[Path, np.ndarray],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--precision`` (``imgcls.load(run, precision=...)``): eval and predict of a run tested in fp32 run in
    bf16 where it is native (here made so) when asked, in fp32 where it is not, and say what ran; the
    default stays the run's own; a name that is not known is refused by name."""
    from imgcls import amp
    from imgcls.cli import main

    monkeypatch.setattr(amp, "cpu_has_bf16", lambda: True)
    data = f"mnist:{ROOT / 'tests' / 'fixtures' / 'mnist'}"
    fp32 = evaluate_run(
        mnist_run, data=data, split="test", out=tmp_path / "fp32", report=False, progress=False
    )
    bf16 = evaluate_run(mnist_run, data=data, split="test", out=tmp_path / "bf16", report=False, progress=False,
                        precision="bf16-if-native")  # fmt: skip
    assert fp32.metrics["inference_precision"] == "fp32"  # the run's own: its test pass ran in fp32
    assert json.loads((tmp_path / "bf16" / "metrics.json").read_text())["inference_precision"] == "bf16"
    scale = np.abs(fp32.logits).max()
    assert 1e-3 * scale < np.abs(bf16.logits - fp32.logits).max() < 0.1 * scale  # bf16: ~3 digits, same model

    assert main(["eval", str(mnist_run), "--data", data, "--out", str(tmp_path / "cli"), "--no-report",
                 "--no-progress", "--precision", "bf16-if-native"]) == 0  # fmt: skip
    assert "[test, 64 images, tta none, bf16]" in capsys.readouterr().out
    files = [str(digits[0] / f"{i:04d}.png") for i in range(8)]
    assert main(["predict", str(mnist_run), *files, "--format", "json", "--precision", "bf16-if-native"]) == 0
    printed = json.loads(capsys.readouterr().out)
    in_bf16 = imgcls.load(mnist_run, precision="bf16-if-native")
    assert in_bf16.precision == "bf16" and printed == json.loads(
        json.dumps([p.as_dict() for p in in_bf16.predict(files)])
    )

    monkeypatch.setattr(amp, "cpu_has_bf16", lambda: False)  # bf16 not native: fp32
    assert imgcls.load(mnist_run, precision="bf16-if-native").precision == "fp32"
    with pytest.raises(
        ConfigError, match="an inference precision is one of fp32, bf16-if-native, got 'bf16'"
    ):
        imgcls.load(mnist_run, precision="bf16")
