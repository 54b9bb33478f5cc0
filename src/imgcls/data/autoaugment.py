"""RandAugment (Cubuk et al., 2020) and TrivialAugment (Müller & Hutter, 2021) on Pillow images.

Both draw from the same 14 operations. RandAugment applies ``num_ops`` of them at one global
``magnitude`` (of ``num_bins`` - 1); TrivialAugment applies one, at a magnitude drawn uniformly, over
wider ranges ("wide" space). Signed operations flip their sign with probability 1/2.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from .transforms import fill_of

Op = Callable[[Image.Image, float], Image.Image]


def _affine(img: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    return img.transform(
        img.size, Image.Transform.AFFINE, matrix, Image.Resampling.NEAREST, fillcolor=fill_of(img)
    )


def _rotate(img: Image.Image, degrees: float) -> Image.Image:
    return img.rotate(degrees, Image.Resampling.NEAREST, fillcolor=fill_of(img))


def _posterize(img: Image.Image, bits: float) -> Image.Image:
    return ImageOps.posterize(img, max(1, min(8, int(bits))))


# name -> (operation(img, m), signed, maximum magnitude (standard space), maximum (wide space))
OPS: dict[str, tuple[Op, bool, float, float]] = {
    "Identity": (lambda img, m: img, False, 0.0, 0.0),
    "ShearX": (lambda img, m: _affine(img, (1, m, 0, 0, 1, 0)), True, 0.3, 0.99),
    "ShearY": (lambda img, m: _affine(img, (1, 0, 0, m, 1, 0)), True, 0.3, 0.99),
    # translation as a fraction of the side (RandAugment: 150/331 of ImageNet's 331 px; TA: 32 px of 32)
    "TranslateX": (lambda img, m: _affine(img, (1, 0, m * img.size[0], 0, 1, 0)), True, 0.45, 1.0),
    "TranslateY": (lambda img, m: _affine(img, (1, 0, 0, 0, 1, m * img.size[1])), True, 0.45, 1.0),
    "Rotate": (_rotate, True, 30.0, 135.0),
    "Brightness": (lambda img, m: ImageEnhance.Brightness(img).enhance(1 + m), True, 0.9, 0.99),
    "Color": (lambda img, m: ImageEnhance.Color(img).enhance(1 + m), True, 0.9, 0.99),
    "Contrast": (lambda img, m: ImageEnhance.Contrast(img).enhance(1 + m), True, 0.9, 0.99),
    "Sharpness": (lambda img, m: ImageEnhance.Sharpness(img).enhance(1 + m), True, 0.9, 0.99),
    "Posterize": (lambda img, m: _posterize(img, 8 - m), False, 4.0, 6.0),  # bits kept: 8 -> 4 (2)
    "Solarize": (lambda img, m: ImageOps.solarize(img, 256 - m), False, 256.0, 256.0),  # threshold 256 -> 0
    "AutoContrast": (lambda img, m: ImageOps.autocontrast(img), False, 0.0, 0.0),
    "Equalize": (lambda img, m: ImageOps.equalize(img), False, 0.0, 0.0),
}


def apply_op(img: Image.Image, name: str, level: float, wide: bool, rng: np.random.Generator) -> Image.Image:
    """Apply ``name`` at ``level`` in [0, 1] of its range (a random sign for signed operations)."""
    op, signed, hi, wide_hi = OPS[name]
    magnitude = level * (wide_hi if wide else hi)
    if signed and rng.random() < 0.5:
        magnitude = -magnitude
    return op(img, magnitude)


@dataclass
class RandAugment:
    num_ops: int = 2
    magnitude: int = 9
    num_bins: int = 31

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        names = list(OPS)
        for _ in range(self.num_ops):
            name = names[int(rng.integers(len(names)))]
            img = apply_op(img, name, self.magnitude / (self.num_bins - 1), False, rng)
        return img


@dataclass
class TrivialAugment:
    num_bins: int = 31

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> Image.Image:
        names = list(OPS)
        name = names[int(rng.integers(len(names)))]
        return apply_op(img, name, int(rng.integers(self.num_bins)) / (self.num_bins - 1), True, rng)
