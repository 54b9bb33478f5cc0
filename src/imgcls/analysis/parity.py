"""Parity with the reference implementations (torchvision / timm manifests, see docs/parity.md).

A manifest records, for one architecture, its state-dict keys and shapes, parameter count, FLOPs
and the logits it computes with weights set by a deterministic *fill rule* on a fixed input. Our
model, filled by the same rule, must give the same logits: that proves it computes the same
function, and that a real checkpoint of the reference loads into it with ``strict=True``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .complexity import count_params


def fill_value(key: str, index: int, like: torch.Tensor) -> torch.Tensor:
    """The fill rule's value for the floating tensor ``key`` at ``index`` in sorted key order."""
    g = torch.Generator().manual_seed(index)
    u = torch.rand(like.shape, generator=g, dtype=torch.float64) * 2 - 1
    if key.endswith("running_var"):
        v = 1 + 0.5 * u.abs()
    elif key.endswith("running_mean"):
        v = 0.1 * u
    elif like.dim() >= 2:
        v = u * math.sqrt(6 / like[0].numel())
    elif key.endswith("weight"):
        v = 1 + 0.1 * u
    else:
        v = 0.1 * u
    return v.to(like.dtype)


def filled_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of ``state`` with every floating tensor set by the fill rule."""
    out = {}
    for i, key in enumerate(sorted(state)):
        t = state[key]
        out[key] = fill_value(key, i, t) if t.is_floating_point() else t.clone()
    return {k: out[k] for k in state}  # keep the model's order


def reference_input(shape: tuple[int, ...] | list[int]) -> torch.Tensor:
    g = torch.Generator().manual_seed(12345)
    return (torch.rand(*shape, generator=g, dtype=torch.float64) * 4 - 2).float()


def load_manifest(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


@dataclass
class ParityReport:
    name: str
    missing: list[str] = field(default_factory=list)  # in the manifest, not in ours
    unexpected: list[str] = field(default_factory=list)  # in ours, not in the manifest
    shape_mismatch: list[str] = field(default_factory=list)
    order_matches: bool = True
    params: tuple[int, int] = (0, 0)  # (ours, reference)
    flops: tuple[int, int] = (0, 0)
    max_abs_diff: float | None = None
    tolerance: float | None = None  # absolute: logits_tolerance * logits_std

    @property
    def keys_ok(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatch)

    @property
    def logits_ok(self) -> bool:
        return self.tolerance is None or (
            self.max_abs_diff is not None and self.max_abs_diff <= self.tolerance
        )

    @property
    def flops_rel_err(self) -> float:
        return abs(self.flops[0] - self.flops[1]) / self.flops[1]


def state_dict_report(model: nn.Module, manifest: dict[str, Any]) -> ParityReport:
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ref = {k: tuple(s) for k, s, _ in manifest["state_dict"]}
    rep = ParityReport(manifest["name"])
    rep.missing = [k for k in ref if k not in ours]
    rep.unexpected = [k for k in ours if k not in ref]
    rep.shape_mismatch = [f"{k}: ours {ours[k]} vs {ref[k]}" for k in ref if k in ours and ours[k] != ref[k]]
    rep.order_matches = list(ours) == list(ref)
    rep.params = (count_params(model), manifest["params"])
    return rep


def logits_diff(
    model: nn.Module, manifest: dict[str, Any], state: dict[str, torch.Tensor] | None = None
) -> float:
    """max |ours - reference| of the logits, with the model filled by the rule (strict load)."""
    model.load_state_dict(state if state is not None else filled_state_dict(model.state_dict()), strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(reference_input(manifest["input_size"]))
    ref = torch.tensor(manifest["logits"], dtype=torch.float32)
    return float((logits.flatten().float() - ref).abs().max())
