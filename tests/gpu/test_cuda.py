"""Every CUDA path on a real GPU: the model zoo, autocast and the gradient scaler, channels_last, a run
trained, killed and resumed there, its eval / predict / export on the CPU, DDP over nccl, and the data
path (batches finished on the device). Each test skips, with the reason, where no GPU is visible;
``benchmarks/gpu_check.py`` runs them on the GPU machine (``pytest -m cuda``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

import imgcls
from imgcls.engine.trainer import Trainer
from imgcls.fileio import load_safe
from support import FOLDER, ROOT, config, losses

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="no CUDA GPU here (torch.cuda.is_available() is False)"
    ),
]
CUDA = torch.device("cuda")


def smallest_of_each_family() -> list[str]:
    """The model with the fewest parameters of each family (from the zoo's cached counts)."""
    counts = json.loads((Path(imgcls.__file__).parent / "analysis" / "zoo_complexity.json").read_text())
    best: dict[str, str] = {}
    for name in imgcls.list_models():
        family = imgcls.model_info(name).family
        if name in counts and (family not in best or counts[name]["params"] < counts[best[family]]["params"]):
            best[family] = name
    return sorted(best.values())


@pytest.fixture
def exact_fp32():  # type: ignore[no-untyped-def]
    """fp32 as fp32: no TF32 in matrix products and convolutions for the duration of a test."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _model_and_input(name: str, batch: int = 2) -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = imgcls.create_model(name).eval()
    c, h, w = imgcls.model_info(name).input_size
    return model, torch.randn(batch, c, h, w, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", smallest_of_each_family())
def test_logits_on_the_gpu_are_the_cpus(name: str, exact_fp32) -> None:  # type: ignore[no-untyped-def]
    model, x = _model_and_input(name)
    with torch.no_grad():
        cpu = model(x)
        gpu = model.to(CUDA)(x.to(CUDA)).cpu()
    scale = cpu.abs().max().clamp_min(1.0)
    assert (gpu - cpu).abs().max() / scale < 1e-4, name


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224", "convnext_tiny", "efficientnet_b0"])
def test_autocast_forward_and_backward_are_finite_and_close_to_fp32(
    name: str, precision: str, exact_fp32
) -> None:  # type: ignore[no-untyped-def]
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    model, x = _model_and_input(name, batch=4)
    model, x = model.to(CUDA), x.to(CUDA)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.no_grad():
        reference = model(x).float()
        with torch.autocast("cuda", dtype=dtype):
            low = model(x).float()
    assert torch.isfinite(low).all() and not torch.equal(
        low, reference
    )  # autocast did compute in low precision
    assert (low - reference).abs().max() / reference.abs().max().clamp_min(1.0) < 0.05
    model.train()
    with torch.autocast("cuda", dtype=dtype):
        out = model(x)
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_fp16_training_scales_the_loss_and_an_overflow_skips_the_step_and_lowers_the_scale(
    tmp_path: Path,
) -> None:
    """A run in fp16 keeps a GradScaler whose scale is in the checkpoint (> 1: the loss really was
    scaled); a step whose fp16 gradients overflow (the scale set to 2^60 just before it) leaves the
    weights as they were and halves the scale."""
    trainer = Trainer(config(tmp_path, data=str(FOLDER), model="resnet20", img_size=32, epochs=1, batch_size=8,
                             device="cuda", precision="fp16", eval_test=False))  # fmt: skip
    loader = trainer.loader("train", 32)
    original, seen = loader.iter_from, {}

    def watched(start: int):  # type: ignore[no-untyped-def]
        # the loop fetches one batch ahead: fetching batch k + 1 comes just before step k, k + 2 just after
        for i, batch in enumerate(original(start), start=start):
            if i == 3:  # before step 2
                seen["scale"] = trainer.scaler.get_scale()
                trainer.scaler.update(new_scale=2.0**60)
                seen["weights"] = [p.detach().clone() for p in trainer.model.parameters()]
            elif i == 4:  # after step 2
                seen["after"] = [p.detach().clone() for p in trainer.model.parameters()]
                seen["scale_after"] = trainer.scaler.get_scale()
            yield batch

    loader.iter_from = watched
    result = trainer.fit()
    assert result.status == "finished" and trainer.scaler.is_enabled()
    assert seen["scale"] > 1 and seen["scale_after"] == 2.0**59
    assert all(torch.equal(a, b) for a, b in zip(seen["weights"], seen["after"]))  # the step was skipped
    state = load_safe(result.run / "checkpoints" / "last.pt")
    assert state["scaler"]["scale"] > 1


def test_channels_last_on_the_gpu_gives_the_contiguous_logits(exact_fp32) -> None:  # type: ignore[no-untyped-def]
    model, x = _model_and_input("resnet18", batch=4)
    model, x = model.to(CUDA), x.to(CUDA)
    with torch.no_grad():
        plain = model(x)
        model.to(memory_format=torch.channels_last)
        last = model(x.to(memory_format=torch.channels_last))
    convs = [p for p in model.parameters() if p.dim() == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    assert (last - plain).abs().max() / plain.abs().max().clamp_min(1.0) < 1e-4


GPU_RUN = ["--data", str(FOLDER), "--model", "resnet20", "--img-size", "32", "--epochs", "3", "--batch-size", "8",
           "--device", "cuda", "--deterministic", "--channels-last", "on", "--val-fraction", "0.2", "--no-tensorboard",
           "--no-eval-test", "--no-progress"]  # fmt: skip


def gpu_train(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """``imgcls train`` on the GPU in a fresh process (cuBLAS's deterministic workspace is set before
    its first handle, as in a user's run), bf16 where the GPU has it, else fp16 with the scaler."""
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    r = subprocess.run([sys.executable, "-m", "imgcls", "train", *GPU_RUN, "--precision", precision, "--out", str(out),
                        *extra], capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gpu-run")
    r = gpu_train(out, "--name", "straight")
    assert "device: cuda" in r.stdout + r.stderr
    assert len(losses(out / "straight")) == 3 * (48 // 8)  # 60 images, 12 held out, batches of 8
    return out / "straight"


@pytest.mark.parametrize("stop", [2, 7])
def test_a_gpu_run_stopped_and_resumed_repeats_the_uninterrupted_one(
    tmp_path: Path, gpu_run: Path, stop: int
) -> None:
    """imgcls train --device cuda --deterministic, stopped after ``stop`` steps (its checkpoint
    written, the process gone) and resumed: the same per-step losses as the run never stopped, bit for bit."""
    gpu_train(tmp_path, "--name", "r", "--stop-after-steps", str(stop))
    assert len(losses(tmp_path / "r")) == stop
    r = subprocess.run([sys.executable, "-m", "imgcls", "train", "--resume", str(tmp_path / "r"), "--no-progress"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert losses(tmp_path / "r") == losses(gpu_run)


def test_a_gpu_run_predicts_the_same_on_the_cpu(gpu_run: Path, exact_fp32) -> None:  # type: ignore[no-untyped-def]
    images = sorted(str(p) for p in (FOLDER / "test").glob("*/*.jpg"))[:16]
    on_gpu = imgcls.load(gpu_run, device="cuda").predict_proba(images)
    on_cpu = imgcls.load(gpu_run).predict_proba(images)
    assert (on_gpu - on_cpu).abs().max() < 1e-4
    top2 = on_cpu.topk(2, dim=1).values
    clear = (top2[:, 0] - top2[:, 1]) > 1e-3  # a near tie may fall either way
    assert torch.equal(on_gpu.argmax(1)[clear], on_cpu.argmax(1)[clear])
    r = subprocess.run([sys.executable, "-m", "imgcls", "eval", str(gpu_run), "--data", str(FOLDER), "--no-progress"],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)  # fmt: skip
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("fmt", ["onnx", "pt2"])
def test_a_gpu_run_exports(gpu_run: Path, fmt: str) -> None:
    from imgcls.export import export

    result = export(gpu_run, fmt, dynamic_batch=True)
    assert result.max_diff <= 1e-4 and result.images == 8


def test_ddp_over_nccl_under_torchrun(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1", "-m", "imgcls", "train",
         "--data", str(FOLDER), "--model", "resnet20", "--img-size", "32", "--epochs", "1", "--batch-size", "8",
         "--device", "cuda", "--out", str(tmp_path), "--no-progress", "--sync-bn"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0 of 1 over nccl" in (r.stdout + r.stderr)
    assert json.loads((tmp_path / "resnet20" / "test_metrics.json").read_text())["images"] > 0


def test_the_data_path_finishes_batches_on_the_gpu() -> None:
    """A cached training loader given the GPU keeps its uint8 images there and augments and normalises
    them there, with the very draws of the CPU loader (the same pixels; normalisation within an ulp);
    a per-file loader hands the model pinned, device-side batches too."""
    from imgcls.data.loader import CachedLoader, FileLoader, make_loader
    from imgcls.data.pipeline import augment_preset
    from imgcls.data.source import open_source
    from imgcls.data.transforms import pre_for

    source = open_source(str(FOLDER))
    pre = pre_for("resnet20", img_size=32)
    aug = augment_preset("strong", 32, 3)
    aug.auto_augment, aug.alt_flip, aug.hflip = "none", True, 0.0

    def batches(device: torch.device | None, cache: bool) -> tuple[Any, list[Any]]:
        loader = make_loader(source, "train", pre, aug, 16, seed=3, cache=cache, device=device)
        loader.set_epoch(1)
        return loader, list(loader)

    _, cpu = batches(None, True)
    gpu_loader, gpu = batches(CUDA, True)
    assert isinstance(gpu_loader, CachedLoader) and gpu_loader.on_device is not None
    assert gpu_loader.on_device.device.type == "cuda"
    level = 1 / (
        255 * min(pre.std)
    )  # one grey level, normalised: the resized crop's rounding may differ by it
    for a, b in zip(cpu, gpu, strict=True):
        assert b.images.device.type == "cuda" and torch.equal(a.index, b.index)
        diff = (b.images.cpu() - a.images).abs()
        assert diff.max() <= 1.01 * level and (diff > 1e-5).float().mean() < 0.01
        assert torch.equal(a.targets, b.targets)
    file_loader, on_gpu = batches(CUDA, False)
    assert isinstance(file_loader, FileLoader)
    assert all(b.images.device.type == "cuda" for b in on_gpu)
