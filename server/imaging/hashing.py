"""Validating an upload and computing its perceptual hashes in one cheap decode.

The fast pipeline decodes once at a reduced scale (JPEG: DCT scaling in libjpeg; other
formats: a box reduction), flattens alpha onto white, applies the EXIF orientation to the
small image and hashes that. The hash functions resize to 8x8..64x64 anyway, so working at a
short side of ~256 px changes the hashes by a bit or two while cutting the cost by an order of
magnitude. Pure and synchronous: callers run it in a thread pool (Pillow releases the GIL
while decoding).
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import IO

import imagehash
import numpy as np
from PIL import Image, ImageOps

from server.imaging.decoding import (
    DECODE_ERRORS,
    WORKING_SHORT_SIDE,
    exif_orientation,
    flatten,
    normalise_mode,
    working_image,
)
from server.imaging.features import (
    QUERY_SIDE,
    STORED_SIDE,
    Features,
    in_regions,
    query_features,
    stored_features,
)
from server.imaging.formats import missing_decoder
from server.imaging.opening import Opened, decode_slot, open_image
from server.imaging.regions import EDGE_SIDE, Proposal, proposals, quad_area, scaled
from server.imaging.signals import Signal, picture_signals, query_signals, stored_signals
from server.imaging.sniff import (
    ACCEPTED,
    SNIFF_BYTES,
    CorruptImage,
    TooManyPixels,
    UnsupportedFormat,
    pillow_format,
    pillow_limit_lifted,
    pillow_pixel_limit,
    sniff_format,
)
from server.imaging.thumbnails import SMALL, Thumbnail, encode

# imagehash imports these inside phash and whash: importing them with this module moves
# ~100 ms from the first upload (in a worker thread) to start-up.
for _lazy in ("scipy.fftpack", "pywt"):
    importlib.import_module(_lazy)

# Bump when anything below changes the hashes, so stored rows can be recomputed.
HASH_VERSION = 2  # 2: region signals (image_signals) too

# colorhash only counts pixel fractions: 128 px is plenty.
COLOR_SHORT_SIDE = 128
# A fixed whash scale, so the hash does not depend on the decoded size.
WHASH_SCALE = 64
COLORHASH_BINBITS = 3


# Named in the 415 for a format that is none of these.
ACCEPTED_NAMES = ("JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF, AVIF, JPEG XL, or camera RAW: "
                  "DNG, CR2, NEF, ARW")

# A bytes object is the file's content; a str or path names a file; else a seekable file.
Source = bytes | str | os.PathLike[str] | IO[bytes]

@dataclass(frozen=True, slots=True)
class ImageFacts:
    """What the service stores about an accepted image.

    width/height are after EXIF orientation (a portrait phone photo is portrait). The four
    64-bit hashes are signed (two's complement), ready for a PostgreSQL bigint.
    """

    format: str
    content_type: str
    width: int
    height: int
    phash: int
    dhash: int
    ahash: int
    whash: int
    colorhash: str
    frames: int
    # pHashes of the 7 other rotations and flips, when asked for (search by image).
    variant_phashes: tuple[int, ...] = ()
    # Region signals to store (robust search by image), from the same working image.
    signals: tuple[Signal, ...] = ()
    # A query image's variants (robust search by image), when asked for.
    query_variants: tuple[Signal, ...] = ()
    # The small thumbnail, from the same working image (uploads only).
    thumbnail: Thumbnail | None = None
    # Local features: an upload's to store, or a query's (copy detection), when asked for.
    features: Features | None = None
    # A query's features mirrored, when the rotations and flips are asked for (ORB's
    # features find turned copies by themselves, not mirrored ones).
    mirrored_features: Features | None = None


# --- imagehash values as 64-bit ints ---------------------------------------------------------


def _hash_int(h: imagehash.ImageHash) -> int:
    # Row-major bits, first bit most significant: the same order as str(h).
    packed = np.packbits(np.asarray(h.hash, dtype=bool).ravel())
    return int.from_bytes(packed.tobytes(), "big", signed=True)


# --- hashing --------------------------------------------------------------------------------


def hashes_of(gray: Image.Image) -> tuple[int, int, int, int]:
    """(phash, dhash, ahash, whash) of a working image, as signed 64-bit ints."""
    return (
        _hash_int(imagehash.phash(gray)),
        _hash_int(imagehash.dhash(gray)),
        _hash_int(imagehash.average_hash(gray)),
        _hash_int(imagehash.whash(gray, image_scale=WHASH_SCALE)),
    )


def color_hash(rgb: Image.Image) -> str:
    """imagehash's colorhash (binbits=3) as hex, from a copy of about COLOR_SHORT_SIDE px."""
    factor = max(1, min(rgb.size) // COLOR_SHORT_SIDE)
    small = rgb.reduce(factor) if factor > 1 else rgb
    return str(imagehash.colorhash(small, binbits=COLORHASH_BINBITS))


@contextmanager
def _binary(source: Source) -> Iterator[IO[bytes]]:
    if isinstance(source, bytes):
        yield io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        with open(source, "rb") as fp:
            yield fp
    else:
        yield source


def _frame_count(im: Image.Image) -> int:
    if pillow_format(im) in ("JPEG", None):
        return 1  # an MPO's extra "frames" are depth or gain maps, not an animation
    frames = getattr(im, "n_frames", 1)
    return frames if isinstance(frames, int) and frames > 0 else 1


def analyse(
    source: Source, *, max_pixels: int, expected_format: str | None = None,
    variants: bool = False, query: bool = False, thumbnail: bool = False,
    features: bool = True,
) -> ImageFacts:
    """Validate an upload and compute its facts and hashes (the fast pipeline).

    ``expected_format`` is what the caller sniffed from the prefix it received; a different
    format here means the bytes changed or lie. ``variants``: also the pHashes of the other
    orientations; ``query``: also the variants of a search-by-image query (with the other
    orientations when ``variants``); ``thumbnail``: also the small thumbnail. Raises
    UnsupportedFormat, TooManyPixels (before any pixel is decoded) or CorruptImage.
    """
    with _binary(source) as fp:
        fp.seek(0)
        head = fp.read(SNIFF_BYTES)
        fmt = sniff_format(head)
        if fmt is None:
            raise UnsupportedFormat(f"not an accepted image format ({ACCEPTED_NAMES})")
        if (missing := missing_decoder(fmt)) is not None:
            raise UnsupportedFormat(missing)
        if expected_format is not None and fmt != expected_format:
            raise CorruptImage(f"expected a {expected_format} image, the data is {fmt}")
        fp.seek(0)
        with ExitStack() as stack:
            try:
                opened = stack.enter_context(open_image(fp, fmt))
            except DECODE_ERRORS as exc:
                raise CorruptImage(f"the {fmt} header cannot be read") from exc
            # Known before any pixel is decoded (a JPEG XL's and a RAW's from their headers),
            # and before waiting for a decode slot.
            _check_pixels(opened.size, max_pixels)
            with decode_slot(fmt, opened.size):
                return _analyse_open(opened, variants=variants, query=query,
                                     thumbnail=thumbnail, features=features)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise TooManyPixels(
            f"{width}x{height} is {width * height} pixels, more than the limit of {max_pixels}"
        )


def _analyse_open(
    opened: Opened, *, variants: bool = False, query: bool = False,
    thumbnail: bool = False, features: bool = True,
) -> ImageFacts:
    fmt = opened.format
    width, height = opened.size
    if width <= 0 or height <= 0:
        raise CorruptImage(f"the {fmt} header gives an empty size {width}x{height}")
    # Between Pillow's own limit and ours, some decoders (GIF, TIFF) check again while decoding.
    limit = pillow_pixel_limit()
    over_pillow = limit is not None and width * height > limit
    detail_side = _detail_side(query, features)
    try:
        with pillow_limit_lifted() if over_pillow else nullcontext():
            im = opened.image(detail_side or WORKING_SHORT_SIDE)
            # Local features and a query's picture regions need a larger copy.
            work = working_image(im, detail_side, opened.orientation)
        frames = _frame_count(im)
        phash, dhash, ahash, whash = hashes_of(work.gray)
        small = encode(work.display, SMALL) if thumbnail else None
        orientation = (opened.orientation if opened.orientation is not None
                       else exif_orientation(im))
    except DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} image is truncated or corrupt: {exc}") from exc
    if orientation >= 5:  # 5-8 swap the axes
        width, height = height, width
    query_variants: list[Signal] = []
    found: list[Proposal] = []  # a query's picture regions, in the detail image's pixels
    if query:
        found = proposals(work.detail) if work.detail is not None else []
        query_variants = query_signals(work.gray, variants,
                                       corners=not _a_page(found, work.detail))
        if work.detail is not None:
            query_variants += picture_variants(found, work.detail, (width, height))
    local = mirrored = None
    if features and work.detail is not None:
        local = (query_features if query else stored_features)(work.detail)
        if query:
            sx, sy = local.size[0] / work.detail.width, local.size[1] / work.detail.height
            local = in_regions(local, [scaled(p.corners, sx, sy) for p in found])
        if query and variants:
            mirrored = query_features(work.detail.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    return ImageFacts(
        format=fmt,
        content_type=ACCEPTED[fmt],
        width=width,
        height=height,
        phash=phash,
        dhash=dhash,
        ahash=ahash,
        whash=whash,
        colorhash=color_hash(work.rgb),
        frames=frames,
        variant_phashes=variant_phashes(work.gray) if variants else (),
        signals=() if query else tuple(stored_signals(work.gray)),
        query_variants=tuple(query_variants),
        thumbnail=small,
        features=local,
        mirrored_features=mirrored,
    )


def _detail_side(query: bool, features: bool) -> int | None:
    if features:
        return QUERY_SIDE if query else STORED_SIDE
    return EDGE_SIDE if query else None


PAGE_PICTURE_SHARE = 0.5  # a picture region smaller than this: the query is a page or a post


def _a_page(found: list[Proposal], detail: Image.Image | None) -> bool:
    """Whether the query is a page, a post or a screenshot holding a picture: a picture
    region covers less than PAGE_PICTURE_SHARE of it. Its corners are then the app's bars
    and text, which other pages of the same app share: they are not probed as crops of a
    stored picture (the picture itself is, through its region)."""
    if detail is None:
        return False
    area = detail.width * detail.height
    return any(quad_area(p.corners) < PAGE_PICTURE_SHARE * area for p in found)


def picture_variants(found: list[Proposal], detail: Image.Image,
                     size: tuple[int, int]) -> list[Signal]:
    """The variants of the pictures found in a query's detail image, their corners in the
    query's own (upright) pixels, `size`."""
    sx, sy = size[0] / detail.width, size[1] / detail.height
    return [signal for n, found in enumerate(found, start=1)
            for signal in picture_signals(found.picture, f"picture in the query (region {n})",
                                          scaled(found.corners, sx, sy))]


# The seven rotations and flips besides the identity: the dihedral group of the square.
VARIANT_TRANSPOSES = tuple(Image.Transpose)


def variant_phashes(gray: Image.Image) -> tuple[int, ...]:
    """pHashes of a working image rotated and mirrored: array transforms, a few ms in all."""
    return tuple(_hash_int(imagehash.phash(gray.transpose(t))) for t in VARIANT_TRANSPOSES)


def naive_hashes(source: Source) -> tuple[int, int, int, int, str]:
    """The slow baseline: every imagehash function on the full-size upright image.

    Same orientation, alpha flattening and whash scale as the fast pipeline, so the values
    are comparable; only the decode size differs. For benchmarks and tests, not for uploads.
    """
    with _binary(source) as fp, Image.open(fp) as im:
        full = flatten(normalise_mode(ImageOps.exif_transpose(im)))
    rgb = full.convert("RGB")
    return (
        _hash_int(imagehash.phash(full)),
        _hash_int(imagehash.dhash(full)),
        _hash_int(imagehash.average_hash(full)),
        _hash_int(imagehash.whash(full, image_scale=WHASH_SCALE)),
        str(imagehash.colorhash(rgb, binbits=COLORHASH_BINBITS)),
    )
