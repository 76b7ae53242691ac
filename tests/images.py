"""Test images made in memory: textured pictures from a seed, in any accepted format.

A picture is a smooth random colour field (bicubic upsampling of a few random cells) with a
handful of random shapes on it. Coordinates are fractions of the size, so one seed gives the
same picture at every size, and different seeds give unrelated perceptual hashes.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

# EXIF orientation -> the transpose that stores an upright picture so that applying the
# orientation (as viewers and ImageOps.exif_transpose do) gives it back: the inverse of
# the viewer's transpose; 6 and 8 are each other's inverse, the others are involutions.
STORE_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}

WHITE = (255, 255, 255)


def _shapes(size: tuple[int, int], rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """(RGB shapes on black, their L mask) with coordinates relative to ``size``."""
    w, h = size
    layer = Image.new("RGB", size)
    mask = Image.new("L", size)
    draw, mdraw = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    for _ in range(7):
        x0, x1 = sorted(rng.uniform(-0.1, 1.1, 2) * w)
        y0, y1 = sorted(rng.uniform(-0.1, 1.1, 2) * h)
        box = (x0, y0, max(x1, x0 + w / 8), max(y1, y0 + h / 8))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse(box, fill=colour)
            mdraw.ellipse(box, fill=255)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
            mdraw.rectangle(box, fill=255)
        else:
            points = [(float(x * w), float(y * h)) for x, y in rng.uniform(0, 1, (3, 2))]
            draw.polygon(points, fill=colour)
            mdraw.polygon(points, fill=255)
    return layer, mask


def picture(
    size: tuple[int, int] = (64, 48), seed: int = 0, *, transparent: bool = False
) -> Image.Image:
    """An RGB picture; with ``transparent``, RGBA whose background (not the shapes) is clear.

    The colour field stays under the clear background, so ignoring alpha changes the picture.
    """
    rng = np.random.default_rng(seed)
    cells = rng.integers(0, 256, (4, 5, 3), dtype=np.uint8)
    image = Image.fromarray(cells, "RGB").resize(size, Image.Resampling.BICUBIC)
    layer, mask = _shapes(size, rng)
    image.paste(layer, mask=mask)
    if transparent:
        image.putalpha(mask)
    return image


def on_white(image: Image.Image) -> Image.Image:
    """An RGBA/LA image composited onto white, as RGB."""
    white = Image.new("RGBA", image.size, WHITE + (255,))
    return Image.alpha_composite(white, image.convert("RGBA")).convert("RGB")


def _palette_with_clear_background(size: tuple[int, int], seed: int) -> Image.Image:
    """P mode, background set to a black palette entry marked transparent."""
    rgba = picture(size, seed, transparent=True)
    indexed = on_white(rgba).quantize(colors=255)
    palette = (indexed.getpalette() or [])[: 255 * 3]
    indexed.putpalette(palette + [0] * (768 - len(palette)))  # index 255 is black
    clear = Image.new("P", size, 255)
    indexed.paste(clear, mask=Image.eval(rgba.getchannel("A"), lambda a: 255 - a))
    indexed.info["transparency"] = 255
    return indexed


def picture_in_mode(
    size: tuple[int, int] = (64, 48), seed: int = 0, mode: str = "RGB", *, transparent: bool = False
) -> Image.Image:
    """The seed's picture in ``mode``. RGBA and LA always have a clear background; P has one
    (a transparent palette index) when ``transparent`` is set."""
    if mode == "RGB":
        return picture(size, seed)
    if mode in ("RGBA", "LA"):
        return picture(size, seed, transparent=True).convert(mode)
    if mode == "P":
        if transparent:
            return _palette_with_clear_background(size, seed)
        return picture(size, seed).quantize(colors=64)
    gray = picture(size, seed).convert("L")
    if mode in ("L", "1"):
        return gray.convert(mode)
    if mode in ("I;16", "I"):
        wide = np.asarray(gray).astype(np.uint16 if mode == "I;16" else np.int32) * 257
        return Image.fromarray(wide)  # uint16 -> I;16, int32 -> I
    return picture(size, seed).convert(mode)  # CMYK, YCbCr...


def encode(
    image: Image.Image, fmt: str, exif_orientation: int | None = None, **save_kwargs: Any
) -> bytes:
    """``image`` saved as ``fmt``. With ``exif_orientation``, the pixels are stored turned so
    that applying that orientation gives ``image`` back, and the tag is written."""
    if exif_orientation is not None:
        if fmt in ("GIF", "BMP"):
            raise ValueError(f"{fmt} has no EXIF")
        transpose = STORE_TRANSPOSE.get(exif_orientation)
        if transpose is not None:
            image = image.transpose(transpose)
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        save_kwargs.setdefault("exif", exif)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def make_image(
    fmt: str,
    size: tuple[int, int] = (64, 48),
    mode: str = "RGB",
    seed: int = 0,
    exif_orientation: int | None = None,
    *,
    transparent: bool = False,
    **save_kwargs: Any,
) -> bytes:
    """A textured picture encoded as ``fmt`` (JPEG, PNG, WEBP, GIF, BMP, TIFF).

    ``size`` is the upright size, after the EXIF orientation. The same seed gives the same
    picture; see picture_in_mode for ``mode`` and ``transparent``.
    """
    image = picture_in_mode(size, seed, mode, transparent=transparent)
    return encode(image, fmt, exif_orientation, **save_kwargs)


def make_animated_gif(size: tuple[int, int] = (64, 48), frames: int = 3, seed: int = 0) -> bytes:
    """An animated GIF whose frames are the pictures of seeds seed, seed+1, ..."""
    images = [picture(size, seed + i) for i in range(frames)]
    buffer = io.BytesIO()
    images[0].save(buffer, "GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A tiny PNG whose IHDR claims ``width`` x ``height`` RGB pixels (a decompression bomb
    to anything that decodes it); its IDAT holds only the first rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * width) * 4)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", rows)
        + _png_chunk(b"IEND", b"")
    )
