"""Where a model looks: Grad-CAM (Selvaraju et al., 2017) for conv nets, attention maps for
transformers — through the one classifier interface, with no per-architecture code.

Grad-CAM weighs the channels of ``forward_features``' last map (B, C, h, w) by the mean gradient of
the class score over space; the positive part of the weighted sum, upsampled to the input, is the
map. For models with attention, the map is the class token's (or, without one, the mean token's)
attention over the patches in the last layer, averaged over heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def grad_cam(model: torch.nn.Module, x: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, W) maps in [0, 1] for the ``target`` classes (default: the predicted ones)."""
    model.eval()
    with torch.enable_grad():
        features = model.forward_features(x)
        if features.ndim != 4:
            raise ValueError(
                "Grad-CAM needs a spatial feature map (B, C, h, w); use attention_map for transformers"
            )
        features.retain_grad()
        logits = model.forward_head(features)
        if logits.shape[1] == 1:  # binary: one logit; its sign decides the class
            chosen = (
                logits[:, 0] if target is None else torch.where(target.bool(), logits[:, 0], -logits[:, 0])
            )
        else:
            target = logits.argmax(1) if target is None else target
            chosen = logits.gather(1, target.view(-1, 1)).squeeze(1)
        model.zero_grad(set_to_none=True)
        chosen.sum().backward()
    weights = features.grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * features.detach()).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _unit(cam)


@torch.no_grad()
def attention_map(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) maps in [0, 1] from the last attention layer."""
    model.eval()
    _, attentions = model.forward_attention(x)
    attn = attentions[-1]  # (B, heads, N, N) or windowed variants
    attn = attn.mean(1) if attn.ndim == 4 else attn
    n = attn.shape[-1]
    side = math.isqrt(n)
    if side * side == n:  # no class token: how much attention each patch receives
        weights = attn.mean(1)
    else:  # a class token first: its attention over the patches
        weights = attn[:, 0, 1:]
        side = math.isqrt(n - 1)
        if side * side != n - 1:
            raise ValueError(f"cannot lay {n} tokens out on a square grid")
    if weights.shape[0] != x.shape[0]:  # windowed attention (Swin): (B * windows, ...) -> average per image
        weights = weights.view(x.shape[0], -1, weights.shape[-1]).mean(1)
    grid = weights.view(x.shape[0], 1, side, side)
    grid = F.interpolate(grid.float(), size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    return _unit(grid)


def _unit(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(1)
    lo, hi = flat.min(1).values.view(-1, 1, 1), flat.max(1).values.view(-1, 1, 1)
    return (maps - lo) / (hi - lo).clamp_min(1e-12)


def explain(model: torch.nn.Module, x: torch.Tensor) -> tuple[str, torch.Tensor]:
    """("grad-cam" | "attention", maps) — whichever the model supports."""
    if getattr(model, "has_attention", False):
        try:
            return "attention", attention_map(model, x)
        except (ValueError, RuntimeError):
            pass
    return "grad-cam", grad_cam(model, x)
