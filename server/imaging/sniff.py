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

from .jxl_header import jxl_size

# The service's format name -> the content type it stores and serves. The names are
# Pillow's where a Pillow plugin decodes the format (pillow-heif registers HEIF, the JPEG XL
# plugin JXL); camera RAW formats are decoded by LibRaw (imaging/raw.py).
ACCEPTED: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heic",  # nearly every HEIF file is HEVC-coded: what phones write
    "AVIF": "image/avif",
    "JXL": "image/jxl",
    "DNG": "image/x-adobe-dng",
    "CR2": "image/x-canon-cr2",
    "NEF": "image/x-nikon-nef",
    "ARW": "image/x-sony-arw",
}
RAW_FORMATS = frozenset({"DNG", "CR2", "NEF", "ARW"})

# Pillow reports a JPEG carrying an MPF index (phones add one for depth or gain maps) as MPO;
# for the service it is a JPEG.
_PILLOW_ALIASES = {"MPO": "JPEG"}

# Sizes of the BMP info headers (core, v1 to v5): a lone "BM" is too weak a magic.
_BMP_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})

# How many leading bytes sniff_format is given: the magic bytes need 18, an ISOBMFF brand
# list a few dozen, and a TIFF-based RAW is told from a TIFF by tags of its first directory.
SNIFF_BYTES = 64 * 1024

# ISOBMFF brands (ftyp) -> format: the first brand known wins, the major brand first.
_HEIF_BRANDS = {b"heic": "HEIF", b"heix": "HEIF", b"heim": "HEIF", b"heis": "HEIF",
                b"hevc": "HEIF", b"hevx": "HEIF", b"avif": "AVIF", b"avis": "AVIF"}
_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
_DNG_VERSION, _MAKE = 50706, 271


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
        return _tiff_or_raw(prefix)
    if prefix[4:8] == b"ftyp":
        return _isobmff_brand(prefix)
    if prefix.startswith(b"\xff\x0a") or prefix.startswith(_JXL_CONTAINER):
        return "JXL"
    if prefix[:2] == b"BM" and len(prefix) >= 18:
        if int.from_bytes(prefix[14:18], "little") in _BMP_HEADER_SIZES:
            return "BMP"
    return None


def _isobmff_brand(prefix: bytes) -> str | None:
    """HEIF or AVIF from an ISOBMFF file's ftyp box: its major and compatible brands."""
    size = int.from_bytes(prefix[:4], "big")
    if not 16 <= size <= min(len(prefix), 4096):
        return None
    brands = [prefix[8:12]] + [prefix[i:i + 4] for i in range(16, size - 3, 4)]
    return next((_HEIF_BRANDS[b] for b in brands if b in _HEIF_BRANDS), None)


def _tiff_or_raw(prefix: bytes) -> str:
    """A camera RAW built on TIFF (DNG, CR2, NEF, ARW) or a plain TIFF, from the first
    directory's tags: DNGVersion, or the maker with a Canon signature or raw sub-images.
    What the prefix does not reach counts as a plain TIFF (Pillow then decides)."""
    if prefix[8:10] == b"CR" and prefix[:2] == b"II":
        return "CR2"
    tags = _first_directory(prefix)
    if _DNG_VERSION in tags:
        return "DNG"
    make = tags.get(_MAKE, b"").upper()
    if 330 in tags and make.startswith(b"NIKON"):  # SubIFDs holding the raw data
        return "NEF"
    if 330 in tags and make.startswith(b"SONY"):
        return "ARW"
    return "TIFF"


def _first_directory(prefix: bytes) -> dict[int, bytes]:
    """Tag -> its ASCII value (Make) or b'' for the other tags of a TIFF's first
    directory, as far as the prefix holds it."""
    order = "<" if prefix[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack_from(order + "I", prefix, 4)
        (count,) = struct.unpack_from(order + "H", prefix, offset)
        tags: dict[int, bytes] = {}
        for n in range(min(count, 1024)):
            tag, kind, length, value = struct.unpack_from(order + "HHII", prefix,
                                                          offset + 2 + 12 * n)
            text = b""
            if tag == _MAKE and kind == 2:
                start = offset + 2 + 12 * n + 8 if length <= 4 else value
                text = prefix[start:start + min(length, 64)].rstrip(b"\x00 ")
            tags[tag] = text
        return tags
    except struct.error:
        return {}


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
    if fmt == "JXL":
        # The JPEG XL plugin decodes the whole picture when it opens: not under the lock,
        # which every other open waits for. Its size was checked from the codestream's
        # header (jxl_size) before; Pillow's own bomb check is not wanted.
        from pillow_jxl.JpegXLImagePlugin import JXLImageFile

        return JXLImageFile(fp)
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
        head = fp.read(SNIFF_BYTES)
        fmt = sniff_format(head)
        if fmt is None:
            return None
        if fmt in RAW_FORMATS:
            return None  # in a directory the prefix may not reach: LibRaw tells it
        if fmt in ("WEBP", "JXL"):  # the JPEG XL plugin decodes whole when it opens
            size = _webp_dimensions(head) if fmt == "WEBP" else jxl_size(head)
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
