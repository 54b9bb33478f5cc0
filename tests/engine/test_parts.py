"""The parts of training: config, tasks and losses, optimisers and wrappers, schedules, checkpoints."""

from __future__ import annotations

import itertools
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imgcls import create_model
from imgcls.config import apply_overrides, dump_yaml, from_dict, leaf_paths, load_yaml
from imgcls.engine.config import TrainConfig, parse_size_schedule
from imgcls.engine.optim import SAM, Lookahead, OptimConfig, build_optimizer, layer_ids, param_groups
from imgcls.engine.schedule import ScheduleConfig, Scheduler
from imgcls.errors import ConfigError
from imgcls.fileio import (
    UnsafeWeightsError,
    clean_temp,
    load_safe,
    load_safetensors,
    save_atomic,
    save_safetensors,
)
from imgcls.tasks import Task, class_weights_auto, pos_weight_auto


def test_config_yaml_and_overrides(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "optim: {lr: 0.1, optimizer: sgd}\nepochs: 3\naug: {rrc_scale: [0.3, 1.0]}\n"
    )
    cfg = apply_overrides(
        TrainConfig,
        load_yaml(tmp_path / "c.yaml"),
        {"lr": "0.05", "nesterov": "true", "model_args": {"drop_rate": "0.1"}},
    )
    assert (cfg.optim.lr, cfg.optim.optimizer, cfg.optim.nesterov, cfg.epochs) == (0.05, "sgd", True, 3)
    assert cfg.aug.rrc_scale == (0.3, 1.0) and cfg.model.model_args == {"drop_rate": "0.1"}
    again = from_dict(TrainConfig, __import__("yaml").safe_load(dump_yaml(cfg)))
    assert again == cfg  # a written config reads back to the same config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"lrr": 1}, "unknown option 'lrr'; did you mean 'lr'"),
        ({"epochs": "ten"}, "config.epochs: expected an integer, got 'ten'"),
        ({"nesterov": "maybe"}, "expected true or false"),
        ({"rrc_scale": "0.5"}, "expected 2 comma-separated values"),
    ],
)
def test_config_errors_name_the_key(overrides: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        apply_overrides(TrainConfig, {}, overrides)
    with pytest.raises(ConfigError, match=r"unknown key config\.optim\.momentun; did you mean 'momentum'"):
        from_dict(TrainConfig, {"optim": {"momentun": 0.9}})


def test_every_option_is_on_the_command_line_with_help() -> None:
    from imgcls.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["train"].format_help()  # type: ignore[union-attr]
    for leaf in leaf_paths(TrainConfig):
        if leaf != "model_args":
            assert "--" + leaf.replace("_", "-") in text, leaf
    assert "--model-arg" in text and "SAM" in text


def test_size_schedule() -> None:
    assert parse_size_schedule("64:2,96:4,128", 10) == [(64, 2), (96, 4), (128, 10)]
    for bad in ("64:2,96", "64,96:3", "64:3,96:2", "x:1"):
        with pytest.raises(ConfigError):
            parse_size_schedule(bad if bad != "64:2,96" else "64:2,96,128", 10)


def test_multiclass_losses() -> None:
    logits, y = torch.randn(8, 5), torch.randint(0, 5, (8,))
    task = Task("multiclass", 5, label_smoothing=0.1)
    assert torch.allclose(task.loss(logits, y), F.cross_entropy(logits, y, label_smoothing=0.1))
    soft = F.one_hot(y, 5).float()
    assert torch.allclose(Task("multiclass", 5).loss(logits, soft), F.cross_entropy(logits, y))
    focal0 = Task("multiclass", 5, loss_name="focal", focal_gamma=0.0)
    assert torch.allclose(focal0.loss(logits, y), F.cross_entropy(logits, y), atol=1e-6)
    focal = Task("multiclass", 5, loss_name="focal", focal_gamma=2.0)
    assert focal.loss(logits, y) < focal0.loss(logits, y)  # easy examples are down-weighted
    w = class_weights_auto(torch.tensor([0, 0, 0, 1]), 3)
    assert torch.allclose(w, torch.tensor([4 / 6, 2.0, 0.0]))


def test_binary_and_multilabel_losses() -> None:
    logits = torch.randn(6, 1)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    task = Task("binary", 2, pos_weight=torch.tensor([2.0]))
    assert task.num_outputs == 1
    expected = F.binary_cross_entropy_with_logits(logits, y[:, None].float(), pos_weight=torch.tensor([2.0]))
    assert torch.allclose(task.loss(logits, y), expected)
    assert task.probs(logits).shape == (6, 2) and torch.allclose(task.probs(logits).sum(1), torch.ones(6))
    assert task.predict(logits).tolist() == (torch.sigmoid(logits[:, 0]) >= 0.5).long().tolist()
    ml = Task("multilabel", 3)
    multi = torch.tensor([[1, 0, 1], [0, 0, 0]], dtype=torch.uint8)
    ml_logits = torch.tensor([[5.0, -5.0, 5.0], [-5.0, -5.0, 5.0]])
    assert ml.correct(ml_logits, multi) == 1.0  # the second row has one wrong label
    assert torch.allclose(
        pos_weight_auto(torch.tensor([[1, 0], [0, 0], [0, 0], [1, 1]])), torch.tensor([1.0, 3.0])
    )
    with pytest.raises(ConfigError, match="does not fit"):
        Task("multiclass", 3, loss_name="bce")
    with pytest.raises(ConfigError, match="binary task has 2 classes"):
        Task("binary", 3)


def test_no_weight_decay_on_norms_and_biases_and_layer_decay() -> None:
    model = create_model("resnet20")
    groups = param_groups(model, OptimConfig(weight_decay=0.1, layer_decay=0.5))
    for g in groups:
        for name, p in zip(g["names"], g["params"]):
            assert (g["weight_decay"] == 0.0) == (p.ndim <= 1), name
    ids, last = layer_ids(model)
    assert (
        ids["conv1.weight"] == 0
        and ids["fc.weight"] == last
        and ids["layer1.0.conv1.weight"] < ids["layer3.2.conv2.weight"]
    )
    scales = {n: g["lr_scale"] for g in groups for n in g["names"]}
    assert scales["fc.weight"] == 1.0 and scales["conv1.weight"] == 0.5**last


def test_sam_and_lookahead() -> None:
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    x, y = torch.randn(16, 4), torch.randint(0, 2, (16,))
    opt = build_optimizer(
        model, OptimConfig(optimizer="sgd", lr=0.1, sam=0.05, lookahead=2, weight_decay=0.0)
    )
    assert isinstance(opt, SAM) and isinstance(opt.base, Lookahead)
    before = model.weight.detach().clone()
    F.cross_entropy(model(x), y).backward()
    opt.first_step()
    assert not torch.equal(model.weight, before)  # moved to the perturbed point
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()
    assert not torch.equal(model.weight, before)
    state = opt.state_dict()
    assert state["base"]["steps"] == 1
    opt.load_state_dict(state)


def test_schedules() -> None:
    p = nn.Parameter(torch.zeros(1))
    o = torch.optim.SGD([p], lr=1.0)
    s = Scheduler(
        o, ScheduleConfig(schedule="cosine", warmup_epochs=1, warmup_start=0.1, min_lr=0.01), 1.0, 100, 10
    )
    lrs = [s.lr]
    for _ in range(100):
        s.step()
        lrs.append(s.lr)
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0) and lrs[100] == pytest.approx(0.01)
    assert all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    step = Scheduler(o, ScheduleConfig(schedule="step", step_every=3), 1.0, 100, 10)
    for _ in range(30):
        step.step()
    assert step.lr == pytest.approx(0.1)
    one = Scheduler(o, ScheduleConfig(schedule="onecycle", onecycle_pct=0.3), 1.0, 100, 10)
    seq = []
    for _ in range(100):
        one.step()
        seq.append(one.lr)
    assert max(seq) == pytest.approx(1.0) and seq.index(max(seq)) == 29 and seq[-1] < 0.01
    plateau = Scheduler(
        o, ScheduleConfig(schedule="plateau", plateau_patience=1, plateau_factor=0.5), 1.0, 100, 10
    )
    for metric in (0.5, 0.6, 0.6, 0.6):
        plateau.epoch_end(metric)
    assert plateau.lr == pytest.approx(0.5)
    restored = Scheduler(o, ScheduleConfig(schedule="plateau"), 1.0, 100, 10)
    restored.load_state_dict(plateau.state_dict())
    assert restored.lr == pytest.approx(0.5)


def test_atomic_save_and_temp_cleanup(tmp_path: Path) -> None:
    save_atomic({"a": torch.ones(3)}, tmp_path / "last.pt")
    assert torch.equal(load_safe(tmp_path / "last.pt")["a"], torch.ones(3))
    (tmp_path / "last.pt.tmp-123").write_bytes(b"half a checkpoint")
    assert [p.name for p in clean_temp(tmp_path)] == ["last.pt.tmp-123"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_pickle_that_runs_code_is_refused_and_never_runs(tmp_path: Path, code_pickle) -> None:  # type: ignore[no-untyped-def]
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(code_pickle(control)))  # the control: a plain unpickle does run it
    assert control.exists()
    marker = tmp_path / "pwned"
    bad = tmp_path / "weights.pt"
    with open(bad, "wb") as f:
        pickle.dump({"model": code_pickle(marker)}, f)
    with pytest.raises(UnsafeWeightsError, match="refusing"):
        load_safe(bad)
    assert not marker.exists()
    torch.save({"model": code_pickle(marker)}, tmp_path / "zip.pt")  # torch's own zip format, same payload
    with pytest.raises(UnsafeWeightsError):
        load_safe(tmp_path / "zip.pt")
    assert not marker.exists()


def test_safetensors_round_trip(tmp_path: Path) -> None:
    state = create_model("lenet5").state_dict()
    save_safetensors(state, tmp_path / "model.safetensors", {"classes": ["a", "b"], "task": "binary"})
    loaded, meta = load_safetensors(tmp_path / "model.safetensors")
    assert meta == {"classes": ["a", "b"], "task": "binary"}
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    assert math.isfinite(sum(float(v.float().sum()) for v in loaded.values()))


def test_wrappers_see_the_wrapped_groups_after_a_load() -> None:
    """``load_state_dict`` gives the wrapped optimiser new group dicts: a rate set through the wrapper
    (as the scheduler does) must still reach them (it did not, and resumed SAM / Lookahead runs kept
    the rate of the moment they resumed)."""
    model = nn.Linear(4, 2)
    opt = build_optimizer(model, OptimConfig(optimizer="sgd", lr=0.1, sam=0.05, lookahead=2))
    opt.load_state_dict(opt.state_dict())
    for g in opt.param_groups:
        g["lr"] = 0.123
    inner = opt.base.base
    assert all(g["lr"] == 0.123 for g in inner.param_groups) and opt.state is inner.state


def test_compose_layers_the_config_and_records_where_each_value_came_from() -> None:
    from imgcls.config import compose

    preset = {"epochs": 3, "optim": {"lr": 0.1, "momentum": 0.8}, "model": {"model_args": {"width": 2}}}
    yaml_file = {"optim": {"lr": 0.2}, "sched": {"warmup_epochs": 1}}
    cfg, origins = compose(
        TrainConfig, [("preset p", preset), ("--config c.yaml", yaml_file)], {"lr": "0.3", "data": "x"}
    )
    assert (cfg.epochs, cfg.optim.lr, cfg.optim.momentum, cfg.sched.warmup_epochs) == (3, 0.3, 0.8, 1)
    assert cfg.data.source == "x" and cfg.model.model_args == {"width": 2}
    assert origins == {"epochs": "preset p", "optim.lr": "command line", "optim.momentum": "preset p",
                       "model.model_args": "preset p", "sched.warmup_epochs": "--config c.yaml",
                       "data.source": "command line"}  # fmt: skip
    assert compose(TrainConfig, [])[0] == TrainConfig()  # no layers: the defaults
    with pytest.raises(ConfigError, match="unknown option 'lrr'"):
        compose(TrainConfig, [], {"lrr": "1"})


def test_the_renamed_keys_are_still_read_with_a_note() -> None:
    """data.data is data.source and model.model is model.arch (the options stay --data and --model); a
    file or a run written before the rename is read as before, with a warning that names the new key."""
    from imgcls.config import compose, from_dict

    with pytest.warns(FutureWarning, match=r"config key data.data is now data.source"):
        cfg = from_dict(
            TrainConfig, {"data": {"data": "mnist:x", "val_fraction": 0.2}, "model": {"model": "lenet5"}}
        )
    assert (cfg.data.source, cfg.data.val_fraction, cfg.model.arch) == ("mnist:x", 0.2, "lenet5")
    with pytest.warns(FutureWarning, match="model.model is now"):
        cfg, origins = compose(
            TrainConfig, [("--config old.yaml", {"model": {"model": "lenet5"}})], {"data.data": "y"}
        )
    assert (cfg.model.arch, cfg.data.source) == ("lenet5", "y")
    assert origins == {"model.arch": "--config old.yaml", "data.source": "command line"}
    with pytest.raises(ConfigError, match="both 'data' and 'source'"):
        from_dict(TrainConfig, {"data": {"data": "a", "source": "b"}})
    with pytest.raises(ConfigError, match=r"unknown key config\.model\.name"):
        from_dict(TrainConfig, {"model": {"name": "lenet5"}})
