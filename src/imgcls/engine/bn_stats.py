"""Batch-norm statistics recomputed before an evaluation ("precise BN", Wu & Johnson 2021).

A batch-norm layer evaluates with running averages that each training step moves by ``momentum``
(0.1) towards its batch's statistics. An epoch of a few steps leaves them mostly at their initial
values (mean 0, variance 1) and behind weights that change fast, so a net trained from scratch on a
small set evaluates with statistics that match nothing: validation losses in the hundreds of
thousands at an accuracy of chance. Recomputed over the training images with the current weights,
they are the true averages, and the evaluation measures the weights.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..amp import autocast
from ..errors import ConfigError

FEW_STEPS = 50  # below this many steps per epoch, `auto` recomputes: 0.9**50 < 1 % of the start left


def decide(mode: str, model: nn.Module, steps_per_epoch: int, probe: bool) -> tuple[str, str | None]:
    """``--bn-recompute`` decided: ("on" | "off", the reason for the log when ``auto`` turns it on).
    Off for a linear probe and a model without batch norm; ``auto`` is on below FEW_STEPS steps."""
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"bn_recompute must be auto, on or off, got {mode!r}")
    if probe or not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return "off", None
    if mode != "auto":
        return mode, None
    if steps_per_epoch >= FEW_STEPS:
        return "off", None
    return "on", (
        f"batch norm: statistics recomputed on the training images before each evaluation "
        f"({steps_per_epoch} steps per epoch are too few for the running averages to settle)"
    )


def training_norms(model: nn.Module) -> list[str]:
    """The names of the batch-norm layers that train (frozen ones stay in eval mode and keep theirs)."""
    return [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.training
    ]


@torch.no_grad()
def recompute(
    model: nn.Module,
    names: list[str],
    batches: Iterable[torch.Tensor],
    device: torch.device,
    precision: str,
    channels_last: bool,
) -> int:
    """The named batch-norm layers' running mean and variance set to their averages over ``batches``
    (the rest of the model in eval mode: dropout off); every module's mode is restored. Returns the
    number of images seen. Layers the forward pass does not reach (auxiliary heads) keep theirs."""
    modes = {m: m.training for m in model.modules()}
    norms = [model.get_submodule(n) for n in names]
    momenta = [m.momentum for m in norms]
    saved = [{k: v.clone() for k, v in m.named_buffers()} for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: every batch counts the same
        m.train()
    seen = 0
    try:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for x in batches:
            x = x.to(device, memory_format=fmt) if x.ndim == 4 else x.to(device)
            with autocast(device, precision):
                model(x)
            seen += len(x)
    finally:
        for m, momentum, before in zip(norms, momenta, saved):
            m.momentum = momentum
            if not seen or int(m.num_batches_tracked) == 0:  # not on the eval path (an auxiliary head)
                for k, v in before.items():
                    getattr(m, k).copy_(v)
        for m, mode in modes.items():
            m.training = mode
    return seen
