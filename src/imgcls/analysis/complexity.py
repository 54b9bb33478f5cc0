"""Parameter and FLOP counts. FLOPs come from ``torch.utils.flop_counter`` (2 per multiply-add:
convs, linears, matmuls, attention) on a shape-only (meta) model, so counting costs no compute."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..models.base import strip_shape_preserving


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: tuple[int, ...]) -> int:
    return flop_breakdown(model, input_size)["Global"]["total"]


def flop_breakdown(model: nn.Module, input_size: tuple[int, ...]) -> dict[str, dict[str, int]]:
    """FLOPs per module path (relative to ``model``; ``"Global"`` = all) and per op name
    (``"convolution"``, ``"addmm"``, ``"bmm"`` ...), with ``"total"`` for each module."""
    """Forward FLOPs of one batch of shape ``input_size`` (N, C, H, W), in eval mode.

    The model may live on the meta device (then a copy of it, whose zero-FLOP shape-preserving layers are
    replaced by identities, is counted); the input is put on the model's device.
    """
    device = next(model.parameters()).device
    if device.type == "meta":  # a copy of a meta model costs nothing; the caller's stays whole
        model = strip_shape_preserving(copy.deepcopy(model))
    x = (
        torch.empty(*input_size, device=device)
        if device.type == "meta"
        else torch.zeros(*input_size, device=device)
    )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            # the layers alone: Classifier.forward's input check may probe the model's minimum
            # size with forward passes of its own, which must not be counted
            forward = getattr(model, "forward_features", None)
            model.forward_head(forward(x)) if forward is not None else model(x)
    finally:
        model.train(was_training)
    root = type(model).__name__
    out: dict[str, dict[str, int]] = {}
    for path, ops in counter.get_flop_counts().items():
        name = "Global" if path == "Global" else path.removeprefix(root).removeprefix(".")
        counts = {str(op).split(".")[-1]: int(n) for op, n in ops.items()}
        out[name] = {**counts, "total": sum(counts.values())}
    out.setdefault("Global", {"total": 0})
    return out
