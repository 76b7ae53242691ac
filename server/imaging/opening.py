"""Opening an accepted image lazily, whatever decodes it: its stored size and orientation
first (the pixel limit is applied before any pixel is decoded), then the picture.

Pillow's plugins (with pillow-heif and the JPEG XL plugin registered) open most formats;
camera RAW goes through LibRaw (imaging/raw.py). How orientation is known differs: EXIF
(read after decoding: a PNG's eXIf chunk may follow the pixels) for most formats; HEIF and
JPEG XL decoders apply the file's own orientation (irot/imir, the codestream's), so their
pixels come out upright and any EXIF orientation is ignored, as the formats require; a RAW's
comes from LibRaw.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from PIL import Image

from .formats import register_decoders
from .sniff import RAW_FORMATS, CorruptImage, open_lazy, pillow_format

# Formats whose decoder turns the pixels upright by the file's own orientation.
_UPRIGHT_DECODED = frozenset({"HEIF", "JXL"})


@dataclass(slots=True)
class Opened:
    """An image opened but not decoded."""

    format: str
    size: tuple[int, int]  # as stored, before orientation
    # The orientation (EXIF's 1-8); None: read from the decoded image's EXIF.
    orientation: int | None
    _image: Image.Image | None = None
    _raw: object = None

    def image(self, long_side: int) -> Image.Image:
        """The picture, lazily opened where the format allows (a JPEG still takes a DCT
        scale); `long_side`: what the caller needs at least (a RAW's preview must reach it)."""
        if self._image is None:
            from .raw import RawFile

            assert isinstance(self._raw, RawFile)
            self._image = self._raw.picture(long_side)
        return self._image


def _source(fp: IO[bytes]) -> str | IO[bytes]:
    name = getattr(fp, "name", None)
    return name if isinstance(name, str) else fp


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
            yield Opened(fmt, raw.size, raw.orientation, _raw=raw)
        finally:
            raw.close()
        return
    im = open_lazy(fp, fmt)
    with im:
        if pillow_format(im) != fmt:
            raise CorruptImage(f"the data is not a valid {fmt} image")
        yield Opened(fmt, im.size, 1 if fmt in _UPRIGHT_DECODED else None, _image=im)
