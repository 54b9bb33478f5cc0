"""Every training option that changes the computation, proven by its effect: each test fails when
the option is accepted but ignored (the closing note of issue 12 lists which test catches which
mutation). Runs are tiny (the 58 MNIST training images of the fixtures) and fp32 unless said."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgcls.engine.evaluate import evaluate
from imgcls.engine.optim import SAM, Lookahead, OptimConfig, build_optimizer
from imgcls.engine.precision import ModelEMA
from imgcls.engine.trainer import Trainer, TrainingDivergedError, train
from imgcls.fileio import load_safe, load_safetensors
from support import MNIST, config, losses

DIGITS = f"mnist:{MNIST}"
SGD = {"optimizer": "sgd", "momentum": "0", "weight_decay": "0", "schedule": "constant"}


def quiet(tmp_path: Path, **overrides: object):  # type: ignore[no-untyped-def]
    """LeNet-5 on the fixture digits, no augmentation, no test pass, no TensorBoard."""
    base = {"data": DIGITS, "model": "lenet5", "epochs": 1, "batch_size": 8, "augment": "none",
            "eval_test": False, "tensorboard": False}  # fmt: skip
    return config(tmp_path, **{**base, **overrides})


def first_batch(trainer: Trainer):  # type: ignore[no-untyped-def]
    loader = trainer.loader("train", trainer.size_at(0))
    loader.set_epoch(0)
    return next(iter(loader.iter_from(0)))


def last_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_safe(run / "checkpoints" / "last.pt")["model"]


def flat(state: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.flatten().double() for k, v in state.items() if v.is_floating_point()])


# ---- EMA ----------------------------------------------------------------------------------------


def test_model_ema_update_is_the_definition() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.75)
    before = [p.detach().clone() for p in ema.module.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        model[1].running_mean.fill_(3.0)
    ema.update(model)
    for e, b, p in zip(ema.module.parameters(), before, model.parameters()):
        assert torch.allclose(e, 0.75 * b + 0.25 * p)
    assert torch.equal(ema.module[1].running_mean, model[1].running_mean)  # buffers are copied


def test_ema_weights_are_what_is_evaluated_and_saved(tmp_path: Path) -> None:
    trainer = Trainer(quiet(tmp_path, ema="0.5", **SGD, lr="0.05"))
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    result = trainer.fit()
    saved, _ = load_safetensors(result.run / "model.safetensors")
    ema, raw = trainer.ema.module.state_dict(), trainer.model.state_dict()
    assert all(torch.equal(saved[k], ema[k]) for k in ema)
    assert not all(torch.equal(ema[k], raw[k]) for k in raw)  # the EMA is not the raw weights ...
    assert not all(torch.equal(ema[k], initial[k]) for k in raw)  # ... and it moved with them
    val = trainer.loader("val", 32)
    logged = json.loads((result.run / "metrics.jsonl").read_text())["val"]
    on_ema = evaluate(trainer.ema.module, val, trainer.task, trainer.device, "fp32", False)
    on_raw = evaluate(trainer.model, val, trainer.task, trainer.device, "fp32", False)
    assert logged["loss"] == pytest.approx(on_ema["loss"], rel=1e-6)
    assert logged["loss"] != pytest.approx(on_raw["loss"], rel=1e-6)


# ---- accumulation, clipping -----------------------------------------------------------------------


def test_accumulating_k_batches_equals_one_batch_k_times_larger(tmp_path: Path) -> None:
    """The order of an epoch does not depend on the batch size, so 2 x 8 images are the first 16."""
    big = train(quiet(tmp_path / "a", batch_size=16, stop_after_steps=1, **SGD, lr="0.1")).run
    accumulated = train(
        quiet(tmp_path / "b", batch_size=8, accum_steps=2, stop_after_steps=1, **SGD, lr="0.1")
    ).run
    small = train(quiet(tmp_path / "c", batch_size=8, stop_after_steps=1, **SGD, lr="0.1")).run
    a, b, c = last_weights(big), last_weights(accumulated), last_weights(small)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not all(torch.allclose(a[k], c[k], atol=1e-6) for k in a)  # the control: one batch of 8
    assert losses(accumulated) == pytest.approx(losses(big), rel=1e-5)  # the logged loss: the mean of both


@pytest.mark.parametrize("clip", [0.0, 0.01])
def test_clipping_bounds_the_total_gradient_norm(tmp_path: Path, clip: float) -> None:
    """With plain SGD at lr 1 the update is the (clipped) gradient itself."""
    trainer = Trainer(quiet(tmp_path, stop_after_steps=1, clip_grad=str(clip), **SGD, lr="1.0"))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    norm = (flat(trainer.model.state_dict()) - flat(before)).norm().item()
    if clip:
        assert norm <= clip * (1 + 1e-4)
        assert norm == pytest.approx(clip, rel=1e-3)  # this gradient was larger than the bound
    else:
        assert norm > 0.05


# ---- targets: label smoothing, mixup ------------------------------------------------------------


def test_label_smoothing_is_in_the_loss_as_defined(tmp_path: Path) -> None:
    eps = 0.2
    trainer = Trainer(quiet(tmp_path, label_smoothing=str(eps), stop_after_steps=1))
    batch = first_batch(trainer)
    with torch.no_grad():
        logp = F.log_softmax(trainer.model(batch.images), 1)
    y = batch.targets
    expected = ((1 - eps) * -logp[torch.arange(len(y)), y] + eps * -logp.mean(1)).mean().item()
    result = trainer.fit()
    assert losses(result.run)[0] == pytest.approx(expected, rel=1e-5)


def test_mixup_mixes_images_and_targets_with_one_lambda(tmp_path: Path) -> None:
    mixed = Trainer(quiet(tmp_path / "a", mixup="0.5", stop_after_steps=1))
    plain = Trainer(quiet(tmp_path / "b"))
    m, p = first_batch(mixed), first_batch(plain)
    y, flipped = p.targets, p.targets.flip(0)
    assert m.targets.shape == (len(y), 10)
    row = int(torch.nonzero(y != flipped)[0])
    lam = float(m.targets[row, y[row]])
    assert 0 < lam < 1
    expected = lam * F.one_hot(y, 10) + (1 - lam) * F.one_hot(flipped, 10)
    assert torch.allclose(m.targets, expected.float(), atol=1e-6)
    assert torch.allclose(m.images, lam * p.images + (1 - lam) * p.images.flip(0), atol=1e-5)
    with torch.no_grad():
        expected_loss = -(m.targets * F.log_softmax(mixed.model(m.images), 1)).sum(1).mean().item()
    result = mixed.fit()
    assert losses(result.run)[0] == pytest.approx(expected_loss, rel=1e-5)  # the soft targets reach the loss


# ---- schedule of sizes, early stopping, layer decay ---------------------------------------------


def test_size_schedule_changes_the_input_size_at_the_stated_epoch(tmp_path: Path) -> None:
    trainer = Trainer(quiet(tmp_path, epochs=3, img_size_schedule="24:1,28:2,32"))
    seen: dict[tuple[bool, int], set[int]] = {}

    def record(module: nn.Module, args: tuple) -> None:
        seen.setdefault((module.training, trainer.state.epoch), set()).add(args[0].shape[-1])

    trainer.model.register_forward_pre_hook(record)
    trainer.fit()
    train_sizes = {epoch: sizes for (training, epoch), sizes in seen.items() if training}
    assert train_sizes == {0: {24}, 1: {28}, 2: {32}}
    assert {s for (training, _), sizes in seen.items() if not training for s in sizes} == {
        32
    }  # eval: the final size


def test_early_stopping_stops_after_the_stated_patience(tmp_path: Path) -> None:
    """lr 0: the val score never improves after the first epoch, so patience 2 ends epoch 3 of 6."""
    result = train(quiet(tmp_path, epochs=6, early_stop=2, lr="0", **{"schedule": "constant"}))
    assert result.status == "early_stopped" and result.epoch == 3
    assert len((result.run / "metrics.jsonl").read_text().splitlines()) == 3
    assert train(quiet(tmp_path / "control", epochs=6, early_stop=0, lr="0")).epoch == 6


def test_layer_decay_gives_each_block_its_stated_rate(tmp_path: Path) -> None:
    from imgcls.engine.optim import layer_ids

    decay, lr = 0.5, 0.01
    trainer = Trainer(quiet(tmp_path, model="resnet20", layer_decay=str(decay), lr=str(lr), stop_after_steps=1,
                            schedule="constant"))  # fmt: skip
    trainer.fit()
    names = {id(p): n for n, p in trainer.model.named_parameters()}
    rate = {names[id(p)]: g["lr"] for g in trainer.optimizer.param_groups for p in g["params"]}
    ids, last = layer_ids(trainer.model)
    for name, value in rate.items():
        assert value == pytest.approx(lr * decay ** (last - ids[name])), name
    assert rate["fc.weight"] == pytest.approx(lr) and rate["conv1.weight"] == pytest.approx(lr * decay**last)
    assert rate["layer1.0.conv1.weight"] < rate["layer2.0.conv1.weight"] < rate["layer3.0.conv1.weight"]


# ---- SAM, Lookahead -----------------------------------------------------------------------------


def test_sam_steps_with_the_gradient_at_the_perturbed_point() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    w0 = [p.detach().clone() for p in model.parameters()]
    rho, lr = 0.5, 0.1

    def grads(at: list[torch.Tensor]) -> list[torch.Tensor]:
        params = [t.clone().requires_grad_(True) for t in at]
        loss = F.cross_entropy(F.linear(x, params[0], params[1]), y)
        return list(torch.autograd.grad(loss, params))

    g = grads(w0)
    norm = torch.sqrt(sum((t**2).sum() for t in g))
    g_adv = grads([w + rho * t / norm for w, t in zip(w0, g)])
    opt = build_optimizer(model, OptimConfig(optimizer="sgd", lr=lr, momentum=0.0, weight_decay=0.0, sam=rho))
    assert isinstance(opt, SAM)
    F.cross_entropy(model(x), y).backward()
    opt.first_step()
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    for p, w, ga in zip(model.parameters(), w0, g_adv):
        assert torch.allclose(p, w - lr * ga, atol=1e-6)


@pytest.mark.parametrize("sam", [0.0, 0.05])
def test_sam_takes_two_passes_per_step_in_training(tmp_path: Path, sam: float) -> None:
    trainer = Trainer(quiet(tmp_path, sam=str(sam), stop_after_steps=3))
    calls: list[bool] = []
    trainer.model.register_forward_pre_hook(lambda m, a: calls.append(m.training))
    trainer.fit()
    assert sum(calls) == 3 * (2 if sam else 1)


def test_lookahead_syncs_the_slow_weights_every_k_steps() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 3)
    x, y = torch.randn(16, 4), torch.randint(0, 3, (16,))
    opt = build_optimizer(model, OptimConfig(optimizer="sgd", lr=0.5, momentum=0.0, weight_decay=0.0,
                                             lookahead=3, lookahead_alpha=0.5))  # fmt: skip
    assert isinstance(opt, Lookahead)
    slow0 = [p.detach().clone() for p in model.parameters()]
    fast = []
    for step in range(3):
        F.cross_entropy(model(x), y).backward()
        if step == 2:  # what the third inner step will give: the fast weights before the sync
            with torch.no_grad():
                fast = [p - 0.5 * p.grad for p in model.parameters()]
        opt.step()
        opt.zero_grad()
        if step < 2:
            assert not all(torch.equal(p, s) for p, s in zip(model.parameters(), slow0))
    for p, s0, f in zip(model.parameters(), slow0, fast):
        assert torch.allclose(p, s0 + 0.5 * (f - s0), atol=1e-6)
    in_group_order = [p for g in opt.param_groups for p in g["params"]]  # the order of opt.slow
    assert all(torch.equal(p, slow) for p, slow in zip(in_group_order, opt.slow))


@pytest.mark.parametrize("steps", [2, 3])
def test_lookahead_in_a_run(tmp_path: Path, steps: int) -> None:
    trainer = Trainer(quiet(tmp_path, lookahead="2", stop_after_steps=steps, **SGD, lr="0.1"))
    trainer.fit()
    params = [p for g in trainer.optimizer.param_groups for p in g["params"]]  # the order of .slow
    synced = all(torch.equal(p, s) for p, s in zip(params, trainer.optimizer.slow))
    assert trainer.optimizer.steps == steps and synced == (steps % 2 == 0)


# ---- what a checkpoint may hold -------------------------------------------------------------------


def test_last_pt_never_holds_non_finite_tensors(tmp_path: Path) -> None:
    trainer = Trainer(quiet(tmp_path, stop_after_steps=2))
    trainer.fit()
    good = load_safe(trainer.run.last)
    with torch.no_grad():
        next(trainer.model.parameters())[0].fill_(math.inf)
    trainer.state.step += 1
    with pytest.raises(TrainingDivergedError, match="not finite"):
        trainer.save()
    kept = load_safe(trainer.run.last)
    assert kept["position"] == good["position"]
    assert all(torch.isfinite(v).all() for v in kept["model"].values())


# ---- precision: auto by measurement, and bf16 for real ------------------------------------------


@pytest.fixture
def stub_clock(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Replace the timing of one training step by a table of seconds per candidate (with seeded
    noise); returns the list of candidates timed, in order. bf16 counts as supported."""
    import random

    from imgcls.engine import precision

    monkeypatch.setenv("IMGCLS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: True)
    timed: list[str] = []
    table: dict[str, list[float]] = {}
    rng = random.Random(0)

    def fake(trial, opt, x, loss_fn, p, device):  # type: ignore[no-untyped-def]
        name = precision.label(
            p, x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        )
        timed.append(name)
        seq = table[name]
        return seq.pop(0) if len(seq) > 1 else seq[0] * (1 + rng.uniform(-0.02, 0.02))

    monkeypatch.setattr(precision, "step_seconds", fake)
    return table, timed


def _choose(model: nn.Module, x: torch.Tensor, key: str = "m"):  # type: ignore[no-untyped-def]
    from imgcls.engine.precision import choose

    y = torch.zeros(len(x), dtype=torch.long)
    return choose(model, x, lambda out: F.cross_entropy(out, y), torch.device("cpu"), "auto", "auto", key)


def test_precision_auto_picks_a_clear_winner_quickly_and_caches_it(stub_clock) -> None:  # type: ignore[no-untyped-def]
    from imgcls import create_model
    from imgcls.engine import precision

    table, timed = stub_clock
    table.update({"fp32": [1.0], "fp32+channels_last": [0.9], "bf16": [0.62], "bf16+channels_last": [0.5]})
    model, x = create_model("resnet20"), torch.randn(4, 3, 32, 32)
    verdict = _choose(model, x)
    assert (verdict.precision, verdict.channels_last, verdict.clear) == ("bf16", True, True)
    assert verdict.rounds == precision.MIN_ROUNDS and len(timed) == 4 * (1 + precision.MIN_ROUNDS)
    timed.clear()
    again = _choose(model, x)
    assert again.cached and (again.precision, again.channels_last) == ("bf16", True) and not timed
    for changed in (
        lambda: _choose(model, x, key="other model"),
        lambda: _choose(model, torch.randn(8, 3, 32, 32)),
    ):
        changed()
        assert timed, "a changed model or input shape must be measured again"
        timed.clear()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if threads > 1 else 2)
        _choose(model, x)
        assert timed, "another thread count must be measured again"
    finally:
        torch.set_num_threads(threads)


def test_precision_auto_is_not_fooled_by_one_fast_outlier(stub_clock) -> None:  # type: ignore[no-untyped-def]
    from imgcls import create_model

    table, _ = stub_clock
    # fp32's first timed step is an outlier (the other process paused): the median still sees 1.0
    table.update(
        {"fp32": [1.0, 0.2, 1.0], "fp32+channels_last": [1.1], "bf16": [0.7], "bf16+channels_last": [0.8]}
    )
    verdict = _choose(create_model("resnet20"), torch.randn(4, 3, 32, 32))
    assert (verdict.precision, verdict.channels_last) == ("bf16", False)


def test_precision_auto_measures_longer_when_candidates_are_close(stub_clock) -> None:  # type: ignore[no-untyped-def]
    from imgcls import create_model
    from imgcls.engine import precision

    table, _ = stub_clock
    table.update({"fp32": [0.1], "bf16": [0.099]})  # a transformer: no channels_last candidates
    verdict = _choose(create_model("vit_tiny_patch16_224", img_size=32), torch.randn(2, 3, 32, 32))
    assert verdict.rounds == precision.MAX_ROUNDS and not verdict.clear
    assert set(verdict.seconds) == {"fp32", "bf16"}


def test_the_trainer_trains_in_what_auto_chose(stub_clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    table, _ = stub_clock
    table.update({"fp32": [1.0], "fp32+channels_last": [0.9], "bf16": [0.8], "bf16+channels_last": [0.4]})
    trainer = Trainer(  # a run planned long enough to pay for the trial, stopped after its first step
        quiet(
            tmp_path,
            model="resnet20",
            precision="auto",
            channels_last="auto",
            epochs=1000,
            stop_after_steps=1,
        )
    )
    assert trainer.cfg.precision == "bf16" and trainer.channels_last
    assert "precision: bf16" in trainer.run.config.read_text()


def test_a_run_too_short_to_pay_for_the_trial_is_not_measured(stub_clock, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from imgcls import create_model
    from imgcls.engine import precision

    table, timed = stub_clock
    table.update({"fp32": [1.0], "fp32+channels_last": [0.9], "bf16": [0.8], "bf16+channels_last": [0.4]})
    model, x = create_model("resnet20"), torch.randn(4, 3, 32, 32)
    y = torch.zeros(4, dtype=torch.long)
    least = 4 * (1 + precision.MIN_ROUNDS)  # four candidates, a warm-up and MIN_ROUNDS steps each
    short = precision.choose(model, x, lambda out: F.cross_entropy(out, y), torch.device("cpu"), "auto", "auto",
                             "m", run_steps=int(least / precision.SHARE) - 1)  # fmt: skip
    assert not timed and (short.precision, short.channels_last) == ("fp32", False)
    assert "not measured" in short.describe() and "--precision" in short.describe()
    long = precision.choose(model, x, lambda out: F.cross_entropy(out, y), torch.device("cpu"), "auto", "auto",
                            "m", run_steps=int(least / precision.SHARE) * 10)  # fmt: skip
    assert timed and (long.precision, long.channels_last) == ("bf16", True)
    timed.clear()  # the unmeasured verdict was not cached; the measured one is, whatever the run's length
    again = precision.choose(model, x, lambda out: F.cross_entropy(out, y), torch.device("cpu"), "auto", "auto",
                             "m", run_steps=1)  # fmt: skip
    assert again.cached and not timed and again.precision == "bf16"
    trainer = Trainer(
        quiet(tmp_path, model="resnet20", precision="auto", channels_last="auto", stop_after_steps=1)
    )
    assert trainer.cfg.precision == "fp32" and not trainer.channels_last
    assert any("not measured" in note for note in trainer.notes)


@pytest.mark.parametrize(
    "run_steps,run_seconds,rounds", [(450, None, 4), (2000, None, 12), (None, 60.0, 6), (None, 6.0, 0)]
)
def test_the_trial_costs_at_most_its_share_of_the_run(stub_clock, run_steps, run_seconds, rounds) -> None:  # type: ignore[no-untyped-def]
    from imgcls import create_model
    from imgcls.engine import precision

    table, timed = stub_clock
    step = {
        "fp32": 0.1,
        "fp32+channels_last": 0.1,
        "bf16": 0.1,
        "bf16+channels_last": 0.1,
    }  # too close to call
    table.update({k: [v] for k, v in step.items()})
    y = torch.zeros(4, dtype=torch.long)
    verdict = precision.choose(create_model("resnet20"), torch.randn(4, 3, 32, 32), lambda out: F.cross_entropy(out, y),
                               torch.device("cpu"), "auto", "auto", "m", run_steps=run_steps,
                               run_seconds=run_seconds)  # fmt: skip
    cost = sum(step[name] for name in timed) / 1.02  # the stub's noise is within 2 %
    run = run_steps * 0.1 if run_steps else run_seconds
    assert cost <= precision.SHARE * run, (cost, run)
    assert verdict.rounds == rounds  # 0.1 s a step, 4 candidates: 0.4 s of warm-ups, 0.4 s a round
    if rounds:
        assert not verdict.clear
    else:  # the warm-ups alone showed the minimum trial would not fit: fp32, said so
        assert verdict.rounds == 0 and verdict.precision == "fp32" and "not measured" in verdict.describe()


@pytest.mark.parametrize("native", [True, False])
def test_bf16_if_native_is_bf16_where_the_cpu_has_it_and_fp32_elsewhere_without_a_trial(
    stub_clock, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:  # type: ignore[no-untyped-def]
    from imgcls import create_model
    from imgcls.engine import precision

    table, timed = stub_clock
    table.update({"fp32+channels_last": [6.0], "bf16+channels_last": [4.5]})
    monkeypatch.setattr(precision, "cpu_has_bf16", lambda: native)
    y = torch.zeros(4, dtype=torch.long)
    verdict = precision.choose(create_model("resnet20"), torch.randn(4, 3, 32, 32), lambda out: F.cross_entropy(out, y),
                               torch.device("cpu"), "bf16-if-native", "on", "m", run_steps=200)  # fmt: skip
    assert not timed and verdict.channels_last
    assert verdict.precision == ("bf16" if native else "fp32")
    assert "bf16-if-native" in verdict.describe()


def test_a_long_run_of_big_steps_pays_for_its_trial(stub_clock) -> None:  # type: ignore[no-untyped-def]
    """airbench94 at batch 2,000 on 2 cores: 4-6 s a step, 200 steps. The trial (2 warm-ups and 3 rounds,
    ~40 s) is 4 % of the run and finds bf16 a third faster: measured, where a fixed 20-second budget
    left the run in fp32. A run of unknown length keeps that budget."""
    from imgcls import create_model
    from imgcls.engine import precision

    table, timed = stub_clock
    table.update({"fp32+channels_last": [6.0], "bf16+channels_last": [4.5]})
    y = torch.zeros(4, dtype=torch.long)

    def choose(**length: int):  # type: ignore[no-untyped-def]
        return precision.choose(create_model("resnet20"), torch.randn(4, 3, 32, 32), lambda out: F.cross_entropy(out, y),
                                torch.device("cpu"), "auto", "on", f"m{length}", **length)  # fmt: skip

    verdict = choose(run_steps=200)
    assert (verdict.precision, verdict.channels_last, verdict.rounds) == ("bf16", True, precision.MIN_ROUNDS)
    cost = sum(table[name][0] for name in timed)
    assert cost <= precision.SHARE * 200 * 4.5 * 1.02
    timed.clear()
    unknown = choose()
    assert unknown.rounds == 0 and unknown.precision == "fp32" and "not measured" in unknown.describe()


@pytest.mark.skipif(
    not __import__("imgcls.engine.precision", fromlist=["x"]).cpu_has_bf16(), reason="this CPU has no bf16"
)
def test_a_real_bf16_channels_last_run(tmp_path: Path) -> None:
    trainer = Trainer(
        quiet(tmp_path, model="resnet20", precision="bf16", channels_last="on", epochs=2, **SGD, lr="0.05")
    )
    dtypes: set[torch.dtype] = set()
    formats: set[bool] = set()

    def record(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
        if m.training:
            dtypes.add(out.dtype)
            formats.add(args[0].is_contiguous(memory_format=torch.channels_last))

    trainer.model.conv1.register_forward_hook(record)
    result = trainer.fit()
    assert dtypes == {torch.bfloat16} and formats == {True}
    steps = losses(result.run)
    fp32 = losses(train(quiet(tmp_path / "fp32", model="resnet20", stop_after_steps=1, **SGD, lr="0.05")).run)
    assert all(math.isfinite(v) for v in steps)
    assert (
        steps[0] == pytest.approx(fp32[0], rel=2e-2) and steps[0] != fp32[0]
    )  # bf16's rounding, same function
    saved, _ = load_safetensors(result.run / "model.safetensors")
    assert all(
        v.dtype == torch.float32 for v in saved.values() if v.is_floating_point()
    )  # master weights stay fp32
