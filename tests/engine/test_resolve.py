"""``resolve`` is a pure function of the config and the data; ``prepare`` is the one step after it
with side effects (threads, seeds, the run folder, the model and its weights, the precision trial)."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from imgcls.engine.resolve import Plan, prepare, resolve
from support import MNIST, config

DIGITS = f"mnist:{MNIST}"


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def generators() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()


def decided(plan: Plan) -> tuple:
    """What a plan decided, comparable with ==."""
    return (plan.cfg, plan.run.root, plan.resuming, plan.task.kind, plan.task.num_outputs, plan.pre, plan.aug,
            plan.sizes, plan.entry, plan.workers, plan.threads, plan.fit_data, plan.notes,
            {k: len(v) for k, v in plan.source.splits.items()}, plan.source.classes)  # fmt: skip


def test_resolving_twice_gives_the_same_plan_and_makes_nothing(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("IMGCLS_CACHE", str(tmp_path / "cache"))
    threads, rngs = torch.get_num_threads(), generators()
    cfg = config(tmp_path, data=DIGITS, precision="auto", channels_last="auto", threads=threads + 1, epochs=2,
                 img_size_schedule="28:1,32")  # fmt: skip
    before = tree(tmp_path)
    first, second = resolve(cfg), resolve(cfg)
    assert decided(first) == decided(second)
    assert tree(tmp_path) == before == []  # no run folder, no cache
    assert torch.get_num_threads() == threads  # the thread count is decided, not set
    now = generators()
    assert torch.equal(now[0], rngs[0]) and np.array_equal(now[1], rngs[1]) and now[2] == rngs[2]
    name = first.cfg.model.arch  # none given: chosen from the data, and said
    assert first.notes[0].startswith(f"model: {name} (no --model given")
    assert first.cfg.precision == "auto"  # measured by prepare, not decided here
    assert first.run.root == tmp_path / "runs" / name and first.sizes == ((28, 1), (32, 2))


def test_prepare_carries_out_the_plan(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("IMGCLS_CACHE", str(tmp_path / "cache"))
    threads = torch.get_num_threads()
    try:
        plan = resolve(config(tmp_path, data=DIGITS, model="lenet5", threads=1, seed=3))
        r = prepare(plan)
        assert r.run.root.is_dir() and torch.get_num_threads() == 1
        assert r.cfg.precision == "fp32" and r.cfg.channels_last == "off"
        # the same plan prepared again (the generators seeded before the model is built): the same model
        twice = prepare(
            resolve(config(tmp_path, data=DIGITS, model="lenet5", threads=1, seed=3, name="other"))
        )
        assert all(
            torch.equal(a, b)
            for a, b in zip(twice.model.state_dict().values(), r.model.state_dict().values())
        )
        assert os.path.isdir(twice.run.root) and twice.run.root != r.run.root
    finally:
        torch.set_num_threads(threads)
