"""Per-image transforms on Pillow images (torchvision's are not usable here: we write our own).

Every transform is called as ``t(img, rng)`` with an explicit ``numpy.random.Generator``: the
loader seeds one per sample from (seed, epoch, index), so an augmented sample is the same whatever
the number of workers or the point a run resumed from. Deterministic transforms ignore ``rng``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageEnhance

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def resample(name: str) -> Image.Resampling:
    if name not in RESAMPLE:
        from ..errors import ConfigError

        raise ConfigError(f"interpolation must be one of {', '.join(RESAMPLE)}, got {name!r}")
    return RESAMPLE[name]


def fill_of(img: Image.Image, value: int = 0) -> int | tuple[int, ...]:
    return value if img.mode == "L" else (value,) * len(img.getbands())


@dataclass
class Compose:
    transforms: Sequence[Transform]

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        for t in self.transforms:
            img = t(img, rng)
        return img


@dataclass
class Resize:
    """Shorter side to ``size`` (aspect kept), as the eval recipe of ImageNet models does — with
    torchvision's arithmetic (``Resize(int)``): the longer side is ``int(size * long / short)``,
    truncated, so weights trained on its eval transform see the same pixels from us."""

    size: int
    interpolation: str = "bilinear"

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        w, h = img.size
        if min(w, h) == self.size:
            return img
        if w <= h:
            new = (self.size, max(1, int(self.size * h / w)))
        else:
            new = (max(1, int(self.size * w / h)), self.size)
        return img.resize(new, resample(self.interpolation), reducing_gap=None)


@dataclass
class CenterCrop:
    """The central ``size`` x ``size`` square (padded with black where the image is smaller)."""

    size: int

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        w, h = img.size
        if w >= self.size and h >= self.size:  # torchvision's offsets: int(round(d / 2)), half to even
            left, top = round((w - self.size) / 2.0), round((h - self.size) / 2.0)
            return img.crop((left, top, left + self.size, top + self.size))
        canvas = Image.new(img.mode, (self.size, self.size), fill_of(img))
        # smaller: padded as torchvision pads (the odd pixel on the right / bottom), then cropped
        pad_left, pad_top = max(self.size - w, 0) // 2, max(self.size - h, 0) // 2
        crop_left = round((w - self.size) / 2.0) if w > self.size else 0
        crop_top = round((h - self.size) / 2.0) if h > self.size else 0
        canvas.paste(img.crop((crop_left, crop_top, crop_left + min(w, self.size), crop_top + min(h, self.size))),
                     (pad_left, pad_top))  # fmt: skip
        return canvas


@dataclass
class RandomResizedCrop:
    """A crop of random area (``scale`` of the image) and aspect ratio, resized to ``size`` (Inception's)."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        box = random_crop_box(w, h, self.scale, self.ratio, rng)
        return img.resize((self.size, self.size), resample(self.interpolation), box=box, reducing_gap=None)


def random_crop_box(
    w: int, h: int, scale: tuple[float, float], ratio: tuple[float, float], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of an RRC crop: 10 tries at the sampled shape, then the central crop."""
    area = w * h
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        cw, ch = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
            return left, top, left + cw, top + ch
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        cw, ch = round(h * ratio[1]), h
    else:
        cw, ch = w, h
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


@dataclass
class HorizontalFlip:
    p: float = 0.5

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < self.p else img


@dataclass
class PadCrop:
    """Pad by ``padding`` pixels (``mode``: zeros, or reflect — the image mirrored at its edge) and cut
    a random ``size`` crop: the CIFAR recipe."""

    size: int
    padding: int = 4
    mode: str = "zeros"

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = img.size
        left = int(rng.integers(-self.padding, w + self.padding - self.size + 1))
        top = int(rng.integers(-self.padding, h + self.padding - self.size + 1))
        if self.mode == "reflect":
            p = self.padding
            a = np.asarray(img)
            a = np.pad(a, ((p, p), (p, p)) + ((0, 0),) * (a.ndim - 2), mode="reflect")
            return Image.fromarray(a[top + p : top + p + self.size, left + p : left + p + self.size])
        canvas = Image.new(img.mode, (self.size, self.size), fill_of(img))
        canvas.paste(img.crop((max(left, 0), max(top, 0), min(left + self.size, w), min(top + self.size, h))),
                     (max(-left, 0), max(-top, 0)))  # fmt: skip
        return canvas


@dataclass
class PadTo:
    """Centre the image on a black ``size`` x ``size`` canvas (LeNet-5's 28 -> 32 for MNIST)."""

    size: int

    def __call__(self, img: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        return CenterCrop(self.size)(img)


@dataclass
class ColorJitter:
    """Random brightness, contrast, saturation (factors in [1-x, 1+x]) and hue (shift in [-hue, hue] turns)."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.0

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        ops = [
            (ImageEnhance.Brightness, self.brightness),
            (ImageEnhance.Contrast, self.contrast),
            (ImageEnhance.Color, self.saturation if img.mode == "RGB" else 0.0),
        ]
        for k in rng.permutation(len(ops) + 1):
            if k == len(ops):
                if self.hue and img.mode == "RGB":
                    img = shift_hue(img, rng.uniform(-self.hue, self.hue))
                continue
            enhancer, x = ops[k]
            if x:
                img = enhancer(img).enhance(rng.uniform(max(0.0, 1 - x), 1 + x))
        return img


def shift_hue(img: Image.Image, turns: float) -> Image.Image:
    h, s, v = img.convert("HSV").split()
    shift = round(turns * 255) % 256
    h = h.point(lambda x: (x + shift) % 256)
    return Image.merge("HSV", (h, s, v)).convert("RGB")


@dataclass
class RandomGrayscale:
    """With probability ``p``, gray in all channels (the image keeps its mode)."""

    p: float = 0.1

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        if img.mode == "RGB" and rng.random() < self.p:
            return img.convert("L").convert("RGB")
        return img


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """A Pillow image as a uint8 (C, H, W) tensor (its own copy of the pixels)."""
    a = np.array(img, dtype=np.uint8)  # a writable copy
    if a.ndim == 2:
        a = a[:, :, None]
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))
