"""Thumbnails: small upright WebP pictures with no metadata at all.

Two sizes, on the long side: 256 px fills a grid cell or a search hit (a 128 CSS px cell on
a 2x screen) and is made at upload from the working image the hashing decodes anyway; 1024 px
is a detail view on a phone or a laptop, made on first request from the original (a JPEG
decoded at a reduced DCT scale): at upload it would cost more than the rest of the ingest
pipeline put together (a 1024 px resize and WebP encode are ~30 ms of one core each).

Pure and synchronous: callers run these in the CPU pool.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile

from server.imaging.decoding import (
    DECODE_ERRORS,
    ORIENTATION_TRANSPOSE,
    WORKING_SHORT_SIDE,
    exif_orientation,
    normalise_mode,
    working_image,
)
from server.imaging.opening import decode_slot, open_image
from server.imaging.sniff import (
    CorruptImage,
    pillow_limit_lifted,
    pillow_pixel_limit,
)

# Bump when the bytes below change (sizes, quality, filters): thumbnail URLs carry it, so a
# new pipeline gets new URLs and browsers may cache each URL forever.
THUMBNAIL_VERSION = 1
SMALL = 256
LARGE = 1024
SIZES = (SMALL, LARGE)
WEBP_QUALITY = 80
# Per size: the resampling filter, and libwebp's effort (0-6, 4 is its default). The small one
# is made in every upload, from a working image at most ~2x larger: bicubic and effort 2 cost
# ~3 ms there (Lanczos and effort 4: ~5.5 ms, for files ~10% smaller). The large one is made
# once on request, where bytes matter more than milliseconds.
SETTINGS = {SMALL: (Image.Resampling.BICUBIC, 2), LARGE: (Image.Resampling.LANCZOS, 4)}
JPEG_QUALITY = 85


@dataclass(frozen=True, slots=True)
class Thumbnail:
    size: int  # the size asked for: the long side is at most this
    width: int
    height: int
    data: bytes  # WebP

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.data).digest()


def fit(image: Image.Image, size: int) -> Image.Image:
    """The image scaled to fit size x size (never enlarged), in RGB or RGBA."""
    mode = "RGBA" if image.mode in ("LA", "RGBA") else "RGB"
    small = image.convert(mode) if image.mode != mode else image.copy()
    # reducing_gap: a box reduction first, then the filter over the last factor of 2 or less.
    small.thumbnail((size, size), SETTINGS[size][0], reducing_gap=2.0)
    return small


def encode(image: Image.Image, size: int) -> Thumbnail:
    """A WebP of the picture alone: Pillow writes EXIF, XMP or ICC only when asked to."""
    small = fit(image, size)
    out = io.BytesIO()
    small.save(out, "WEBP", quality=WEBP_QUALITY, method=SETTINGS[size][1])
    return Thumbnail(size, small.width, small.height, out.getvalue())


def _decode_upright(im: Image.Image, long_side: int, orientation: int | None) -> Image.Image:
    """The whole picture decoded once at the smallest JPEG DCT scale whose long side still
    reaches ``long_side`` (other formats decode whole), upright, alpha kept."""
    if isinstance(im, JpegImageFile):
        scale = min(1.0, long_side / max(im.size))
        im.draft(im.mode, (max(1, round(im.width * scale)), max(1, round(im.height * scale))))
    im.load()
    image = normalise_mode(im)
    transpose = ORIENTATION_TRANSPOSE.get(
        orientation if orientation is not None else exif_orientation(im))
    return image.transpose(transpose) if transpose is not None else image


def render(path: Path, fmt: str, size: int) -> Thumbnail:
    """A thumbnail made from a stored original. The small size comes from the same working
    image an upload makes it from, so it is the same picture whichever made it."""
    try:
        with path.open("rb") as fp, open_image(fp, fmt) as opened:
            limit = pillow_pixel_limit()
            width, height = opened.size
            # Stored originals passed the service's own limit, which may be above Pillow's.
            with (pillow_limit_lifted() if limit and width * height > limit
                  else nullcontext()), decode_slot(fmt, opened.size):
                if size <= SMALL:
                    return encode(working_image(opened.image(WORKING_SHORT_SIDE),
                                                orientation=opened.orientation).display, size)
                return encode(_decode_upright(opened.image(size), size, opened.orientation),
                              size)
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"the stored {fmt} image cannot be decoded: {exc}") from exc


def as_jpeg(webp: bytes) -> bytes:
    """For clients that do not accept WebP: the same thumbnail as a JPEG, alpha on white."""
    with Image.open(io.BytesIO(webp), formats=["WEBP"]) as im:
        im.load()
        if im.mode in ("RGBA", "LA"):
            white = Image.new("RGB", im.size, (255, 255, 255))
            white.paste(im.convert("RGB"), mask=im.getchannel("A"))
            flat = white
        else:
            flat = im.convert("RGB")
    out = io.BytesIO()
    flat.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return out.getvalue()
