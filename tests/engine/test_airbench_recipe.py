"""airbench94's recipe, component by component against its definition (issue 28): the Lookahead-EMA,
the decoupled rates and weight decay of each parameter group, the reflected translate, training on
every image with the last weights kept, and the presets built on cifar10-94."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgcls import create_model
from imgcls.config import from_dict
from imgcls.data import batch_aug
from imgcls.data.transforms import PadCrop
from imgcls.engine.optim import LookaheadEMA, OptimConfig, build_optimizer, param_groups
from imgcls.engine.trainer import train
from imgcls.errors import ConfigError
from imgcls.recipes import load_preset
from support import FOLDER, config

# airbench94's hyper-parameters as its script states them: per 1024 images of a summed loss,
# divided by 1 + 1 / (1 - momentum) ("kilostep scale")
AIRBENCH = {"lr": 11.5, "weight_decay": 0.0153, "momentum": 0.85, "bias_scaler": 64.0, "batch": 1024}


def airbench_rates() -> tuple[float, float, float]:
    """(lr, lr of the norm biases, weight decay per step) for SGD on airbench's summed loss."""
    kilostep = 1024 * (1 + 1 / (1 - AIRBENCH["momentum"]))
    lr = AIRBENCH["lr"] / kilostep
    return lr, lr * AIRBENCH["bias_scaler"], AIRBENCH["weight_decay"] * AIRBENCH["batch"] / kilostep


# ---- the Lookahead-EMA ----------------------------------------------------------------------------


def test_lookahead_ema_after_k_steps_equals_its_formula() -> None:
    """Plain SGD (no momentum: the weights are the whole state) beside a twin without the EMA: at step k
    the model becomes d * start + (1 - d) * (the twin's weights), d = 0.95^k (k/total)^3; batch-norm
    statistics are averaged too; the batch count is not; the last step ends on the average."""
    torch.manual_seed(0)
    k, total = 3, 7
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    twin = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 3))
    twin.load_state_dict(model.state_dict())
    ema = LookaheadEMA(model, every=k)
    start = {n: v.clone() for n, v in model.state_dict().items()}
    opt_m = torch.optim.SGD(model.parameters(), lr=0.3)
    opt_t = torch.optim.SGD(twin.parameters(), lr=0.3)
    data = [(torch.randn(16, 4), torch.randint(0, 3, (16,))) for _ in range(total)]

    def step(net: nn.Module, opt: torch.optim.Optimizer, s: int) -> None:
        x, y = data[s]
        F.cross_entropy(net(x), y).backward()
        opt.step()
        opt.zero_grad()

    for s in range(k):
        step(model, opt_m, s)
        step(twin, opt_t, s)
        ema.update(model, s + 1, total)
        if s + 1 < k:  # nothing happens between pulls
            assert all(torch.equal(model.state_dict()[n], twin.state_dict()[n]) for n in start)
    d = 0.95**k * (k / total) ** 3
    for name, value in model.state_dict().items():
        if name.endswith("num_batches_tracked"):
            assert torch.equal(value, twin.state_dict()[name])
        else:  # weights and running statistics alike
            torch.testing.assert_close(value, d * start[name] + (1 - d) * twin.state_dict()[name])
    average = {n: v.clone() for n, v in model.state_dict().items()}
    for s in range(k, total):  # step 6 pulls again, and step 7 (the last) copies the average in
        step(model, opt_m, s)
        ema.update(model, s + 1, total)
    assert all(torch.equal(model.state_dict()[n], ema.average[n]) for n in ema.average)
    assert not torch.equal(model.state_dict()["0.weight"], average["0.weight"])


def test_lookahead_ema_decay_rises_as_the_cube_of_progress() -> None:
    ema = LookaheadEMA(nn.Linear(2, 2), every=5)
    assert ema.decay(0, 476) == 0.0
    assert ema.decay(476, 476) == pytest.approx(0.95**5)
    assert ema.decay(238, 476) == pytest.approx(0.95**5 / 8)
    with pytest.raises(ConfigError, match="lookahead"):
        build_optimizer(nn.Linear(2, 2), OptimConfig(lookahead=5, lookahead_ema=5))


def test_a_run_ends_on_the_lookahead_average(tmp_path: Path) -> None:
    from imgcls.engine.trainer import Trainer

    t = Trainer(config(tmp_path, data=str(FOLDER), model="resnet20", img_size=32, epochs=2, batch_size=16,
                       optimizer="sgd", lookahead_ema=2, bn_recompute="off", eval_test=False, tensorboard=False))  # fmt: skip
    start = {n: v.clone() for n, v in t.lookahead.average.items()}
    t.fit()
    assert t.scheduler.step_count == t.scheduler.total
    state = t.model.state_dict()
    assert all(torch.equal(state[n], avg) for n, avg in t.lookahead.average.items())
    assert not torch.equal(start["fc.weight"], t.lookahead.average["fc.weight"])
    assert not torch.equal(start["bn1.running_mean"], t.lookahead.average["bn1.running_mean"])


# ---- rates and weight decay per parameter group ---------------------------------------------------


def preset_optim(name: str = "cifar10-94") -> OptimConfig:
    return from_dict(OptimConfig, load_preset(name)["optim"])


def airbench_model() -> nn.Module:
    """airbench94 (narrow, for speed) with its batch-norm scales held, as the run holds them."""
    model = create_model("airbench94", num_classes=10, widths=(8, 16, 16))
    for name in model.held_parameters(0):
        dict(model.named_parameters())[name].requires_grad_(False)
    return model


def test_each_group_decays_per_step_as_airbench() -> None:
    """Per mean loss over a batch of 1024: the rate is airbench's x 1024, the norm biases' 64x that, the
    whitening bias and the weights at the base rate; every decayed parameter loses the same share of
    itself per step, lr x weight_decay = airbench's 0.0153 x 1024 / kilostep."""
    lr, lr_bias, decay_per_step = airbench_rates()
    model = airbench_model()
    groups = {n: g for g in param_groups(model, preset_optim()) for n in g["names"]}
    cfg = preset_optim()
    for name, g in groups.items():
        rate = cfg.lr * g["lr_scale"]
        expected = lr_bias if ".norm" in name else lr
        assert rate / 1024 == pytest.approx(expected, rel=1e-9), name
        assert rate * g["weight_decay"] == pytest.approx(decay_per_step, rel=1e-4), name
    assert "whiten.bias" in groups and groups["whiten.bias"]["lr_scale"] == 1.0
    assert groups["blocks.0.norm1.bias"]["lr_scale"] == 64.0


def test_three_steps_match_airbench_sgd_on_the_summed_loss() -> None:
    """Our optimiser on the mean loss and torch's SGD with airbench's groups on the summed loss move
    every parameter the same way (Nesterov momentum, decay, the biases' rate) over three steps."""
    torch.manual_seed(0)
    ours, theirs = airbench_model(), airbench_model()
    theirs.load_state_dict(ours.state_dict())
    lr, lr_bias, wd = airbench_rates()
    named = [(n, p) for n, p in theirs.named_parameters() if p.requires_grad]
    norm_biases = [p for n, p in named if "norm" in n]
    others = [p for n, p in named if "norm" not in n]
    reference = torch.optim.SGD([dict(params=norm_biases, lr=lr_bias, weight_decay=wd / lr_bias),
                                 dict(params=others, lr=lr, weight_decay=wd / lr)], momentum=0.85, nesterov=True)  # fmt: skip
    mine = build_optimizer(ours, preset_optim())
    for _ in range(3):
        x, y = torch.randn(32, 3, 32, 32), torch.randint(0, 10, (32,))
        # 1024 / 32: our mean-loss rate is per 1024 images; scaling this small batch's mean to a 1024
        # batch's keeps the comparison exact
        (F.cross_entropy(ours(x), y) * 32 / 1024).backward()
        F.cross_entropy(theirs(x), y, reduction="sum").backward()
        mine.step()
        reference.step()
        mine.zero_grad()
        reference.zero_grad()
    for (n, a), b in zip(ours.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(a, b, rtol=2e-4, atol=1e-6, msg=n)


def test_decay_of_fast_parameters_does_not_follow_their_rate() -> None:
    model = airbench_model()
    cfg = OptimConfig(optimizer="sgd", lr=0.1, weight_decay=1e-3, bias_lr_scale=64.0, decay_norm_bias=True)
    for g in param_groups(model, cfg):
        assert g["lr_scale"] * g["weight_decay"] == pytest.approx(1e-3)
    with pytest.raises(ConfigError, match="bias_lr_on"):
        param_groups(model, OptimConfig(bias_lr_on="bn"))


# ---- the reflected translate ----------------------------------------------------------------------


def test_reflect_padded_crops_are_windows_of_the_mirrored_image() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 255, (64, 3, 8, 8), dtype=torch.uint8)  # no zeros: a zero would be padding
    out = batch_aug.pad_crop(x, g, 2, mode="reflect")
    padded = F.pad(x, (2,) * 4, mode="reflect")
    for i in range(len(x)):
        windows = [padded[i, :, dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
    assert (out > 0).all()  # zeros padding would have left black borders
    zeros = batch_aug.pad_crop(x, torch.Generator().manual_seed(0), 2)
    assert (zeros == 0).any()


def test_per_image_reflect_pad_crop_matches_the_batch_path() -> None:
    import numpy as np
    from PIL import Image

    img = Image.fromarray(np.random.default_rng(0).integers(1, 255, (8, 8, 3), dtype=np.uint8))
    padded = np.pad(np.asarray(img), ((2, 2), (2, 2), (0, 0)), mode="reflect")
    windows = [padded[dy : dy + 8, dx : dx + 8] for dy in range(5) for dx in range(5)]
    rng = np.random.default_rng(1)
    for _ in range(20):
        crop = np.asarray(PadCrop(8, 2, "reflect")(img, rng))
        assert any(np.array_equal(crop, w) for w in windows)


# ---- every image trains, the last weights are kept ------------------------------------------------


def test_no_validation_trains_on_every_image_and_keeps_the_last_weights(tmp_path: Path) -> None:
    result = train(config(tmp_path, data=str(FOLDER), model="lenet5", epochs=2, batch_size=16, val_fraction=0,
                          tensorboard=False))  # fmt: skip
    records = [json.loads(x) for x in (result.run / "metrics.jsonl").read_text().splitlines()]
    assert [r["val"] for r in records] == [{}, {}]
    seen = sum(r["train"]["acc"] >= 0 for r in records)
    assert seen == 2 and result.best == {"epoch": 1}  # the last epoch's weights
    steps = [json.loads(x) for x in (result.run / "steps.jsonl").read_text().splitlines()]
    n_train = len(list((FOLDER / "train").rglob("*.jpg")))
    assert sum(s["images"] for s in steps) == 2 * (n_train // 16) * 16  # every image, no hold-out
    assert "acc" in json.loads((result.run / "test_metrics.json").read_text())
    with pytest.raises(ConfigError, match="val-fraction 0"):
        train(config(tmp_path / "b", data=str(FOLDER), model="lenet5", val_fraction=0, early_stop=2))


def test_keep_last_saves_the_final_epoch_even_when_an_earlier_one_scored_higher(tmp_path: Path) -> None:
    cfg = dict(data=str(FOLDER), model="lenet5", epochs=3, batch_size=16, val_fraction=0.3, tensorboard=False,
               eval_test=False, lr=0.05)  # fmt: skip
    last = train(config(tmp_path / "last", keep="last", **cfg))
    assert last.best["epoch"] == 2
    best = train(config(tmp_path / "best", **cfg))
    scores = [json.loads(x)["val"]["acc"] for x in (best.run / "metrics.jsonl").read_text().splitlines()]
    assert best.best["acc"] == max(scores)
    with pytest.raises(ConfigError, match="keep"):
        train(config(tmp_path / "bad", keep="first", **cfg))


# ---- the presets ----------------------------------------------------------------------------------


def test_the_speedrun_preset_is_cifar10_94_at_a_quarter_width() -> None:
    full, narrow = load_preset("cifar10-94"), load_preset("cifar10-speedrun")
    assert "extends" not in narrow
    assert narrow["model"]["model_args"]["widths"] == [32, 128, 128]
    assert {k: v for k, v in narrow.items() if k != "model"} == {
        k: v for k, v in full.items() if k != "model"
    }
    assert (
        full["optim"]["lookahead_ema"] == 5 and full["keep"] == "last" and full["data"]["val_fraction"] == 0
    )
