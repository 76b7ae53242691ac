"""What an upload is, from its bytes alone: the format (magic numbers) and the header size.

Nothing here decodes pixels. The client's content type and file name are never consulted:
they are trivially forged, and the format decides which decoder runs on untrusted data.
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from PIL import Image, ImageFile

# Pillow format name -> the content type the service stores and serves.
ACCEPTED: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}

# Pillow reports a JPEG carrying an MPF index (phones add one for depth or gain maps) as MPO;
# for the service it is a JPEG.
_PILLOW_ALIASES = {"MPO": "JPEG"}

# Sizes of the BMP info headers (core, v1 to v5): a lone "BM" is too weak a magic.
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})

# How many leading bytes sniff_format needs to decide every accepted format.
SNIFF_BYTES = 18


class ImageRejected(Exception):
    """The upload is not an image the service accepts; ``message`` says why, for a human."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnsupportedFormat(ImageRejected):
    """Not one of the accepted formats (the caller answers 415)."""


class TooManyPixels(ImageRejected):
    """Width x height is over the configured limit (the caller answers 413)."""


class CorruptImage(ImageRejected):
    """Looks like an accepted format but cannot be decoded (the caller answers 422)."""


def sniff_format(prefix: bytes) -> str | None:
    """The Pillow format name of an accepted format, from the magic bytes only; else None."""
    if prefix.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if prefix.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP":
        return "WEBP"
    if prefix[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if prefix[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if prefix[:2] == b"BM" and len(prefix) >= 18:
        if int.from_bytes(prefix[14:18], "little") in _BMP_HEADER_SIZES:
            return "BMP"
    return None


def pillow_format(im: Image.Image) -> str | None:
    """The service's name for the format Pillow opened ``im`` as."""
    fmt = im.format or ""
    return _PILLOW_ALIASES.get(fmt, fmt) or None


# Image.MAX_IMAGE_PIXELS is process-global; the lock keeps concurrent lifts from restoring
# each other's value. Held only around header parsing (or a rare over-limit decode).
_LIMIT_LOCK = threading.RLock()


@contextmanager
def pillow_limit_lifted() -> Iterator[None]:
    """Disable Pillow's decompression-bomb check: the service applies its own pixel limit,
    which may be above Pillow's default (a warning, an error in tests) and must see the size
    of a bomb rather than an exception."""
    with _LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def pillow_pixel_limit() -> int | None:
    """Pillow's own limit as configured (not a value lifted by another thread right now)."""
    with _LIMIT_LOCK:
        return Image.MAX_IMAGE_PIXELS


def open_lazy(fp: IO[bytes], fmt: str) -> ImageFile.ImageFile:
    """``Image.open`` restricted to one accepted format's plugin; reads the header only.

    Restricting the plugins keeps exotic decoders (EPS runs Ghostscript) away from uploads.
    Raises what Pillow raises (``UnidentifiedImageError`` and friends).
    """
    with pillow_limit_lifted(), warnings.catch_warnings():
        # Metadata complaints ("Corrupt EXIF data", "Truncated File Read") are for the decode
        # to judge. catch_warnings is process-global: the lock keeps it from interleaving.
        warnings.simplefilter("ignore")
        return Image.open(fp, formats=[fmt])


def _webp_dimensions(head: bytes) -> tuple[int, int] | None:
    """The canvas size from the first 30 bytes of a WebP (Pillow's plugin wants it all)."""
    if len(head) < 30:
        return None
    chunk = head[12:16]
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
    if chunk == b"VP8 " and head[23:26] == b"\x9d\x01\x2a":  # lossy key frame
        return (
            int.from_bytes(head[26:28], "little") & 0x3FFF,
            int.from_bytes(head[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and head[20] == 0x2F:  # lossless: 14-bit width-1 and height-1
        bits = int.from_bytes(head[21:25], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def header_dimensions(data: bytes | IO[bytes]) -> tuple[int, int] | None:
    """(width, height) as stored in the header, without decoding pixels.

    ``data`` may be just a prefix of the file. None when the format is not accepted or the
    prefix does not reach the size (a JPEG whose frame header follows a large EXIF block) or
    the header is malformed; the full analysis then decides. A file object is read from its
    start. The size is the stored one, before EXIF orientation (the pixel count is the same).
    """
    fp: IO[bytes] = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        fp.seek(0)
        head = fp.read(30)
        fmt = sniff_format(head)
        if fmt is None:
            return None
        if fmt == "WEBP":
            size = _webp_dimensions(head)
            if size is None:
                return None
            width, height = size
        else:
            fp.seek(0)
            with open_lazy(fp, fmt) as im:
                width, height = im.size
    # Anything a plugin raises on a short or malformed header means "not known from here".
    except (
        OSError,
        SyntaxError,
        ValueError,
        EOFError,
        IndexError,
        TypeError,
        KeyError,
        struct.error,
    ):
        return None
    if width <= 0 or height <= 0:
        return None
    return width, height
