"""The speed-run parts (issue 17), for correctness not speed: the whitening layer against its
definition, alternating flips, held parameters, the biases' rate, test-time views, each preset for a
few steps, and the end-of-run time breakdown."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from imgcls import create_model
from imgcls.data.batch_aug import alternating_flips
from imgcls.data.loader import make_loader
from imgcls.data.pipeline import AugmentConfig, preprocess_for
from imgcls.data.source import open_source
from imgcls.engine.evaluate import tta_logits
from imgcls.engine.hooks import Hook
from imgcls.engine.optim import OptimConfig, build_optimizer
from imgcls.engine.trainer import Trainer, train
from imgcls.errors import ConfigError
from imgcls.models import list_models, model_info
from imgcls.models.airbench import PatchWhitening
from imgcls.recipes import load_preset, presets
from support import FOLDER, MNIST, cli, config


def cifar_images() -> torch.Tensor:
    """The fixture's real CIFAR-10 training JPEGs, normalised as airbench94 takes them."""
    source = open_source(str(FOLDER))
    pre = preprocess_for(model_info("airbench94"), 3)
    loader = make_loader(source, "train", pre, None, 64)
    return torch.cat([b.images for b in loader.iter_from(0)])


@pytest.mark.parametrize("eps", [5e-4, 1e-2])
def test_whitened_patches_have_identity_covariance_up_to_eps(eps: float) -> None:
    x = cifar_images()
    layer = PatchWhitening(3, 2, eps)
    eigenvalues = layer.fit(x)
    patches = PatchWhitening.patches(x.double(), 2)  # (windows, 12)
    w = layer.weight.double().view(24, 12)
    assert torch.equal(w[12:], -w[:12])  # each filter and its negative
    out = patches @ w[:12].T
    moment = out.T @ out / len(out)
    expected = torch.diag(eigenvalues / (eigenvalues + eps))  # the identity, up to eps
    torch.testing.assert_close(moment, expected, atol=1e-5, rtol=1e-5)  # float32 filters
    big = eigenvalues > 100 * eps
    assert big.sum() >= 1 and torch.allclose(
        moment.diagonal()[big], torch.ones(int(big.sum()), dtype=moment.dtype), atol=0.011
    )
    # and as the conv computes it (bias 0): the same numbers
    with torch.no_grad():
        layer.bias.zero_()
        conv = layer(x[:4].float()).permute(0, 2, 3, 1).reshape(-1, 24)[:, :12].double()
    torch.testing.assert_close(
        conv, PatchWhitening.patches(x[:4].double(), 2) @ w[:12].T, atol=1e-4, rtol=1e-4
    )


def test_the_whitening_weight_is_saved_not_trained() -> None:
    model = create_model("airbench94")
    assert "whiten.weight" in model.state_dict() and "whiten.weight" not in dict(model.named_parameters())
    assert "whiten.bias" in dict(model.named_parameters())


def test_alternating_flips_take_turns() -> None:
    index = torch.arange(4000)
    e0, e1, e2 = (alternating_flips(index, 7, e) for e in range(3))
    assert torch.equal(e1, ~e0) and torch.equal(e2, e0)  # every image both ways in two epochs in a row
    assert 0.45 < e0.float().mean() < 0.55  # a seeded half first
    other = alternating_flips(index, 8, 0)
    assert 0.4 < (other == e0).float().mean() < 0.6  # another seed, another half
    with pytest.raises(ConfigError, match="hflip"):
        AugmentConfig(alt_flip=True, hflip=0.5)


@pytest.mark.parametrize("cached", [True, False])
def test_the_loaders_mirror_exactly_the_alternating_half(cached: bool) -> None:
    """The cached (tensor) path and the per-image path mirror the same images in each epoch."""
    source = open_source(str(FOLDER))
    pre = preprocess_for(model_info("airbench94"), 3)
    aug = AugmentConfig(alt_flip=True)
    plain = make_loader(source, "train", pre, None, 64, cache=cached)
    flipping = make_loader(source, "train", pre, aug, 64, shuffle=False, cache=cached, seed=3)
    x = torch.cat([b.images for b in plain.iter_from(0)])
    for epoch in (0, 1):
        flipping.set_epoch(epoch)
        batches = list(flipping.iter_from(0))
        got = torch.cat([b.images for b in batches])
        index = torch.cat([b.index for b in batches])
        mask = alternating_flips(index, 3, epoch)
        expected = torch.where(mask.view(-1, 1, 1, 1), x[index].flip(-1), x[index])
        torch.testing.assert_close(got, expected)


def test_held_parameters_do_not_move(tmp_path: Path) -> None:
    """Batch-norm scales stay 1; the whitening bias trains in its first epoch(s) only."""
    cfg = config(tmp_path, data=f"mnist:{MNIST}", model="airbench_mnist", epochs=3, batch_size=16, optimizer="sgd",
                 lr=0.5, bias_lr_scale=4.0, model_args={"whiten_bias_epochs": 1}, eval_test=False)  # fmt: skip
    t = Trainer(cfg)
    biases = []

    class Watch(Hook):
        def epoch_end(self, t: Trainer, record: dict) -> bool:
            biases.append(t.model.whiten.bias.detach().clone())
            return False

    hooks = t.default_hooks
    t.default_hooks = lambda: [*hooks(), Watch()]
    start = t.model.whiten.bias.detach().clone()
    t.fit()
    norms = [m for m in t.model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and all(torch.all(m.weight == 1) for m in norms)
    assert not torch.equal(biases[0], start)  # trained in epoch 0
    assert torch.equal(biases[1], biases[0]) and torch.equal(biases[2], biases[0])  # held after


def test_biases_get_their_own_rate() -> None:
    model = create_model("airbench94")
    opt = build_optimizer(model, OptimConfig(optimizer="sgd", lr=0.1, bias_lr_scale=64.0, weight_decay=1e-3))
    by_id = {id(p): g for g in opt.param_groups for p in g["params"]}
    names = dict(model.named_parameters())
    assert by_id[id(names["whiten.bias"])]["lr"] == pytest.approx(6.4)
    assert by_id[id(names["blocks.0.norm1.bias"])]["weight_decay"] == 0.0
    conv = by_id[id(names["blocks.0.conv1.weight"])]
    assert conv["lr"] == pytest.approx(0.1) and conv["weight_decay"] == 1e-3


def test_test_time_views_are_the_stated_averages() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.LazyLinear(5)).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        model(x)
        flip = tta_logits(model, x, "flip")
        torch.testing.assert_close(flip, (model(x) + model(x.flip(-1))) / 2)
        both = tta_logits(model, x, "flip-shift")
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
        down, up = padded[..., :8, :8], padded[..., 2:, 2:]
        assert torch.equal(down[..., 1:, 1:], x[..., :7, :7]) and torch.equal(up[..., :7, :7], x[..., 1:, 1:])
        assert torch.equal(down[..., 0, 1:], x[..., 1, :7])  # airbench's border: mirrored, not repeated
        expected = flip / 2 + tta_logits(model, down, "flip") / 4 + tta_logits(model, up, "flip") / 4
        torch.testing.assert_close(both, expected)


def test_the_presets_are_complete_recipes() -> None:
    assert {"cifar10-speedrun", "mnist-speedrun"} <= set(presets())
    for name in presets():
        recipe = load_preset(name)
        if name == "finetune":  # imgcls finetune's defaults, over whatever model and weights are given
            assert recipe == {"model": {"freeze": "backbone", "freeze_epochs": 1}, "optim": {"layer_decay": 0.85},
                              "sched": {"warmup_epochs": 0.5}}  # fmt: skip
            continue
        assert recipe["model"]["arch"] in list_models() and recipe["epochs"] > 0
    with pytest.raises(ConfigError, match="cifar10-speedrun"):
        load_preset("cifar10-speedrn")


@pytest.mark.parametrize(
    ("preset", "data", "model"),
    [("cifar10-speedrun", str(FOLDER), "airbench94"), ("mnist-speedrun", f"mnist:{MNIST}", "airbench_mnist")],
)
def test_each_preset_trains_a_few_steps(tmp_path: Path, preset: str, data: str, model: str) -> None:
    r = cli("train", "--preset", preset, "--data", data, "--epochs", "2", "--batch-size", "16", "--out",
            str(tmp_path), "--no-progress", "--no-tensorboard", "--precision", "fp32", "--channels-last", "off", "--lr", "0.05")  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = tmp_path / model
    cfg = (run / "config.yaml").read_text()
    assert f"arch: {model}" in cfg and "optimizer: sgd" in cfg and "bias_lr_scale: 64.0" in cfg
    # config.yaml says where its values came from: the preset, and the options over it
    head = dict(line[4:].split(": ", 1) for line in cfg.splitlines() if line.startswith("#   "))
    assert "optim.bias_lr_scale" in head[f"preset {preset}"].split(", ")
    assert set(head["command line"].split(", ")) >= {
        "epochs",
        "batch_size",
        "optim.lr",
        "data.source",
        "precision",
    }
    assert "optim.lr" not in head[f"preset {preset}"].split(", ")  # --lr 0.05 came last
    n_train = len(open_source(data).with_val(load_preset(preset)["data"]["val_fraction"], 0).split("train"))
    assert f"imgcls: model: {model} fitted to {n_train:,} training images (its whitening layer)" in r.stdout
    test = json.loads((run / "test_metrics.json").read_text())
    assert 0.0 <= test["acc"] <= 1.0 and np.isfinite(test["loss"])
    if preset == "cifar10-speedrun":
        assert test["tta"] == "flip-shift" and "alt_flip: true" in cfg
        # one vocabulary: imgcls eval with the run's test-time views gives the figure the run recorded
        out = tmp_path / "eval"
        e = cli("eval", str(run), "--tta", "flip-shift", "--out", str(out), "--no-report", "--no-progress")
        assert e.returncode == 0, e.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["split"] == "test" and metrics["tta"] == "flip-shift"
        assert metrics["accuracy"] == test["acc"]
    # the end-of-run breakdown, printed and written
    line = next(x for x in r.stdout.splitlines() if x.startswith("time: "))
    timings = json.loads((run / "timings.json").read_text())
    assert set(timings) == {"total", "startup", "data", "train", "eval", "checkpoint", "other"}
    parts = sum(v for k, v in timings.items() if k != "total")
    assert abs(parts - timings["total"]) < 0.05 * timings["total"] + 0.01
    assert f"{timings['total']:.1f} s = start-up {timings['startup']:.1f} s" in line


def test_the_whitening_is_fitted_from_the_training_images(tmp_path: Path) -> None:
    result = train(config(tmp_path, data=f"mnist:{MNIST}", model="airbench_mnist", epochs=1, batch_size=16,
                          eval_test=False))  # fmt: skip
    from imgcls.fileio import load_safetensors

    state, _ = load_safetensors(result.run / "model.safetensors")
    fresh = create_model("airbench_mnist").state_dict()["whiten.weight"]
    assert not torch.equal(state["whiten.weight"], fresh)  # fitted, and saved with the weights


def test_a_warm_up_fraction_follows_the_length_of_the_run() -> None:
    from imgcls.engine.schedule import ScheduleConfig, Scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = ScheduleConfig(schedule="linear", warmup_fraction=0.25, warmup_start=0.2, min_lr=0.1)
    s = Scheduler(opt, cfg, 1.0, total_steps=100, steps_per_epoch=10)
    assert s.warmup == 25 and s.factor(0) == pytest.approx(0.2) and s.factor(25) == pytest.approx(1.0)
    assert s.factor(100) == pytest.approx(0.1)  # linear to min_lr at the end
    s.set_total(200)  # --budget re-plans the run: the warm-up follows
    assert s.warmup == 50


def test_checkpoints_never_cost_more_than_their_share() -> None:
    """A save that costs more than 5 % of the time since the last one waits; the last epoch is saved."""
    import time

    from imgcls.engine.hooks import Checkpoint

    saves: list[int] = []
    t = SimpleNamespace(budget=None, cfg=SimpleNamespace(epochs=4), state=SimpleNamespace(epoch=0, batch=0))

    def slow_save() -> None:
        time.sleep(0.05)
        saves.append(t.state.epoch)

    t.save = slow_save
    hook = Checkpoint(0)
    for epoch in range(1, 5):  # epochs far shorter than 20 x a save
        t.state.epoch = epoch
        hook.epoch_end(t, {})
    assert saves == [1, 4]  # the first (nothing known yet), then only the last
    hook.end(t, "finished")
    assert saves == [1, 4]  # already saved where it ended
    t.state.epoch = 5  # a budget run ends where no epoch-end save happened
    hook.end(t, "finished")
    assert saves == [1, 4, 5]
    time.sleep(1.5 * 0.05 / Checkpoint.SHARE)
    t.state.epoch, t.cfg.epochs = 6, 10
    hook.epoch_end(t, {})  # enough time has passed
    assert saves[-1] == 6
