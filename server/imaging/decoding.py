"""Decoding an image once, small and upright: the working image that hashing, region
signals and thumbnails all start from.

JPEG decodes at a reduced DCT scale in libjpeg; other formats decode whole and are box
reduced. Alpha is kept for thumbnails and flattened onto white for hashing (what a viewer
shows on a page); the EXIF orientation is applied to the small image.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import NamedTuple

import numpy as np
from PIL import Image

from server.imaging.sniff import pillow_format

# Short side of the working image; the hashes shrink it to at most 64 px anyway.
WORKING_SHORT_SIDE = 256

# EXIF orientation -> the transpose that turns the stored pixels upright (as exif_transpose).
ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION_TAG = 0x0112

# What Pillow raises on truncated or malformed data (plugins are partly pure Python).
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
    Image.DecompressionBombError,
    # The JPEG XL and HEIF decoders' bindings raise it on data their library refuses.
    RuntimeError,
    # Pillow warns about broken metadata and carries on; where warnings are errors (the
    # tests) that aborts the decode, which is then a corrupt image like any other.
    UserWarning,
)


class Working(NamedTuple):
    """The small, upright, alpha-flattened images the hashes are computed from."""

    gray: Image.Image  # mode L
    rgb: Image.Image  # mode RGB, same size
    display: Image.Image  # L, LA, RGB or RGBA, same size: alpha kept (for thumbnails)
    # Mode L, upright, flattened, long side >= the detail_side asked for (when the image has
    # it): what a query's picture regions are found in. None unless asked for.
    detail: Image.Image | None = None


# --- decoding ----------------------------------------------------------------------------


def _to_uint8(im: Image.Image) -> Image.Image:
    """An L image from a 16/32-bit integer or float one, keeping the full tonal range."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        scaled = arr.astype(np.float32) / 257.0  # 16-bit samples: fixed scale
    else:
        lo, hi = float(arr.min()), float(arr.max())
        if 0.0 <= lo and hi <= 255.0 and (im.mode == "I" or hi > 1.0):
            scaled = arr.astype(np.float32)  # already 8-bit values
        elif 0.0 <= lo and hi <= 1.0:
            scaled = arr.astype(np.float32) * 255.0  # float in [0, 1]
        elif 0.0 <= lo and hi <= 65535.0:
            scaled = arr.astype(np.float32) / 257.0  # 16-bit values stored as I
        else:
            scaled = (arr.astype(np.float32) - lo) * (255.0 / max(hi - lo, 1e-12))
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))  # 2-D uint8: L


def normalise_mode(im: Image.Image) -> Image.Image:
    """One of L, LA, RGB, RGBA, keeping transparency (palette or tRNS) as an alpha channel.

    Done before any reduction: averaging palette indices or a transparent colour is wrong.
    """
    mode = im.mode
    transparent = im.info.get("transparency") is not None
    if mode in ("L", "RGB") and not transparent:
        return im
    if mode in ("LA", "RGBA"):
        return im
    if transparent and mode in ("1", "L", "P", "RGB"):
        return im.convert("RGBA")  # a converter warns when P with byte transparency goes RGB
    if mode in ("PA", "RGBa", "RGBX"):
        return im.convert("RGBA" if mode != "RGBX" else "RGB")
    if mode == "La":
        return im.convert("LA")
    if mode in ("1", "P"):
        return im.convert("L" if mode == "1" else "RGB")
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _to_uint8(im)
    return im.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def flatten(im: Image.Image) -> Image.Image:
    """Alpha composited onto white (what a viewer shows on a page), as L or RGB."""
    if im.mode not in ("LA", "RGBA"):
        return im
    base_mode = im.mode[:-1]
    white = Image.new(base_mode, im.size, 255 if base_mode == "L" else (255, 255, 255))
    white.paste(im.convert(base_mode), mask=im.getchannel("A"))
    return white


def _reduced(im: Image.Image, short_side: int) -> Image.Image:
    """A box reduction keeping the short side >= short_side (when it was)."""
    factor = max(1, min(im.size) // short_side)
    if factor == 1:
        im.load()
        return im
    return im.reduce(factor)


def _decode(im: Image.Image, detail_side: int | None) -> tuple[Image.Image,
                                                                        Image.Image | None]:
    """Decode once: the working size (short side about WORKING_SHORT_SIDE, never below if
    larger) and, when detail_side is given, a larger copy with a long side of at least
    detail_side (when the image has it) that the working size is reduced from."""
    jpeg = pillow_format(im) == "JPEG"
    if jpeg:
        # DCT scaling: libjpeg decodes at 1/2, 1/4 or 1/8 keeping both sides >= the target.
        w, h = im.size
        target = (WORKING_SHORT_SIDE, WORKING_SHORT_SIDE)
        if detail_side is not None:  # and the long side >= detail_side
            ratio = detail_side / max(w, h)
            target = (max(target[0], math.ceil(w * ratio)), max(target[1], math.ceil(h * ratio)))
        im.draft(im.mode, target)
        im.load()
    base = normalise_mode(im)
    if detail_side is None:
        return (base if jpeg else _reduced(base, WORKING_SHORT_SIDE)), None
    if jpeg:  # the working size from the larger decode: no second decode
        return _reduced(base, WORKING_SHORT_SIDE), base
    return (_reduced(base, WORKING_SHORT_SIDE),
            base.reduce(max(1, max(base.size) // detail_side)))


def exif_orientation(im: Image.Image) -> int:
    """The EXIF orientation 1-8 of an image; 1 when absent, invalid or unreadable."""
    try:
        value = im.getexif().get(_EXIF_ORIENTATION_TAG, 1)
    except DECODE_ERRORS:
        return 1  # a broken EXIF block does not make the picture unusable
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def working_image(im: Image.Image, detail_side: int | None = None,
                  orientation: int | None = None) -> Working:
    """The small upright working images of a freshly opened (not yet loaded) image, and
    with detail_side the larger gray copy too (from the same decode).

    Hash variants (rotations, flips) are cheap from here: ``hashes_of(w.gray.transpose(t))``.
    `orientation`: EXIF's 1-8 when the caller knows it; else read from the image.
    Raises what Pillow raises on corrupt data; the caller has checked the pixel count.
    """
    display, detail = _decode(im, detail_side)
    if display is im:
        display = im.copy()  # the working images must outlive the opened file
    # After decoding: a PNG's eXIf chunk may follow the pixel data.
    transpose = ORIENTATION_TRANSPOSE.get(
        orientation if orientation is not None else exif_orientation(im))
    if transpose is not None:
        display = display.transpose(transpose)
        detail = detail.transpose(transpose) if detail is not None else None
    gray_detail = flatten(detail).convert("L") if detail is not None else None
    small = flatten(display)
    if small.mode == "L":
        return Working(gray=small, rgb=small.convert("RGB"), display=display,
                       detail=gray_detail)
    return Working(gray=small.convert("L"), rgb=small, display=display, detail=gray_detail)
