"""Input colour spaces, applied to float batches in [0, 1], and the normalisation that goes with each.

- ``rgb``: as decoded (a 1-channel source is repeated to 3 channels);
- ``gray``: 1 channel (ITU-R 601 luma, as Pillow's "L");
- ``yuv``: ITU-R 601 Y with its colour differences U, V scaled and shifted into [0, 1] (JPEG's YCbCr);
- ``fft``: the log magnitude of each channel's centred 2-D Fourier transform, scaled to [0, 1];
- ``lbp``: local binary patterns of the gray image (8 neighbours, radius 1), code / 255, 1 channel.

``rgb``/``gray``/``yuv`` are normalised with the model's mean and std carried through the same
linear map (the std by absolute weights: neighbouring channels of natural images move together);
``fft``/``lbp`` have no such statistics and are standardised per image and channel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

COLOR_SPACES = ("rgb", "gray", "yuv", "fft", "lbp")
LUMA = (0.299, 0.587, 0.114)
YUV = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))  # JPEG YCbCr


def check_space(space: str) -> str:
    if space not in COLOR_SPACES:
        raise ConfigError(f"colour space must be one of {', '.join(COLOR_SPACES)}, got {space!r}")
    return space


def decode_mode(space: str, source_channels: int) -> str:
    """The Pillow mode to decode to: "L" where only luminance is used."""
    if space in ("gray", "lbp") or (space == "fft" and source_channels == 1):
        return "L"
    return "RGB"


def out_channels(space: str, source_channels: int) -> int:
    """How many channels the model sees (its ``in_chans``)."""
    return 3 if space in ("rgb", "yuv") or (space == "fft" and source_channels == 3) else 1


def convert(x: torch.Tensor, space: str) -> torch.Tensor:
    """(B, C, H, W) float in [0, 1], C = 1 or 3 -> the colour space's channels."""
    if space == "rgb":
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
    if space == "gray":
        return x if x.shape[1] == 1 else _mix(x, (LUMA,))
    if space == "yuv":
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return _mix(x, YUV) + torch.tensor([0.0, 0.5, 0.5], device=x.device).view(1, 3, 1, 1)
    if space == "fft":
        h, w = x.shape[-2:]
        mag = torch.fft.fftshift(torch.fft.fft2(x.float()), dim=(-2, -1)).abs()
        return torch.log1p(mag) / torch.log1p(torch.tensor(float(h * w), device=x.device))
    if space == "lbp":
        return lbp(x if x.shape[1] == 1 else _mix(x, (LUMA,)))
    raise ConfigError(f"unknown colour space {space!r}")


def _mix(x: torch.Tensor, rows: tuple[tuple[float, ...], ...]) -> torch.Tensor:
    return torch.einsum("oc,bchw->bohw", torch.tensor(rows, dtype=x.dtype, device=x.device), x)


def lbp(gray: torch.Tensor) -> torch.Tensor:
    """8-neighbour local binary pattern codes (neighbour >= centre sets its bit), / 255."""
    h, w = gray.shape[-2:]
    padded = F.pad(gray, (1, 1, 1, 1), mode="replicate")
    code = torch.zeros_like(gray)
    offsets = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]  # clockwise from top-left
    for bit, (dy, dx) in enumerate(offsets):
        code += (padded[..., dy : dy + h, dx : dx + w] >= gray).to(gray.dtype) * (1 << bit)
    return code / 255.0


def stats(
    space: str, mean: tuple[float, ...], std: tuple[float, ...]
) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) per output channel, or None where the space is standardised per image."""
    if space in ("fft", "lbp"):
        return None
    m, s = list(mean), list(std)
    if len(m) == 1:
        if space == "gray":
            return (m[0],), (s[0],)
        m, s = m * 3, s * 3
    if space == "rgb":
        return tuple(m), tuple(s)
    rows = (LUMA,) if space == "gray" else YUV
    offsets = (0.0,) if space == "gray" else (0.0, 0.5, 0.5)
    new_mean = tuple(sum(r * v for r, v in zip(row, m)) + o for row, o in zip(rows, offsets))
    new_std = tuple(sum(abs(r) * v for r, v in zip(row, s)) for row in rows)
    return new_mean, new_std


class Normalizer:
    """uint8 (B, C, H, W) -> the model's float input: colour space, then normalisation.

    The common case (RGB or gray kept as decoded) is one fused multiply-add per pixel. Every
    operation is elementwise or per image, so a batch gives the same bits as its images one by one.
    """

    def __init__(self, space: str, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        self.space = check_space(space)
        self.stats = stats(space, mean, std)
        if self.stats is not None:
            m, s = (torch.tensor(v, dtype=torch.float32).view(1, -1, 1, 1) for v in self.stats)
            self.scale, self.shift = 1.0 / (255.0 * s), -m / s
            self.mean, self.std = m, s

    def _on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(shift, scale) on ``device``: kept there after the first batch (a GPU loader's)."""
        if self.shift.device != device:
            self.shift, self.scale = self.shift.to(device), self.scale.to(device)
        return self.shift, self.scale

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 pixels, or floats already in [0, 1] (after colour jitter), -> model input."""
        direct = self.stats is not None and (
            (self.space == "rgb" and x.shape[1] == 3) or (self.space == "gray" and x.shape[1] == 1)
        )
        if direct:
            shift, scale = self._on(x.device)
            if x.is_floating_point():
                return torch.addcmul(shift, x, scale * 255.0)
            return torch.addcmul(shift, x.float(), scale)
        y = convert(x if x.is_floating_point() else x.float() / 255.0, self.space)
        if self.stats is not None:
            return (y - self.mean.to(y.device)) / self.std.to(y.device)
        mu = y.mean(dim=(-2, -1), keepdim=True)
        sigma = y.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
        return (y - mu) / sigma
