"""Opening an accepted image lazily, whatever decodes it: its stored size and orientation
first (the pixel limit is applied before any pixel is decoded), then the picture.

Pillow's plugins open most formats. HEIF and JPEG XL are decoded whole by their libraries
straight into an array reduced at once (imaging/whole_decoders.py); camera RAW goes through
LibRaw (imaging/raw.py). How orientation is known differs: EXIF (read after decoding: a
PNG's eXIf chunk may follow the pixels) for most formats; HEIF and JPEG XL decoders apply the
file's own orientation (irot/imir, the codestream's), so their pixels come out upright and
any EXIF orientation is ignored, as the formats require; a RAW's comes from LibRaw.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import IO

from PIL import Image

from .formats import register_decoders
from .jxl_header import jxl_size
from .sniff import RAW_FORMATS, SNIFF_BYTES, CorruptImage, open_lazy, pillow_format
from .whole_decoders import heif_picture, jxl_picture

# Pictures above this many pixels in a format decoded whole are decoded one at a time in a
# process: a 48 MP HEIC, AVIF or JPEG XL holds 300-430 MiB while it decodes, and those
# decoders use every core anyway (docs/benchmarks.md). A JPEG decodes at a reduced DCT scale
# and a RAW from its preview or at half size, in one thread: they go side by side.
LARGE_PIXELS = 16_000_000
_LARGE_DECODE = threading.BoundedSemaphore(1)
_SIDE_BY_SIDE = frozenset({"JPEG"}) | RAW_FORMATS


def decode_slot(fmt: str, size: tuple[int, int]) -> threading.BoundedSemaphore | nullcontext[None]:
    """What to hold while a picture of this format and size is decoded and in memory: the
    one large-decode slot, or nothing."""
    if fmt in _SIDE_BY_SIDE or size[0] * size[1] <= LARGE_PIXELS:
        return nullcontext()
    return _LARGE_DECODE


@dataclass(slots=True)
class Opened:
    """An image opened but not decoded."""

    format: str
    size: tuple[int, int]  # as stored, before orientation
    # The orientation (EXIF's 1-8); None: read from the decoded image's EXIF.
    orientation: int | None
    # The picture with a long side of at least the one asked for (when it has it), lazily
    # opened where the format allows (a JPEG still takes a DCT scale).
    _picture: Callable[[int], Image.Image]
    _image: Image.Image | None = None

    def image(self, long_side: int) -> Image.Image:
        if self._image is None:
            self._image = self._picture(long_side)
        return self._image


def _source(fp: IO[bytes]) -> str | IO[bytes]:
    name = getattr(fp, "name", None)
    return name if isinstance(name, str) else fp


def _plugin(fp: IO[bytes], fmt: str) -> Image.Image:
    fp.seek(0)
    return open_lazy(fp, fmt)


@contextmanager
def open_image(fp: IO[bytes], fmt: str) -> Iterator[Opened]:
    """`fp` opened as `fmt` (sniffed from its bytes). Raises CorruptImage when its header
    cannot be read, and what Pillow raises on a broken one."""
    register_decoders()
    if fmt in RAW_FORMATS:
        from .raw import RawFile

        fp.seek(0)
        raw = RawFile(_source(fp))
        try:
            yield Opened(fmt, raw.size, raw.orientation, raw.picture)
        finally:
            raw.close()
        return
    if fmt == "JXL":  # its plugin would decode the whole picture just to open it
        fp.seek(0)
        size = jxl_size(fp.read(SNIFF_BYTES))
        if size is None:
            raise CorruptImage("the JPEG XL header cannot be read")
        yield Opened(fmt, size, 1, lambda side: jxl_picture(fp, side) or _plugin(fp, fmt))
        return
    im = open_lazy(fp, fmt)
    with im:
        if pillow_format(im) != fmt:
            raise CorruptImage(f"the data is not a valid {fmt} image")
        if fmt == "HEIF":
            yield Opened(fmt, im.size, 1, lambda side: heif_picture(fp, side))
        else:
            yield Opened(fmt, im.size, None, lambda side: im, _image=im)
