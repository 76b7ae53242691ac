"""Families of generated images: one picture and its edited copies (for search by image).

Used by the tests and by bench/quality.py. The same seed always gives the same family.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance

from tests.images import encode, picture

SIZE = (640, 480)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    return encode(image.convert("RGB"), "JPEG", quality=quality)


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    w, h = image.size
    dx, dy = round(w * fraction / 2), round(h * fraction / 2)
    return image.crop((dx, dy, w - dx, h - dy))


def _overlay(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    draw.rectangle((20, image.height - 60, 300, image.height - 20), fill=(0, 0, 0))
    draw.text((30, image.height - 50), "(c) 2026 some photographer", fill=(255, 255, 255))
    return out


# name -> (edit, needs orientations=all to be found)
EDITS: dict[str, tuple[Callable[[Image.Image], bytes], bool]] = {
    "resize": (lambda im: _jpeg(im.resize((320, 240), Image.Resampling.LANCZOS)), False),
    "recompress": (lambda im: _jpeg(im, quality=55), False),
    "brightness": (lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.1)), False),
    "crop 2%": (lambda im: _jpeg(_crop(im, 0.02)), False),
    "crop 5%": (lambda im: _jpeg(_crop(im, 0.05)), False),
    "png": (lambda im: encode(im, "PNG"), False),
    "exif rotated": (lambda im: encode(im, "JPEG", exif_orientation=6, quality=90), False),
    "text overlay": (lambda im: _jpeg(_overlay(im)), False),
    "rotate 90": (lambda im: _jpeg(im.transpose(Image.Transpose.ROTATE_90)), True),
    "rotate 180": (lambda im: _jpeg(im.transpose(Image.Transpose.ROTATE_180)), True),
    "mirror": (lambda im: _jpeg(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)), True),
}


def original(seed: int) -> bytes:
    return _jpeg(picture(SIZE, seed))


def edited(seed: int, edit: str) -> bytes:
    return EDITS[edit][0](picture(SIZE, seed))


def size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as im:
        return im.size
