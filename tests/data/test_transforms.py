"""Transforms: per-image (Pillow) and per-batch (tensor) augmentation, colour spaces, the eval
preprocessing and the presets chosen from a model's metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import imgcls
from imgcls.data import batch_aug
from imgcls.data.autoaugment import OPS, RandAugment, TrivialAugment, apply_op
from imgcls.data.colorspace import COLOR_SPACES, Normalizer, convert, out_channels
from imgcls.data.decode import decode_image
from imgcls.data.pipeline import AugmentConfig, Preprocess, SampleTransform, augment_preset, preprocess_for
from imgcls.data.transforms import (
    CenterCrop,
    ColorJitter,
    HorizontalFlip,
    PadCrop,
    RandomGrayscale,
    RandomResizedCrop,
    Resize,
    random_crop_box,
    to_uint8_tensor,
)
from imgcls.errors import ConfigError

FIXTURES = Path(__file__).parents[1] / "fixtures"
CAT = decode_image(FIXTURES / "cifar_jpg" / "train" / "cat" / "0000.jpg")
PHOTO = decode_image(FIXTURES / "images" / "bad" / "exif_rotated.jpg")  # 48 x 64 after EXIF rotation


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img)


def test_resize_and_center_crop() -> None:
    r = Resize(96)(PHOTO)
    assert min(r.size) == 96 and abs(r.size[0] / r.size[1] - PHOTO.size[0] / PHOTO.size[1]) < 0.02
    assert Resize(32)(CAT) is CAT
    c = CenterCrop(24)(CAT)
    assert c.size == (24, 24) and np.array_equal(pixels(c), pixels(CAT)[4:28, 4:28])
    padded = CenterCrop(40)(CAT)  # larger than the image: centred on black
    assert padded.size == (40, 40) and np.array_equal(pixels(padded)[4:36, 4:36], pixels(CAT))
    assert pixels(padded)[:4].max() == 0


def test_random_transforms_repeat_with_the_same_generator() -> None:
    for t in (
        RandomResizedCrop(24), HorizontalFlip(0.5), PadCrop(32, 4), ColorJitter(0.4, 0.4, 0.4, 0.1),
        RandomGrayscale(0.5), RandAugment(), TrivialAugment(),
    ):  # fmt: skip
        outs = [pixels(t(CAT, rng(s))) for s in (1, 1, 2, 3, 4, 5)]
        assert np.array_equal(outs[0], outs[1]), t
        assert any(not np.array_equal(outs[0], o) for o in outs[2:]), t


def test_random_resized_crop_boxes_stay_inside() -> None:
    g = rng(0)
    for _ in range(500):
        left, top, right, bottom = random_crop_box(64, 48, (0.08, 1.0), (3 / 4, 4 / 3), g)
        assert 0 <= left < right <= 64 and 0 <= top < bottom <= 48
    assert RandomResizedCrop(20)(PHOTO, g).size == (20, 20)


def test_pad_crop_is_a_shift_of_the_image() -> None:
    out = pixels(PadCrop(32, 4)(CAT, rng(7))).astype(int)
    padded = np.pad(pixels(CAT).astype(int), ((4, 4), (4, 4), (0, 0)))
    assert any(np.array_equal(out, padded[y : y + 32, x : x + 32]) for y in range(9) for x in range(9))


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_every_augment_op_keeps_size_and_mode(name: str, mode: str) -> None:
    img = CAT.convert(mode)
    for level in (0.0, 0.5, 1.0):
        for wide in (False, True):
            out = apply_op(img, name, level, wide, rng())
            assert out.size == img.size and out.mode == mode


def test_batched_pad_crop_and_flip() -> None:
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(batch_aug.pad_crop(x, g, 0, 0.0), x)
    assert torch.equal(batch_aug.pad_crop(x, g, 0, 1.0), x.flip(-1))
    out = batch_aug.pad_crop(x, g, 4, 0.5)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for i in range(len(x)):  # every output is a window of its own padded image, maybe mirrored
        windows = [padded[i, :, y : y + 32, c : c + 32] for y in range(9) for c in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    again = batch_aug.pad_crop(x, torch.Generator().manual_seed(5), 4, 0.5)
    assert torch.equal(again, batch_aug.pad_crop(x, torch.Generator().manual_seed(5), 4, 0.5))


def test_batched_resized_crop_and_jitter() -> None:
    x = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    g = torch.Generator().manual_seed(0)
    out = batch_aug.resized_crop(x, g, 24, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert out.shape == (8, 3, 24, 24) and out.dtype == torch.uint8
    full = batch_aug.resized_crop(x, g, 32, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert (full.int() - x.int()).abs().max() <= 1  # the whole image at its own size is the image
    f = batch_aug.color_jitter(x.float() / 255, g)
    assert f.shape == x.shape and 0 <= f.min() and f.max() <= 1


def test_random_erasing() -> None:
    x = torch.randn(16, 3, 32, 32)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(batch_aug.random_erasing(x, g, p=0.0), x)
    out = batch_aug.random_erasing(x, g, p=1.0)
    changed = (out != x).any(1).float().mean((1, 2))
    assert (changed > 0.015).all() and (changed < 0.4).all()  # a 2 %..33 % rectangle in every image


def test_mixup_and_cutmix_targets() -> None:
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 8, 8).contiguous()
    y = torch.tensor([0, 1, 2, 3])
    g = torch.Generator().manual_seed(0)
    mixed, soft = batch_aug.mix(x, y, g, 5, mixup_alpha=0.4)
    assert torch.allclose(soft.sum(1), torch.ones(4))
    lam = soft[0, 0].item()
    assert torch.allclose(mixed[0], x[0] * lam + x[3] * (1 - lam))
    cut, soft = batch_aug.mix(x, y, g, 5, cutmix_alpha=1.0)
    kept = (cut[0] == 0).float().mean().item()  # image 0's pixels left after pasting image 3's box
    assert abs(soft[0, 0].item() - kept) < 1e-6 and abs(soft[0, 3].item() - (1 - kept)) < 1e-6
    _, smooth = batch_aug.mix(x, y, g, 5, smoothing=0.1)  # no mixing: one-hot with smoothing
    assert torch.allclose(smooth[0], torch.tensor([0.92, 0.02, 0.02, 0.02, 0.02]))
    multi = torch.tensor([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]], dtype=torch.uint8)
    _, soft = batch_aug.mix(x, multi, g, 3, mixup_alpha=0.4)
    assert soft.shape == (4, 3) and soft.max() <= 1


@pytest.mark.parametrize("space", COLOR_SPACES)
@pytest.mark.parametrize("channels", [1, 3])
def test_color_spaces_shape_and_range(space: str, channels: int) -> None:
    x = torch.rand(2, channels, 16, 16)
    y = convert(x, space)
    assert y.shape == (2, out_channels(space, channels), 16, 16)
    assert y.min() >= 0 and y.max() <= 1 + 1e-6


def test_color_space_values() -> None:
    gray_img = torch.full((1, 3, 8, 8), 0.6)
    yuv = convert(gray_img, "yuv")
    assert torch.allclose(yuv[0, 0], torch.tensor(0.6)) and torch.allclose(
        yuv[0, 1:], torch.tensor(0.5), atol=1e-6
    )
    assert torch.allclose(convert(gray_img, "lbp"), torch.tensor(1.0))  # every neighbour >= the centre
    fft = convert(torch.full((1, 1, 8, 8), 0.5), "fft")
    assert fft[0, 0, 4, 4] > 0 and fft.sum() == fft[0, 0, 4, 4]  # only the (centred) DC term
    rgb = torch.from_numpy(np.array(CAT)).permute(2, 0, 1)[None].float() / 255
    ours = convert(rgb, "gray")[0, 0] * 255
    pillow = torch.from_numpy(np.array(CAT.convert("L"))).float()
    assert (ours - pillow).abs().max() <= 1.0


@pytest.mark.parametrize("space", COLOR_SPACES)
def test_normalizer_batch_equals_single_images(space: str) -> None:
    x = torch.randint(0, 256, (5, 3, 16, 16), dtype=torch.uint8)
    norm = Normalizer(space, (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    batch = norm(x)
    for i in range(5):
        assert torch.equal(batch[i], norm(x[i : i + 1])[0])
    assert torch.isfinite(batch).all()


def test_preprocess_follows_the_model_metadata() -> None:
    pre = preprocess_for(imgcls.model_info("resnet50"), 3)
    assert (pre.size, pre.crop_pct, pre.interpolation, pre.mean) == (
        224,
        0.875,
        "bilinear",
        (0.485, 0.456, 0.406),
    )
    vit = preprocess_for(imgcls.model_info("vit_base_patch16_224"), 3)
    assert vit.interpolation == "bicubic" and vit.mean == (0.5, 0.5, 0.5)
    x = pre(FIXTURES / "images" / "bad" / "exif_rotated.jpg")
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    lenet = preprocess_for(imgcls.model_info("lenet5"), 1)
    assert lenet.color_space == "gray" and lenet.channels == 1
    assert Preprocess.from_dict(pre.to_dict()) == pre
    with pytest.raises(ConfigError):
        Preprocess(32, color_space="hsv")


def test_mnist_digits_are_padded_to_lenets_32_pixels_untouched() -> None:
    pre = preprocess_for(imgcls.model_info("lenet5"), 1)
    digit = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    out = pre.pixels(digit)[0].numpy()
    assert out.shape == (32, 32) and np.array_equal(out[2:30, 2:30], digit) and out[:2].max() == 0


def test_presets() -> None:
    small = augment_preset("basic", 32, 3)
    assert small.pad_crop == 4 and small.hflip == 0.5 and not small.rrc
    digits = augment_preset("basic", 32, 1)
    assert digits.hflip == 0.0 and digits.pad_crop == 2  # a mirrored digit is not the same digit
    large = augment_preset("basic", 224, 3)
    assert large.rrc and large.pad_crop == 0
    strong = augment_preset("strong", 224, 3)
    assert strong.auto_augment == "trivialaugment" and strong.mixup > 0 and strong.erasing > 0
    assert augment_preset("none", 224, 3) == AugmentConfig()
    with pytest.raises(ConfigError):
        augment_preset("extreme", 32, 3)
    with pytest.raises(ConfigError):
        AugmentConfig(hflip=2.0)


def test_sample_transform_output() -> None:
    pre = preprocess_for(imgcls.model_info("resnet18"), 3, img_size=64)
    t = SampleTransform(pre, augment_preset("strong", 64, 3))
    out = t(PHOTO, rng(0))
    assert out.shape == (3, 64, 64) and out.dtype == torch.uint8
    assert torch.equal(SampleTransform(pre, None)(PHOTO, rng(0)), pre.pixels(PHOTO))
    assert torch.equal(to_uint8_tensor(CAT), torch.from_numpy(np.array(CAT)).permute(2, 0, 1))


def torchvision_eval(img: Image.Image, resize: int, crop: int) -> Image.Image:
    """torchvision's ``Resize(resize)`` + ``CenterCrop(crop)`` on a PIL image, spelled out from
    torchvision/transforms/functional.py: the shorter side becomes ``resize`` and the longer
    ``int(resize * long / short)`` (truncated); the crop starts at ``int(round((side - crop) / 2))``
    (Python's round: half to even)."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = int(round((new_w - crop) / 2.0)), int(round((new_h - crop) / 2.0))  # noqa: RUF046  (torchvision's spelling)
    return img.crop((left, top, left + crop, top + crop))


SIDES = [50, 51, 99, 168, 200, 223, 224, 225, 255, 256, 257, 333, 500, 511, 640, 1000]


def test_eval_geometry_is_torchvision_resize_and_center_crop_pixel_for_pixel() -> None:
    """Every (width, height) of a grid from 50 to 1000 px, odd and even, portrait and landscape:
    the eval geometry of a 224-px ImageNet model gives torchvision's pixels exactly."""
    import imgcls

    pre = preprocess_for(imgcls.model_info("resnet50"), 3)
    assert (pre.size, int(pre.size / pre.crop_pct), pre.pad_small) == (224, 256, False)
    rng = np.random.default_rng(0)
    for w in SIDES:
        for h in SIDES:
            img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            ours = np.asarray(pre.geometry(img))
            theirs = np.asarray(torchvision_eval(img, 256, 224))
            assert ours.shape == theirs.shape == (224, 224, 3), (w, h)
            assert np.array_equal(ours, theirs), (w, h)


PHOTO_SIZES = [(512, 700), (640, 512), (1000, 1000), (1920, 1080), (4032, 3024), (3024, 4032)]


@pytest.fixture(scope="module")
def big_photos(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Photo-sized JPEGs (a real CIFAR-10 image scaled up, with sensor-like noise so the JPEG holds
    fine detail), from a short side of 512 to a phone's 4032 x 3024, portrait and landscape."""
    out = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    files = []
    for i, (w, h) in enumerate(PHOTO_SIZES):
        src = sorted((FIXTURES / "cifar_jpg" / "test").glob("*/*.jpg"))[i]
        img = np.asarray(decode_image(src).resize((w, h), Image.Resampling.BICUBIC)).astype(np.int16)
        img = np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)
        files.append(out / "photos" / f"p{i}" / f"{w}x{h}.jpg")
        files[-1].parent.mkdir(parents=True)
        Image.fromarray(img).save(files[-1], quality=90)
    return files


def test_eval_pixels_of_big_photos_are_torchvisions(big_photos: list[Path]) -> None:
    """Issue 32: photos of 512 px and more were decoded at a reduced DCT scale before the resize (up to
    43 grey levels off torchvision's). Evaluation, prediction (path or bytes) and the eval loader now
    give torchvision's Resize(256) + CenterCrop(224) of the fully decoded photo, pixel for pixel."""
    from imgcls.data.loader import make_loader
    from imgcls.data.source import open_source

    pre = preprocess_for(imgcls.model_info("resnet50"), 3)
    for path in big_photos:
        theirs = np.asarray(torchvision_eval(Image.open(path).convert("RGB"), 256, 224))
        for source in (path, path.read_bytes()):
            ours = pre.pixels(pre.load(source)).permute(1, 2, 0).numpy()
            assert np.array_equal(ours, theirs), path.name
        drafted = pre.pixels(pre.load(path, draft=True)).permute(1, 2, 0).numpy()
        assert not np.array_equal(
            drafted, theirs
        )  # the reduced-scale decode really differs: the test can fail
    src = open_source(big_photos[0].parents[1])
    eval_loader = make_loader(src, "train", pre, None, len(big_photos))
    eval_loader.set_epoch(0)
    (batch,) = list(eval_loader.iter_from(0))
    paths = src.split("train").paths
    for x, i in zip(batch.images, batch.index):
        theirs = np.asarray(torchvision_eval(Image.open(paths[int(i)]).convert("RGB"), 256, 224))
        expected = pre.normalizer(torch.from_numpy(theirs.copy()).permute(2, 0, 1)[None])[0]
        assert torch.equal(x, expected), paths[int(i)]
