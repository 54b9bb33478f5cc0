"""From a decoded image to the model's input: the eval ``Preprocess`` (the one path that
evaluation, prediction and the server share) and the training augmentation around it.

Work is split by where it is cheapest:
- per image, on Pillow (in loader workers): decode, geometry (resize / crop / random-resized crop /
  pad-crop / flip) and the colour operations that need Pillow (jitter, RandAugment, TrivialAugment);
- per batch, on tensors (in the main process): colour space + normalisation, random erasing,
  mixup / cutmix. Workers hand over uint8 pixels, a quarter of the bytes of floats.

For a dataset cached as uint8 (small images), the geometry and jitter also run per batch
(``batch_aug``), which is what lets 2 cores train a CIFAR network without waiting for data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..errors import ConfigError
from . import batch_aug
from .autoaugment import RandAugment, TrivialAugment
from .colorspace import Normalizer, check_space, decode_mode, out_channels
from .decode import decode_image, to_8bit
from .transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    HorizontalFlip,
    PadCrop,
    RandomGrayscale,
    RandomResizedCrop,
    Resize,
    Transform,
    to_uint8_tensor,
)

AUTO_AUGMENTS = ("none", "randaugment", "trivialaugment")
PRESETS = ("none", "basic", "strong")
SMALL = 64  # images up to this size are cached decoded and augmented per batch


@dataclass
class Preprocess:
    """Eval geometry and normalisation: resize the shorter side to ``side`` (``resize`` when given, as
    pretrained weights state it; else ``int(size / crop_pct)``), centre-crop ``size`` (torchvision's ``Resize`` + ``CenterCrop`` arithmetic, pixel for pixel) — except, with
    ``pad_small`` (small-image models, <= 64 px), an image that already fits and fills at least 3/4 of
    the square, which is centred on a black canvas instead (LeNet-5's 28 -> 32 px padding of MNIST,
    pixels untouched)."""

    size: int
    crop_pct: float = 1.0
    interpolation: str = "bilinear"
    color_space: str = "rgb"
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    source_channels: int = 3
    pad_small: bool = True
    resize: int | None = None  # the shorter side before the crop, exactly (else from crop_pct)
    _normalizer: Normalizer | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_space(self.color_space)
        if not 0 < self.crop_pct <= 1:
            raise ConfigError(f"crop_pct must be in (0, 1], got {self.crop_pct}")
        self.mean, self.std = tuple(self.mean), tuple(self.std)

    @property
    def side(self) -> int:
        """The shorter side the image is resized to before the centre crop."""
        return self.side_for(self.size)

    def side_for(self, size: int) -> int:
        """``side`` for another input size (multi-scale TTA): the same ratio."""
        if self.resize:
            return round(self.resize * size / self.size)
        return int(size / self.crop_pct)

    @property
    def mode(self) -> str:
        return decode_mode(self.color_space, self.source_channels)

    @property
    def channels(self) -> int:
        return out_channels(self.color_space, self.source_channels)

    @property
    def normalizer(self) -> Normalizer:
        if self._normalizer is None:
            self._normalizer = Normalizer(self.color_space, self.mean, self.std)
        return self._normalizer

    def fits(self, img: Image.Image) -> bool:
        w, h = img.size
        return self.pad_small and w <= self.size and h <= self.size and min(w, h) * 4 >= self.size * 3

    def geometry(self, img: Image.Image) -> Image.Image:
        if img.size == (self.size, self.size) and (self.pad_small or self.side == self.size):
            return img  # already the input (a 224 image for a 224 / 0.875 model is still resized and cropped)
        if self.fits(img):
            return CenterCrop(self.size)(img)
        img = Resize(self.side, self.interpolation)(img)
        return CenterCrop(self.size)(img)

    def load(
        self,
        source: str | Path | bytes | Image.Image | np.ndarray,
        draft: bool = False,
        name: str | None = None,
    ) -> Image.Image:
        """Any image input, decoded (the one decode path) to this preprocessing's mode: by default in
        full, so that the eval pixels of any photo are exactly torchvision's (a decode, then Resize +
        CenterCrop) — the preprocessing every published checkpoint's accuracy assumes. ``draft`` lets a
        big JPEG decode at the smallest DCT scale still at least the resize target (2-4x faster for
        phone photos, but up to tens of grey levels off): training's augmentation uses it, where the
        pixels are perturbed anyway."""
        if isinstance(source, Image.Image):
            return to_8bit(source, self.mode)
        if isinstance(source, np.ndarray):
            return to_8bit(Image.fromarray(_hwc_uint8(source)), self.mode)
        side = self.side
        return decode_image(source, self.mode, name=name, draft=(side, side) if draft else None)

    def pixels(self, source: Any) -> torch.Tensor:
        """uint8 (C, H, W) after decoding and the eval geometry."""
        return to_uint8_tensor(self.geometry(self.load(source)))

    def __call__(self, source: Any) -> torch.Tensor:
        """The model's float input (C, H, W) for one image."""
        return self.normalizer(self.pixels(source)[None])[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("_normalizer")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def _hwc_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype != np.uint8:
        raise ConfigError(f"a numpy image must be uint8 (H, W) or (H, W, C), got {a.dtype} {a.shape}")
    return a


def preprocess_for(
    info: Any,
    source_channels: int = 3,
    img_size: int | None = None,
    color_space: str = "auto",
    interpolation: str | None = None,
    crop_pct: float | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    resize: int | None = None,
) -> Preprocess:
    """The eval preprocessing of a model (``ModelInfo``) on a source with ``source_channels``:
    the model's input size, interpolation, crop fraction and mean/std unless given."""
    space = (
        ("gray" if source_channels == 1 and info.in_chans == 1 else "rgb")
        if color_space == "auto"
        else color_space
    )
    size = img_size or info.input_size[-1]
    return Preprocess(
        size=size,
        crop_pct=crop_pct if crop_pct is not None else info.crop_pct,
        interpolation=interpolation or info.interpolation,
        color_space=check_space(space),
        mean=tuple(mean or info.mean),
        std=tuple(std or info.std),
        source_channels=source_channels,
        pad_small=size <= SMALL,
        resize=resize,
    )


PAD_MODES = ("zeros", "reflect")


@dataclass
class AugmentConfig:
    """Training augmentation. ``augment_preset`` fills it for a data set; every field can be overridden."""

    hflip: float = 0.0  # probability of a left-right mirror
    alt_flip: bool = False  # instead: each image mirrored in every other epoch (batch_aug.alternating_flips)
    pad_crop: int = 0  # pixels of padding before a random crop of the original size
    pad_mode: str = (
        "zeros"  # what fills that padding: zeros (black) | reflect (the image mirrored at its edge)
    )
    rrc: bool = False  # random-resized crop instead of the eval geometry
    rrc_scale: tuple[float, float] = (0.08, 1.0)  # of the image area
    rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    color_jitter: float = 0.0  # brightness / contrast / saturation factors in [1-x, 1+x]

    @property
    def mirror_share(self) -> float:
        """The share of training views that were mirrored: ``hflip``, or 1/2 with ``alt_flip``. The
        test-time views (``--tta flip``, ``flip-shift``) mirror only a model that saw mirrors."""
        return 0.5 if self.alt_flip else self.hflip

    grayscale: float = 0.0  # probability
    auto_augment: str = "none"  # none | randaugment | trivialaugment
    ra_ops: int = 2
    ra_magnitude: int = 9  # of 30
    erasing: float = 0.0  # probability of random erasing per image
    mixup: float = 0.0  # Beta(alpha, alpha); 0 = off
    cutmix: float = 0.0
    mix_prob: float = 1.0  # probability that a batch is mixed at all
    mix_switch: float = 0.5  # probability of cutmix when both are on

    def __post_init__(self) -> None:
        if self.auto_augment not in AUTO_AUGMENTS:
            raise ConfigError(
                f"auto_augment must be one of {', '.join(AUTO_AUGMENTS)}, got {self.auto_augment!r}"
            )
        if self.pad_mode not in PAD_MODES:
            raise ConfigError(
                f"augment pad_mode must be one of {', '.join(PAD_MODES)}, got {self.pad_mode!r}"
            )
        if self.alt_flip and self.hflip:
            raise ConfigError(
                f"augment: alt_flip mirrors every other epoch in place of hflip's coin; set hflip to 0 (got {self.hflip})"
            )
        for name in ("hflip", "grayscale", "erasing", "mix_prob", "mix_switch"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"augment {name} is a probability in [0, 1], got {getattr(self, name)}")

    @property
    def mixes(self) -> bool:
        return self.mixup > 0 or self.cutmix > 0


def augment_preset(name: str, size: int, source_channels: int) -> AugmentConfig:
    """``none``; ``basic``: small images (<= 64 px) pad-and-crop by 1/8 of the side (1/16 for 1-channel
    images such as digits), larger ones get
    Inception's random-resized crop; natural (RGB) images are also mirrored — digits and letters are
    not, as a mirrored '2' is no longer a '2'; ``strong``: basic + TrivialAugment, random erasing 0.25
    and mixup 0.2 / cutmix 1.0 (RGB)."""
    if name not in PRESETS:
        raise ConfigError(f"augmentation preset must be one of {', '.join(PRESETS)}, got {name!r}")
    if name == "none":
        return AugmentConfig()
    natural = source_channels == 3
    cfg = AugmentConfig(hflip=0.5 if natural else 0.0)
    if size <= SMALL:  # CIFAR's classic 4 px of 32; digits, centred by their makers, shift by half that
        cfg.pad_crop = max(1, size // 8 if natural else size // 16)
    else:
        cfg.rrc = True
    if name == "strong":
        cfg.erasing = 0.25
        if natural:
            cfg.auto_augment, cfg.mixup, cfg.cutmix = "trivialaugment", 0.2, 1.0
    return cfg


def _color_ops(aug: AugmentConfig) -> list[Transform]:
    ops: list[Transform] = []
    if aug.color_jitter:
        ops.append(ColorJitter(aug.color_jitter, aug.color_jitter, aug.color_jitter))
    if aug.grayscale:
        ops.append(RandomGrayscale(aug.grayscale))
    if aug.auto_augment == "randaugment":
        ops.append(RandAugment(aug.ra_ops, aug.ra_magnitude))
    elif aug.auto_augment == "trivialaugment":
        ops.append(TrivialAugment())
    return ops


class SampleTransform:
    """Per image, in workers: decoded Pillow image -> augmented uint8 (C, H, W)."""

    def __init__(self, pre: Preprocess, aug: AugmentConfig | None) -> None:
        self.pre = pre
        ops: list[Transform] = []
        if aug is not None:
            if aug.rrc:
                ops.append(RandomResizedCrop(pre.size, aug.rrc_scale, aug.rrc_ratio, pre.interpolation))
            else:
                ops.append(lambda img, rng: pre.geometry(img))
            if aug.pad_crop:
                ops.append(PadCrop(pre.size, aug.pad_crop, aug.pad_mode))
            if aug.hflip:
                ops.append(HorizontalFlip(aug.hflip))
            ops += _color_ops(aug)
        else:
            ops.append(lambda img, rng: pre.geometry(img))
        self.ops = Compose(ops)

    def __call__(self, img: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        return to_uint8_tensor(self.ops(img, rng))


class BatchTransform:
    """Per batch, in the main process: uint8 (or [0, 1] float) pixels -> normalised model input,
    then random erasing and mixup / cutmix (targets become soft rows when mixed)."""

    def __init__(
        self, pre: Preprocess, aug: AugmentConfig | None, num_classes: int, smoothing: float = 0.0
    ) -> None:
        self.normalizer, self.aug, self.num_classes, self.smoothing = (
            pre.normalizer,
            aug,
            num_classes,
            smoothing,
        )

    def __call__(
        self, x: torch.Tensor, targets: torch.Tensor, g: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.normalizer(x)
        aug = self.aug
        if aug is None or g is None:
            return x, targets
        if aug.erasing:
            x = batch_aug.random_erasing(x, g, aug.erasing)
        if aug.mixes:
            x, targets = batch_aug.mix(
                x,
                targets,
                g,
                self.num_classes,
                aug.mixup,
                aug.cutmix,
                aug.mix_prob,
                aug.mix_switch,
                self.smoothing,
            )
        return x, targets


class CachedBatchAugment:
    """The geometry and colour part of ``SampleTransform`` on whole uint8 batches of cached images
    (already at the eval geometry). Pillow-only operations (RandAugment / TrivialAugment) still run per image."""

    def __init__(self, pre: Preprocess, aug: AugmentConfig, seed: int = 0) -> None:
        self.pre, self.aug, self.seed = pre, aug, seed
        self.pil_ops = Compose(
            [op for op in _color_ops(aug) if not isinstance(op, ColorJitter | RandomGrayscale)]
        )

    def __call__(
        self, x: torch.Tensor, g: torch.Generator, index: torch.Tensor | None = None, epoch: int = 0
    ) -> torch.Tensor:
        """``index`` (the images' dataset indices) and ``epoch`` decide the alternating flips."""
        aug = self.aug
        if aug.rrc:
            x = batch_aug.resized_crop(x, g, self.pre.size, aug.rrc_scale, aug.rrc_ratio)
        if aug.pad_crop or aug.hflip:
            x = batch_aug.pad_crop(x, g, aug.pad_crop, aug.hflip, aug.pad_mode)
        if aug.alt_flip:
            if index is None:
                raise ValueError("alternating flips need the images' indices")
            mask = batch_aug.alternating_flips(index.cpu(), self.seed, epoch).to(x.device)
            x = torch.where(mask.view(-1, 1, 1, 1), x.flip(-1), x)
        if aug.auto_augment != "none":  # Pillow's operations: on the CPU, image by image
            seed = int(torch.randint(2**62, (), generator=g))
            rng = np.random.default_rng(seed)
            x = torch.stack([to_uint8_tensor(self.pil_ops(_pil(img), rng)) for img in x.cpu()]).to(x.device)
        if aug.color_jitter or aug.grayscale:
            x = x.float() / 255.0  # the normaliser takes [0, 1] floats as well as uint8
            if aug.color_jitter:
                x = batch_aug.color_jitter(x, g, aug.color_jitter, aug.color_jitter, aug.color_jitter)
            if aug.grayscale and x.shape[1] == 3:
                gray = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
                x = torch.where(
                    (torch.rand(x.shape[0], generator=g) < aug.grayscale).view(-1, 1, 1, 1).to(x.device),
                    gray,
                    x,
                )
        return x


def _pil(chw: torch.Tensor) -> Image.Image:
    a = chw.numpy()
    return Image.fromarray(a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0))
