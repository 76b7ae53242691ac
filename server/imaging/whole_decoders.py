"""HEIF and JPEG XL pictures, which their libraries decode only whole: decoded into a numpy
array and reduced at once by OpenCV to the size the caller needs. The full picture is then
held once, as the decoder's output (3 bytes a pixel), and never also as a Pillow image (4
bytes a pixel): a 48 MP picture's decode peaks ~180 MiB lower (docs/benchmarks.md).
"""

from __future__ import annotations

import io
from typing import IO

import cv2
import numpy as np
from PIL import Image

from .decoding import WORKING_SHORT_SIDE
from .sniff import open_lazy

# Channels -> the Pillow mode of an 8-bit array with that many.
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def reduced(pixels: np.ndarray, long_side: int) -> Image.Image:
    """The picture box-reduced by a whole factor that keeps its short side at least
    WORKING_SHORT_SIDE and its long side at least `long_side` (when it had them)."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    height, width, channels = pixels.shape
    factor = max(1, min(min(width, height) // WORKING_SHORT_SIDE, max(width, height) // long_side))
    if factor > 1:
        pixels = cv2.resize(pixels, (width // factor, height // factor),
                            interpolation=cv2.INTER_AREA).reshape(
                                height // factor, width // factor, channels)
    return Image.fromarray(np.ascontiguousarray(pixels.squeeze(axis=2) if channels == 1
                                                else pixels), _MODES[channels])


def heif_picture(fp: IO[bytes], long_side: int) -> Image.Image:
    """The primary image, upright (libheif applies irot and imir), HDR turned to 8 bits."""
    import pillow_heif

    fp.seek(0)
    primary = pillow_heif.open_heif(fp, convert_hdr_to_8bit=True)
    return reduced(np.asarray(primary), long_side)


def jxl_picture(fp: IO[bytes], long_side: int) -> Image.Image | None:
    """The picture, upright by the codestream's orientation; None for what the array path
    does not cover (16-bit or float samples): the plugin then decodes it. A JPEG stored
    losslessly comes back as that JPEG, opened lazily (it decodes at a reduced DCT scale)."""
    from pillow_jxl import Decoder

    fp.seek(0)
    is_jpeg, info, data, _, _ = Decoder(num_threads=-1)(fp.read())
    if is_jpeg:
        return open_lazy(io.BytesIO(data), "JPEG")
    if info.mode not in ("L", "LA", "RGB", "RGBA"):
        return None
    pixels = np.frombuffer(data, np.uint8).reshape(info.height, info.width, info.num_channels)
    return reduced(pixels, long_side)
