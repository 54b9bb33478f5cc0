"""Augmentation of whole batches as tensors: the fast path for datasets cached in memory.

A per-image Python pipeline costs ~10-50 µs an image before any pixel work; these functions do a
batch of 512 CIFAR images in about a millisecond each. Random draws come from an explicit
``torch.Generator`` (the loader seeds one per batch from seed, epoch and batch index).

uint8 (B, C, H, W) in: flip, pad_crop, resized_crop keep uint8; colour jitter, random erasing and
mixup/cutmix work on float batches. The batch may live on a GPU (the loader's cache there): every
random draw is made on the CPU from the generator and moved to the batch, so a batch augments the
same way on any device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def flip(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    mask = torch.rand(x.shape[0], generator=g) < p
    if not mask.any():
        return x
    mask = mask.to(x.device)
    out = x.clone()
    out[mask] = x[mask].flip(-1)
    return out


def alternating_flips(index: torch.Tensor, seed: int, epoch: int) -> torch.Tensor:
    """Which images (by dataset index) are mirrored in ``epoch`` under the alternating flip of
    airbench: a seeded coin per image for epoch 0, then the other way each epoch — every image is
    seen both ways in any two epochs in a row, where a fresh coin each epoch repeats one of them half
    of the time. A boolean mask like ``index``."""
    h = (
        index.to(torch.int64) * -7046029254386353131 + (seed * 2654435761 + 0x5BD1E995) % 2**62
    )  # wraps: a hash
    h = h ^ (h >> 29)
    h = h * -4658895280553007687
    return ((h >> 32) & 1).bool() ^ bool(epoch % 2)


def pad_crop(
    x: torch.Tensor, g: torch.Generator, padding: int = 4, flip_p: float = 0.0, mode: str = "zeros"
) -> torch.Tensor:
    """Pad each image by ``padding`` (``mode``: zeros, or reflect — mirrored at the edge, airbench's),
    cut a random crop of the original size (a random shift) and, with probability ``flip_p``, mirror it.

    The crops are read from a strided view of every possible window of the padded batch
    (B, C, 2p+1, 2p+1, H, W), indexed by each image's shift: no per-pixel index is built.
    """
    b, _, h, w = x.shape
    padded = (
        F.pad(x, (padding,) * 4, mode="reflect" if mode == "reflect" else "constant") if padding > 0 else x
    )
    windows = padded.unfold(2, h, 1).unfold(3, w, 1).permute(0, 2, 3, 1, 4, 5)
    dy = torch.randint(0, 2 * padding + 1, (b,), generator=g).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (b,), generator=g).to(x.device)
    out = windows[torch.arange(b, device=x.device), dy, dx]
    flipped = torch.rand(b, generator=g) < flip_p
    if flipped.any():
        flipped = flipped.to(x.device)
        out[flipped] = out[flipped].flip(-1)
    return out


def resized_crop(
    x: torch.Tensor,
    g: torch.Generator,
    size: int,
    scale: tuple[float, float] = (0.35, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """Random-resized crop of every image at once (bilinear, through one ``grid_sample``)."""
    b = x.shape[0]
    area = torch.empty(b).uniform_(*scale, generator=g)
    log_ratio = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    aspect = log_ratio.exp()
    sw = (area * aspect).sqrt().clamp(max=1.0)  # crop width / image width
    sh = (area / aspect).sqrt().clamp(max=1.0)
    cx = (torch.rand(b, generator=g) * 2 - 1) * (1 - sw)  # crop centre in [-1, 1] coordinates
    cy = (torch.rand(b, generator=g) * 2 - 1) * (1 - sh)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sw, cx, sh, cy
    grid = F.affine_grid(theta, [b, x.shape[1], size, size], align_corners=False).to(x.device)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.round_().clamp_(0, 255).to(x.dtype) if x.dtype == torch.uint8 else out


def color_jitter(
    x: torch.Tensor,
    g: torch.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
) -> torch.Tensor:
    """Per-image brightness, contrast and saturation factors in [1-s, 1+s]; float [0, 1] in and out."""
    b = x.shape[0]

    def factor(s: float) -> torch.Tensor:
        return torch.empty(b, 1, 1, 1).uniform_(max(0.0, 1 - s), 1 + s, generator=g).to(x.device)

    if brightness:
        x = x * factor(brightness)
    if contrast:
        gray = _gray(x).mean(dim=(1, 2, 3), keepdim=True)
        x = gray + (x - gray) * factor(contrast)
    if saturation and x.shape[1] == 3:
        gray = _gray(x)
        x = gray + (x - gray) * factor(saturation)
    return x.clamp(0, 1)


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 1:
        return x
    return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x[:, :1])


def random_erasing(
    x: torch.Tensor,
    g: torch.Generator,
    p: float = 0.25,
    scale: tuple[float, float] = (0.02, 1 / 3),
    ratio: tuple[float, float] = (0.3, 3.3),
) -> torch.Tensor:
    """Zhong et al.'s random erasing on a normalised float batch: with probability ``p`` a rectangle
    of random area and aspect is replaced by per-pixel normal noise (timm's "pixel" mode)."""
    b, _, h, w = x.shape
    area = torch.empty(b).uniform_(*scale, generator=g) * h * w
    aspect = torch.empty(b).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g).exp()
    eh = (area / aspect).sqrt().round().clamp(1, h).long()
    ew = (area * aspect).sqrt().round().clamp(1, w).long()
    top = (torch.rand(b, generator=g) * (h - eh + 1)).long()
    left = (torch.rand(b, generator=g) * (w - ew + 1)).long()
    on = torch.rand(b, generator=g) < p
    ys, xs = torch.arange(h)[None, :], torch.arange(w)[None, :]
    in_rows = (ys >= top[:, None]) & (ys < (top + eh)[:, None])
    in_cols = (xs >= left[:, None]) & (xs < (left + ew)[:, None])
    mask = (in_rows[:, :, None] & in_cols[:, None, :] & on[:, None, None])[:, None]  # (B, 1, H, W)
    noise = torch.randn(x.shape, generator=g, dtype=x.dtype)
    return torch.where(mask.to(x.device), noise.to(x.device), x)


def mix(
    x: torch.Tensor,
    targets: torch.Tensor,
    g: torch.Generator,
    num_classes: int,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch-level mixup (Zhang et al.) / CutMix (Yun et al.): each batch is mixed with its reverse.

    ``targets`` are class indices (B,) or multi-hot / soft rows (B, C); the result's targets are
    soft rows (B, C). With both alphas set, CutMix is chosen with ``switch_prob``. CutMix's λ is
    corrected to the box's true area after clipping at the border.
    """
    soft = targets.float() if targets.ndim == 2 else one_hot(targets, num_classes, smoothing)
    if (mixup_alpha <= 0 and cutmix_alpha <= 0) or torch.rand((), generator=g).item() >= prob:
        return x, soft
    use_cutmix = cutmix_alpha > 0 and (mixup_alpha <= 0 or torch.rand((), generator=g).item() < switch_prob)
    alpha = cutmix_alpha if use_cutmix else mixup_alpha
    lam = _beta(alpha, g)
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, (), generator=g)), int(torch.randint(w, (), generator=g))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = x * lam + x.flip(0) * (1 - lam)
    return x, soft * lam + soft.flip(0) * (1 - lam)


def _beta(alpha: float, g: torch.Generator) -> float:
    """A Beta(alpha, alpha) draw driven by ``g`` (torch's Beta takes no generator; numpy's does)."""
    seed = int(torch.randint(2**62, (), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def one_hot(targets: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    off = smoothing / num_classes
    out = torch.full((targets.shape[0], num_classes), off)
    out.scatter_(1, targets.long()[:, None], 1 - smoothing + off)
    return out
