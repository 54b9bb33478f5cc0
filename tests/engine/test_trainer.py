"""Training end to end on small real fixtures: the run folder, exact resume, kills, signals,
non-finite losses, unsafe checkpoints, tasks, and the MNIST acceptance run."""

from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from imgcls.engine.config import TrainConfig
from imgcls.engine.trainer import Trainer, train
from imgcls.fileio import load_safe, load_safetensors
from support import FIXTURES, FOLDER, MNIST, ROOT, cli, config, losses


def test_run_folder_describes_itself(tmp_path: Path) -> None:
    result = train(
        config(tmp_path, data=f"mnist:{MNIST}", model="lenet5", epochs=2, batch_size=16, tensorboard=True)
    )
    run = result.run
    assert result.status == "finished" and result.step == 2 * 3  # 58 train images (6 held out), 16 a batch
    for name in (
        "config.yaml",
        "labels.json",
        "metrics.jsonl",
        "steps.jsonl",
        "checkpoints/last.pt",
        "model.safetensors",
        "test_metrics.json",
    ):
        assert (run / name).is_file(), name
    cfg = (run / "config.yaml").read_text()
    assert (
        "img_size: 32" in cfg
        and "color_space: gray" in cfg
        and "precision: fp32" in cfg
        and "pad_crop: 2" in cfg
    )
    assert json.loads((run / "labels.json").read_text()) == [str(i) for i in range(10)]
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [0, 1] and {"loss", "acc", "top5"} <= set(epochs[0]["val"])
    _, meta = load_safetensors(run / "model.safetensors")
    assert meta["model"] == "lenet5" and meta["classes"][0] == "0" and meta["preprocess"]["size"] == 32
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert {"train/loss_step", "val/acc", "train/lr"} <= set(events.Tags()["scalars"])
    assert len(events.Scalars("train/loss_step")) == 6


def resume_config(tmp_path: Path, workers: int, **extra: object) -> TrainConfig:
    """72 px: decoded per image by the file loader (so workers matter); strong augmentation: RRC,
    TrivialAugment, random erasing, mixup / cutmix; dropout draws from the global RNG."""
    base = {"data": str(FOLDER), "model": "resnet20", "img_size": 72, "epochs": 3, "batch_size": 16, "workers": workers,
            "augment": "strong", "model_args": {"drop_rate": "0.3"}, "val_fraction": 0.2, "eval_test": False,
            "tensorboard": False}  # fmt: skip
    return config(tmp_path, **{**base, **extra})


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """The uninterrupted runs, one per worker count."""
    runs = {}
    for workers in (0, 2):
        result = train(resume_config(tmp_path_factory.mktemp(f"straight{workers}"), workers))
        assert result.step == 9
        runs[workers] = result.run
    return runs


def val_scores(run: Path) -> list[dict]:
    return [json.loads(x)["val"] for x in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize(
    "stop", [1, 4, 6]
)  # the first batch, mid-epoch (epoch 2), the last batch of an epoch
def test_exact_resume(tmp_path: Path, straight: dict[int, Path], workers: int, stop: int) -> None:
    """N steps straight == K steps with ``workers``, stop, resume with the other worker count (0 -> 2,
    2 -> 0): the same per-step losses and val scores, bit for bit."""
    first = train(resume_config(tmp_path, workers, stop_after_steps=stop))
    assert first.status == "stopped" and first.step == stop
    other = 2 - workers
    resumed = train(config(tmp_path / "unused", resume=str(first.run), workers=other))
    assert resumed.status == "finished"
    assert losses(resumed.run) == losses(straight[other])
    assert losses(straight[0]) == losses(straight[2])
    assert val_scores(resumed.run) == val_scores(straight[other])


RESUME_OPTIONS = {
    "ema-accum-bf16": {"ema": "0.9", "accum_steps": "2", "precision": "bf16", "channels_last": "on"},
    "sam-plateau-lookahead": {
        "sam": "0.05",
        "schedule": "plateau",
        "plateau_patience": "0",
        "lookahead": "2",
    },
    "airbench-lookahead-ema-no-val": {  # the average of weights and BN statistics; every image trains
        "lookahead_ema": "3",
        "keep": "last",
        "val_fraction": "0",
        "optimizer": "sgd",
        "decay_norm_bias": "true",
        "bias_lr_scale": "4",
        "bias_lr_on": "norms",
    },
}


@pytest.mark.parametrize("options", RESUME_OPTIONS, ids=str)
def test_exact_resume_with_options(tmp_path: Path, options: str) -> None:
    """What these options keep between steps (EMA weights, the accumulation's batch position, bf16
    autocast, SAM's second pass, the plateau's count, Lookahead's slow weights) survives a stop
    mid-epoch (batches of 8: 5 per epoch), resumed with another worker count."""
    from imgcls.engine.precision import cpu_has_bf16

    extra = RESUME_OPTIONS[options]
    if extra.get("precision") == "bf16" and not cpu_has_bf16():
        pytest.skip("this CPU has no bf16")
    straight = train(resume_config(tmp_path / "straight", 2, batch_size=8, **extra))
    stop = 2 if "accum_steps" in extra else 7  # epoch 1 after 4 of its 5 batches / epoch 2 after 2
    first = train(resume_config(tmp_path / "first", 0, batch_size=8, stop_after_steps=stop, **extra))
    resumed = train(config(tmp_path / "unused", resume=str(first.run), workers=2))
    assert resumed.status == "finished" and resumed.step == straight.step
    assert losses(resumed.run) == losses(straight.run)
    assert val_scores(resumed.run) == val_scores(straight.run)
    a, _ = load_safetensors(straight.run / "model.safetensors")
    b, _ = load_safetensors(resumed.run / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_kill_at_random_moments(tmp_path: Path) -> None:
    """SIGKILL 20 times at random moments (saves included): the newest checkpoint always loads and a
    resumed run leaves no temporary files."""
    rng = random.Random(0)
    run = tmp_path / "runs" / "lenet5"
    base = ["train", "--out", str(tmp_path / "runs"), "--no-progress", "--no-tensorboard", "--precision", "fp32",
            "--channels-last", "off"]  # fmt: skip
    first = [
        *base,
        "--data",
        f"mnist:{MNIST}",
        "--model",
        "lenet5",
        "--epochs",
        "400",
        "--batch-size",
        "8",
        "--save-every",
        "1",
    ]
    last = run / "checkpoints" / "last.pt"
    for kill in range(20):
        args = first if not last.is_file() else [*base, "--resume", str(run)]
        before = last.stat().st_mtime_ns if last.is_file() else 0
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgcls", *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if kill % 4 == 3 and last.is_file():
            time.sleep(rng.uniform(0.1, 2.0))  # during start-up or the first steps
        else:  # once this process has saved at least once: somewhere in the loop, saves included
            deadline = time.time() + 120
            while (not last.is_file() or last.stat().st_mtime_ns == before) and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))
        proc.kill()
        proc.wait()
        state = load_safe(last)
        assert all(torch.isfinite(v).all() for v in state["model"].values())
    steps_before = load_safe(run / "checkpoints" / "last.pt")["position"]["step"]
    assert steps_before > 0
    proc = subprocess.Popen([sys.executable, "-m", "imgcls", *base, "--resume", str(run), "--stop-after-steps", str(steps_before + 3)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert not list(run.rglob("*.tmp-*"))
    assert load_safe(run / "checkpoints" / "last.pt")["position"]["step"] == steps_before + 3


def test_sigterm_saves_and_resumes(tmp_path: Path) -> None:
    args = ["train", "--data", f"mnist:{MNIST}", "--model", "lenet5", "--epochs", "300", "--batch-size", "8",
            "--out", str(tmp_path), "--no-progress", "--no-tensorboard", "--precision", "fp32", "--channels-last", "off",
            "--save-every", "5"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgcls", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    last = tmp_path / "lenet5" / "checkpoints" / "last.pt"
    deadline = time.time() + 60
    while not last.is_file() and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "SIGTERM" in err and "resume with: imgcls train --resume" in out
    step = load_safe(last)["position"]["step"]
    r = cli(
        "train", "--resume", str(tmp_path / "lenet5"), "--stop-after-steps", str(step + 2), "--no-progress"
    )
    assert r.returncode == 0, r.stderr
    # two signals: the second exits at once
    proc = subprocess.Popen([sys.executable, "-m", "imgcls", *args[:-2], "--name", "twice"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 60
    while not (tmp_path / "twice" / "config.yaml").is_file() and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGTERM)  # a different signal: two of the same kind may arrive as one
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "exiting now" in err


def test_a_nan_batch_is_skipped_and_counted(tmp_path: Path) -> None:
    trainer = Trainer(
        config(tmp_path, data=f"mnist:{MNIST}", model="lenet5", epochs=1, batch_size=8, eval_test=False)
    )
    loader = trainer.loader("train", 32)
    original = loader.iter_from

    def poisoned(start: int):
        for i, batch in enumerate(original(start), start=start):
            if i == 2:
                batch.images = torch.full_like(batch.images, float("nan"))
            yield batch

    loader.iter_from = poisoned
    batches = len(loader)
    result = trainer.fit()
    assert result.status == "finished" and result.step == batches - 1  # one batch skipped
    record = json.loads((result.run / "metrics.jsonl").read_text())
    assert record["skipped_steps"] == 1
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values())


def test_divergence_stops_with_a_clear_message_and_finite_checkpoint(tmp_path: Path) -> None:
    r = cli("train", "--data", f"mnist:{MNIST}", "--model", "lenet5", "--epochs", "3", "--batch-size", "8", "--lr", "1e10",
            "--optimizer", "sgd", "--out", str(tmp_path), "--no-progress", "--precision", "fp32", "--channels-last", "off",
            "--save-every", "1")  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert "not finite for 5 steps in a row" in r.stderr and "Lower the learning rate" in r.stderr
    state = load_safe(tmp_path / "lenet5" / "checkpoints" / "last.pt")
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (tmp_path / "lenet5" / "model.safetensors").exists()  # never saved as best


def test_resume_refuses_a_checkpoint_that_runs_code(tmp_path: Path, code_pickle) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "pwned"
    result = train(
        config(tmp_path, data=f"mnist:{MNIST}", model="lenet5", epochs=1, batch_size=16, stop_after_steps=1)
    )
    with open(result.run / "checkpoints" / "last.pt", "wb") as f:
        pickle.dump({"model": code_pickle(marker)}, f)
    r = cli("train", "--resume", str(result.run), "--no-progress")
    assert r.returncode == 2 and "refusing" in r.stderr and not marker.exists()


def test_multilabel_run(tmp_path: Path) -> None:
    result = train(config(tmp_path, data=str(FIXTURES / "labels" / "multilabel.csv"), model="resnet20", epochs=1,
                          batch_size=16, pos_weight="auto", augment="strong"))  # fmt: skip
    assert result.status == "finished" and "f1" in result.best and "f1" in result.test
    _, meta = load_safetensors(result.run / "model.safetensors")
    assert meta["task"] == "multilabel" and meta["num_outputs"] == 4


def test_binary_run_with_focal_loss(tmp_path: Path) -> None:
    data = tmp_path / "catdog"
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            (data / split).mkdir(parents=True, exist_ok=True)
            os.symlink(FOLDER / split / cls, data / split / cls)
    result = train(
        config(
            tmp_path,
            data=str(data),
            model="resnet20",
            epochs=2,
            batch_size=4,
            loss="focal",
            val_fraction=0.25,
        )
    )
    assert result.status == "finished" and 0 <= result.test["acc"] <= 1
    _, meta = load_safetensors(result.run / "model.safetensors")
    assert meta["task"] == "binary" and meta["num_outputs"] == 1


@pytest.mark.parametrize(
    "options, state_key",
    [
        (
            {"optimizer": "sgd", "nesterov": "true", "schedule": "onecycle", "onecycle_pct": "0.25"},
            "momentum_buffer",
        ),
        ({"optimizer": "rmsprop", "schedule": "step", "step_every": "1", "step_gamma": "0.5"}, "square_avg"),
        ({"optimizer": "adamw", "schedule": "cosine", "warmup_epochs": "1", "min_lr": "0.001"}, "exp_avg_sq"),
    ],
    ids=["sgd-nesterov-onecycle", "rmsprop-step", "adamw-warmup-cosine"],
)
def test_a_run_steps_with_the_optimiser_and_schedule_it_names(
    tmp_path: Path, options: dict, state_key: str
) -> None:
    """What test_parts proves of each schedule and optimiser by its definition, in a real run: every
    step's logged rate is the named schedule's rate at that step, and the checkpoint holds the named
    optimiser's state (Nesterov's flag in its groups)."""
    from imgcls.config import from_dict, load_yaml
    from imgcls.engine.config import TrainConfig
    from imgcls.engine.schedule import Scheduler

    result = train(config(tmp_path, data=f"mnist:{MNIST}", model="lenet5", epochs=2, batch_size=8, **options))
    cfg = from_dict(TrainConfig, load_yaml(result.run / "config.yaml"))
    logged = [json.loads(line)["lr"] for line in (result.run / "steps.jsonl").read_text().splitlines()]
    per_epoch = len(logged) // 2
    assert per_epoch >= 5 and len(logged) == 2 * per_epoch
    reference = Scheduler(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))]), cfg.sched, cfg.optim.lr,
                          len(logged), per_epoch)  # fmt: skip
    expected = []
    for _ in logged:
        reference.step()
        expected.append(reference.lr)
    assert logged == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert len(set(logged)) > 2  # the rate moved: a schedule that did nothing would not pass
    state = load_safe(result.run / "checkpoints" / "last.pt")["optimizer"]
    assert state["state"] and all(state_key in s for s in state["state"].values())
    assert all(g["lr"] == pytest.approx(expected[-1] * g.get("lr_scale", 1.0)) for g in state["param_groups"])
    assert all(g.get("nesterov", False) for g in state["param_groups"]) == (options.get("nesterov") == "true")


def test_class_weights_and_the_balanced_sampler_are_inverse_class_frequencies(tmp_path: Path) -> None:
    """--class-weights auto weighs each class's loss by its inverse frequency in the training split,
    --balanced-sampler draws each image with its class's inverse frequency (the loader's draws:
    tests/data/test_loader.py), and the trainer's training loader is the one given the weights."""
    from imgcls.engine.resolve import prepare, resolve
    from imgcls.tasks import class_weights_auto

    images = sorted((FOLDER / "train").glob("*/*.jpg"))
    data = tmp_path / "data"
    chosen = {"a": [p for p in images if p.parent.name not in ("cat", "dog")][:24],
              "b": [p for p in images if p.parent.name == "cat"], "c": [p for p in images if p.parent.name == "dog"]}  # fmt: skip
    for name, files in chosen.items():
        (data / name).mkdir(parents=True)
        for i, src in enumerate(files):
            (data / name / f"{i}.jpg").write_bytes(src.read_bytes())
    cfg = config(tmp_path, data=str(data), model="resnet20", img_size=32, epochs=1, batch_size=8, val_fraction=0,
                 class_weights="auto", balanced_sampler=True)  # fmt: skip
    plan = resolve(cfg)
    targets = torch.from_numpy(plan.source.split("train").targets)
    assert torch.bincount(targets).tolist() == [24, 6, 6]
    assert torch.equal(plan.task.class_weights, class_weights_auto(targets, 3))
    assert plan.task.class_weights[1] / plan.task.class_weights[0] == pytest.approx(4.0)
    assert plan.sample_weights is not None and plan.sample_weights.sum() == pytest.approx(1.0)
    per_class = [plan.sample_weights[targets.numpy() == c].sum() for c in (0, 1, 2)]
    assert per_class == pytest.approx([1 / 3] * 3)  # each class drawn as often
    loader = Trainer(prepare(plan)).loader("train", 32)
    loader.set_epoch(0)
    drawn = torch.cat([b.index for b in loader])
    assert 0.45 < (targets[drawn] > 0).float().mean() < 0.9  # a third of the images, two thirds of the draws


def test_bad_images_skip_report_in_the_run(tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(FOLDER / "train", data)
    shutil.copy(FIXTURES / "images" / "bad" / "truncated.jpg", data / "cat" / "truncated.jpg")
    r = cli("train", "--data", str(data), "--model", "resnet20", "--epochs", "1", "--out", str(tmp_path / "runs"),
            "--no-progress", "--precision", "fp32", "--channels-last", "off", "--batch-size", "8")  # fmt: skip
    assert r.returncode == 2 and "truncated.jpg" in r.stderr and "--on-bad-image=skip" in r.stderr
    r = cli("train", "--data", str(data), "--model", "resnet20", "--epochs", "1", "--out", str(tmp_path / "runs"), "--name", "skip",
            "--no-progress", "--precision", "fp32", "--channels-last", "off", "--on-bad-image", "skip", "--max-bad-fraction", "0.1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "truncated.jpg" in (tmp_path / "runs" / "skip" / "bad_images.csv").read_text()


def test_mnist_one_epoch_reaches_98_5_percent(mnist_run: Path) -> None:
    """The acceptance run, with the defaults: imgcls train --data mnist:data/mnist --model lenet5 --epochs 1."""
    test = json.loads((mnist_run / "test_metrics.json").read_text())
    assert test["acc"] >= 0.985 and test["images"] == 10_000
