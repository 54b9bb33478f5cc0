"""The one decode path on the images people really have (tests/fixtures/images/bad, made from a
real CIFAR-10 image by tests/fixtures/make_bad_images.py), and on arbitrary bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from imgcls.data import BadImageError, decode_image

IMAGES = Path(__file__).parents[1] / "fixtures" / "images"
BAD = IMAGES / "bad"
CAT = IMAGES / "cifar" / "cat_0000.jpg"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("truncated.jpg", "is truncated"),
        ("empty.jpg", "is an empty file"),
        ("page.jpg", "HTML page"),
        ("notes.png", "text file"),
        ("bomb.png", "is too large: 12000x12000"),
    ],
)
def test_broken_files_raise_one_typed_error_naming_the_file(name: str, reason: str) -> None:
    with pytest.raises(BadImageError) as e:
        decode_image(BAD / name)
    message = str(e.value)
    assert name in message and reason in message and "\n" not in message
    assert e.value.path.endswith(name) and "--on-bad-image=skip" in message


def test_a_real_image_decodes_to_8bit_rgb() -> None:
    img = decode_image(CAT)
    assert img.mode == "RGB" and img.size == (32, 32)
    assert decode_image(CAT, "L").mode == "L"
    assert np.array_equal(np.asarray(decode_image(CAT.read_bytes())), np.asarray(img))  # bytes == path


def test_cmyk_is_converted_to_the_same_colours() -> None:
    rgb = np.asarray(decode_image(BAD / "exif_rotated.jpg").rotate(90, expand=True), dtype=float)
    cmyk = np.asarray(decode_image(BAD / "cmyk.jpg"), dtype=float)
    assert cmyk.shape == rgb.shape == (48, 64, 3)
    assert np.abs(cmyk - rgb).mean() < 6  # two JPEG encodings of one picture


def test_16_bit_is_rescaled_not_clipped() -> None:
    a = np.asarray(decode_image(BAD / "gray16.png", "L"))
    assert a.dtype == np.uint8 and a.min() == 0 and a.max() == 255
    assert 100 < a.mean() < 155  # a full-range ramp stays a ramp (clipping would make it ~all 255)
    assert np.all(np.diff(a.astype(int).ravel()) >= 0)


def test_transparency_is_composited_on_white() -> None:
    src = Image.open(BAD / "palette_alpha.png")
    transparent = np.asarray(src) == src.info["transparency"]
    assert transparent.any()
    rgb = np.asarray(decode_image(BAD / "palette_alpha.png"))
    assert (rgb[transparent] == 255).all()


def test_exif_orientation_is_applied() -> None:
    img = decode_image(BAD / "exif_rotated.jpg")
    assert img.size == (48, 64)  # stored 64x48 with "rotate 90 degrees clockwise"


def test_animated_image_gives_its_first_frame() -> None:
    a = np.asarray(decode_image(BAD / "animated.gif"))
    assert a.shape == (32, 32, 3) and (a[..., 0] > 200).all() and (a[..., 1:] < 50).all()


def test_bomb_limit_is_adjustable() -> None:
    img = decode_image(BAD / "bomb.png", "L", max_pixels=150_000_000)
    assert img.size == (12_000, 12_000)


def test_jpeg_draft_decodes_near_the_target_size() -> None:
    big = Image.open(CAT).resize((512, 512))
    import io

    buf = io.BytesIO()
    big.save(buf, "JPEG")
    assert decode_image(buf.getvalue(), draft=(128, 128)).size == (128, 128)
    assert decode_image(buf.getvalue()).size == (512, 512)


def test_unreadable_path_is_a_bad_image() -> None:
    with pytest.raises(BadImageError, match="cannot be read"):
        decode_image(IMAGES / "no-such-file.jpg")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_any_bytes_give_an_image_or_the_typed_error(data: bytes) -> None:
    try:
        img = decode_image(data, max_pixels=4_000_000)
    except BadImageError:
        return
    assert img.mode == "RGB" and img.size[0] * img.size[1] > 0


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2000), st.binary(min_size=1, max_size=64))
def test_damaged_real_jpegs_give_an_image_or_the_typed_error(cut: int, junk: bytes) -> None:
    data = bytearray(CAT.read_bytes())
    data[cut % len(data) : cut % len(data) + len(junk)] = junk
    try:
        img = decode_image(bytes(data))
    except BadImageError:
        return
    assert img.mode == "RGB"
