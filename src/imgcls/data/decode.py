"""The one decode path: bytes or a file in, an 8-bit RGB (or L) Pillow image out, or one typed
error naming the file and the reason. Training, evaluation, prediction and the server all use it,
so the same bytes always become the same pixels.

What it does, in order:
- reads the whole file (a zero-byte file is an error, not an empty image);
- opens it with Pillow and refuses more than ``max_pixels`` pixels *before* decoding
  (a decompression bomb: a small file that would expand to gigabytes);
- takes the first frame of an animated image;
- optionally lets a JPEG decode at reduced size (``draft``: DCT scaling, 2-8x faster for big photos;
  training augmentation only — evaluation, prediction and the server decode in full, so a photo's
  eval pixels are exactly torchvision's);
- decodes fully inside the error handler (Pillow opens lazily: a truncated file only fails here);
- applies the EXIF orientation (phone photos are stored sideways);
- converts every mode to 8-bit: CMYK via Pillow's conversion, 16-bit and 32-bit integer images
  rescaled by their bit depth (65535 -> 255, never clipped), float images from [0, 1] (or their own
  range when outside it), and transparency (RGBA, LA, palette with a transparent colour)
  composited over white, as a viewer shows it.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import ImgclsError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default limit (~ 9459 x 9459)


class BadImageError(ImgclsError, ValueError):
    """A file that is not a decodable image. ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(
            f"image {path!r} {reason}; fix or remove it, or use --on-bad-image=skip to leave it out"
        )


def decode_image(
    source: str | Path | bytes,
    mode: str = "RGB",
    *,
    name: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode ``source`` (a path or the file's bytes) to an 8-bit ``mode`` ("RGB" or "L") image.

    ``name`` is what errors call the image (default: the path, or "<bytes>"). ``draft=(w, h)``
    lets JPEGs decode at the smallest DCT scale that is still at least (w, h).
    Raises ``BadImageError`` for anything that is not a complete, decodable image.
    """
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "<bytes>"
    else:
        label = name or str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as e:
            raise BadImageError(label, f"cannot be read ({e.strerror or e})") from None
    if not data:
        raise BadImageError(label, "is an empty file (0 bytes)")

    try:
        with warnings.catch_warnings():
            # our own limit below replaces Pillow's warning (its hard error, at 2x its
            # Image.MAX_IMAGE_PIXELS, still applies: raise that too for limits above ~179M pixels)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            w, h = img.size
            if w * h > max_pixels:
                raise BadImageError(
                    label,
                    f"is too large: {w}x{h} = {w * h:,} pixels > the limit of {max_pixels:,} (a decompression bomb?)",
                )
            if getattr(img, "is_animated", False):
                img.seek(0)
            if draft is not None and img.format == "JPEG":
                img.draft("RGB" if mode == "RGB" else "L", draft)
            img.load()
            img = ImageOps.exif_transpose(img)
    except BadImageError:
        raise
    except UnidentifiedImageError:
        raise BadImageError(label, f"is not an image ({_sniff(data)})") from None
    except Image.DecompressionBombError as e:
        raise BadImageError(label, f"is too large ({e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason or isinstance(e, EOFError):
            raise BadImageError(label, f"is truncated ({len(data):,} bytes; {reason})") from None
        raise BadImageError(label, f"cannot be decoded ({reason})") from None
    return to_8bit(img, mode)


def to_8bit(img: Image.Image, mode: str = "RGB") -> Image.Image:
    """Any Pillow mode -> 8-bit ``mode``, rescaling deep images and compositing transparency on white."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "PA":
        img = img.convert("RGBA")
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        img = Image.fromarray(_rescale(np.asarray(img), img.mode), "L")
    if img.mode in ("RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode == "1":
        img = img.convert("L")
    return img if img.mode == mode else img.convert(mode)


def _rescale(a: np.ndarray, pil_mode: str) -> np.ndarray:
    """Deep single-channel pixels to uint8 by their bit depth (not clipped)."""
    a = a.astype(np.float64)
    if pil_mode == "F":
        lo, hi = (
            (0.0, 1.0) if a.size == 0 or (a.min() >= 0 and a.max() <= 1) else (float(a.min()), float(a.max()))
        )
    elif pil_mode.startswith("I;16") or (a.size and a.min() >= 0 and a.max() <= 65535):
        lo, hi = 0.0, 65535.0  # 16-bit samples (Pillow opens 16-bit PNGs as "I" or "I;16")
    else:
        lo, hi = float(a.min()), float(a.max())
    scaled = (a - lo) / max(hi - lo, 1e-12) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _sniff(data: bytes) -> str:
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        return "it is an HTML page, perhaps saved from a browser instead of the image"
    try:
        data[:512].decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "unknown format"
