"""A first run that needs no model name, and sane results on small sets: the default model picked
from the data, batch-norm statistics recomputed before evaluation when an epoch has few steps, and
'best' ties broken by the lower loss."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from imgcls.data.source import open_source
from imgcls.engine.bn_stats import recompute, training_norms
from imgcls.engine.hooks import BestWeights
from imgcls.engine.trainer import TrainState, train
from imgcls.models.default import default_model
from imgcls.tasks import Task
from support import FOLDER, MNIST, cli, config


def photo_folder(root: Path, per_class: int = 60) -> Path:
    """A two-class folder of JPEGs of mixed sizes (96 to 160 px): real MNIST 0s and 1s, enlarged and
    tinted, standing in for a small photo set."""
    images = open_source(f"mnist:{MNIST}").split("train")
    rng = np.random.default_rng(0)
    for label, name in ((0, "zero"), (1, "one")):
        (root / name).mkdir(parents=True)
        index = np.flatnonzero(images.targets == label)
        for k in range(per_class):
            digit = images.images[index[k % len(index)]]
            w, h = (int(v) for v in rng.integers(96, 161, 2))
            tint = rng.integers(80, 256, 3)
            rgb = (digit[..., None].astype(np.float32) / 255 * tint).astype(np.uint8)
            Image.fromarray(rgb).resize((w, h), Image.Resampling.BICUBIC).save(root / name / f"{k:03d}.jpg")
    return root


def test_the_default_model_follows_the_data(tmp_path: Path) -> None:
    name, why = default_model(open_source(f"mnist:{MNIST}"))
    assert name == "resnet20" and "28 px" in why and "64 training images" in why
    name, why = default_model(open_source(str(photo_folder(tmp_path / "photos", per_class=4))))
    assert name == "resnet18" and "8 training images" in why and "224 px" in why
    side = int(why.split("of about ")[1].split(" px")[0])
    assert 96 <= side <= 160


def test_train_without_a_model_name_picks_one_and_says_so(tmp_path: Path) -> None:
    r = cli("train", "--data", str(FOLDER), "--epochs", "1", "--batch-size", "16", "--out", str(tmp_path),
            "--no-progress", "--no-tensorboard", "--precision", "fp32")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "imgcls: model: resnet20 (no --model given; " in r.stdout and "32 px" in r.stdout
    run = tmp_path / "resnet20"
    assert "arch: resnet20" in (run / "config.yaml").read_text()
    assert (run / "model.safetensors").is_file() and (run / "test_metrics.json").is_file()


def test_no_data_is_refused_before_the_missing_model(tmp_path: Path) -> None:
    r = cli("train", "--out", str(tmp_path))
    assert r.returncode != 0 and "no data given" in r.stderr


def test_recomputed_statistics_are_the_training_images_averages() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
    model.train()
    batches = [torch.randn(8, 3, 6, 6) * (i + 1) + i for i in range(3)]
    seen = recompute(model, training_norms(model), batches, torch.device("cpu"), "fp32", False)
    assert seen == 24
    with torch.no_grad():
        outs = [model[0](b) for b in batches]
    bn = model[1]
    means = torch.stack([o.mean((0, 2, 3)) for o in outs])
    variances = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outs])
    torch.testing.assert_close(bn.running_mean, means.mean(0))  # every batch counts the same
    torch.testing.assert_close(bn.running_var, variances.mean(0))
    assert bn.momentum == 0.1 and model.training and model[2].training  # modes and momentum restored


def test_frozen_norms_keep_their_statistics() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.BatchNorm2d(4))
    model.train()
    model[2].eval()  # frozen
    model[2].running_mean.fill_(3.0)
    names = training_norms(model)
    assert names == ["1"]
    recompute(model, names, [torch.randn(4, 3, 6, 6)], torch.device("cpu"), "fp32", False)
    assert torch.all(model[2].running_mean == 3.0) and not model[2].training


def _val_losses(run: Path) -> list[float]:
    return [json.loads(line)["val"]["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_small_set_from_scratch_ends_with_a_sane_best_checkpoint(tmp_path: Path) -> None:
    """108 training images, 7 steps an epoch, ResNet-18 from scratch: with the running averages of
    7 steps the validation loss is far from sane; recomputed, it is that of a real classifier."""
    photos = photo_folder(tmp_path / "photos")
    common = dict(data=str(photos), model="resnet18", img_size=96, epochs=3, batch_size=16)
    on = train(config(tmp_path, name="on", **common))
    off = train(config(tmp_path, name="off", bn_recompute="off", **common))
    assert "bn_recompute: 'on'" in (on.run / "config.yaml").read_text()  # auto decided, and recorded
    sane = _val_losses(on.run)
    assert all(math.isfinite(v) and v < 2.0 for v in sane), sane  # ln 2 = 0.69 is chance
    assert max(_val_losses(off.run)) > 5 * max(sane), (_val_losses(off.run), sane)
    assert math.isfinite(on.best["loss"]) and on.best["loss"] < 2.0


def test_many_steps_per_epoch_leave_the_statistics_to_the_running_averages(tmp_path: Path) -> None:
    result = train(config(tmp_path, data=f"mnist:{MNIST}", model="resnet20", epochs=1, batch_size=1,
                          stop_after_steps=1))  # fmt: skip
    assert "bn_recompute: 'off'" in (result.run / "config.yaml").read_text()  # 58 steps per epoch


@pytest.mark.parametrize("kind", ["multiclass", "multilabel"])
def test_ties_in_the_score_are_broken_by_the_lower_loss(kind: str) -> None:
    """The issue's run: 0.54 / 0.54 / 0.52 with losses 310,352 / 1,841 / 40.9 keeps epoch 2, not 1."""
    score = "f1" if kind == "multilabel" else "acc"
    saved: list[int] = []
    t = SimpleNamespace(task=Task(kind, 3), state=TrainState(), cfg=SimpleNamespace(keep="best"))
    t.save_best = lambda: saved.append(t.state.best["epoch"])
    hook = BestWeights()
    for epoch, (value, loss) in enumerate([(0.54, 310_352.0), (0.54, 1_841.0), (0.52, 40.9)]):
        hook.epoch_end(t, {"epoch": epoch, "val": {score: value, "loss": loss}})
    assert saved == [0, 1] and t.state.best["epoch"] == 1 and t.state.stale_epochs == 1
