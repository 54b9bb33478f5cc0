"""What a training run evaluates: the validation split after each epoch (the EMA weights when EMA is
on; batch-norm statistics recomputed first where ``bn_recompute`` is on, and averaged over the
ranks), and at the end the kept weights on the test split, written to ``test_metrics.json``."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import torch

from ..amp import infer_precision
from . import bn_stats
from .evaluate import evaluate
from .precision import is_conv_net

if TYPE_CHECKING:
    from .trainer import Trainer

BN_BATCHES = 100  # batches of training images a batch-norm recomputation averages over, at most


def validate(t: Trainer) -> dict[str, float]:
    """The val split's metrics; {} when there is none (--val-fraction 0)."""
    if "val" not in t.source.splits:
        return {}
    with t.clock("eval"):
        if t.cfg.bn_recompute == "on":
            recompute_bn(t)
        t.dist.average_buffers(t.model)  # each rank's batch-norm statistics saw its own share
        if t.ema is not None:
            t.dist.average_buffers(t.ema.module)
        val = t.loader("val", t.size_at(t.cfg.epochs - 1))
        return evaluate(t.eval_model, val, t.task, t.device, t.precision, t.channels_last, t.dist)


def recompute_bn(t: Trainer) -> None:
    """The evaluated model's training batch-norm layers' statistics, averaged over this rank's
    share of the training images (not augmented; at most BN_BATCHES batches of them, in the
    seeded order of the epoch) with the current weights."""
    names = bn_stats.training_norms(t.model)
    clean = t.loader("train", t.size_at(t.cfg.epochs - 1), augment=False)  # the evaluated size
    clean.set_epoch(t.state.epoch)
    batches = (b.images for b in itertools.islice(clean.iter_from(0), BN_BATCHES))
    bn_stats.recompute(t.eval_model, names, batches, t.device, t.precision, t.channels_last)


def test(t: Trainer) -> dict[str, float]:
    """The kept weights on the test split, written to test_metrics.json — in ``test_precision`` (fp32,
    or bf16 where native: the weights' metadata says which, so that ``imgcls eval`` and ``imgcls predict``
    run in it too and give the recorded figure) and, a conv net, in channels_last, as they run it."""
    t.dist.barrier()  # rank 0 has written model.safetensors
    if t.run.weights.is_file():
        state, _ = t.run.read_weights()
        t.model.load_state_dict(state)
    model = t.net if t.probe else t.model
    cl = is_conv_net(model)
    model.to(memory_format=torch.channels_last if cl else torch.contiguous_format)
    precision = infer_precision(t.cfg.test_precision, t.device)
    with t.clock("eval"):
        metrics = evaluate(model, t.loader("test", t.size_at(t.cfg.epochs - 1)), t.task, t.device,
                           precision, cl, t.dist, tta=t.cfg.test_tta, mirror=t.aug.mirror_share > 0)  # fmt: skip
    if t.dist.is_main:
        tta = {"tta": t.cfg.test_tta} if t.cfg.test_tta != "none" else {}
        t.run.write_json(t.run.test_metrics, {**metrics, **tta})
    return metrics
