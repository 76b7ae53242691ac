"""Region signals for search by image that survives real edits: pure functions on the small
upright working image the upload pipeline already decodes (no second decode).

Stored per image (table image_signals), each region as a pHash (probed by multi-index
hashing), a dHash and a 16x16 gray thumbnail (both for verification):

  whole     the picture with symmetric uniform black or white bars trimmed (letterbox,
            pillarbox)
  centre    the centred box of CENTRE x CENTRE of the trimmed picture
  corners   a square of RHO x the short side at each corner of the untrimmed picture: a crop,
            a caption band or a corner logo leaves at least one of them intact

A query is hashed as variants, each a guess at one edit and aimed at one stored region: the
whole (trimmed and not), the centre after centre crops, after borders that are not uniform
(blurred fill), after small rotations back (with and without the inscribed crop); each corner
square at the scales a crop of up to 20% of the area gives it; and, when asked, the whole and
centre of the 7 other rotations and flips.

A candidate is accepted when the variant's and the stored region's pHash are within the
radius (the probe), their dHashes within DHASH_MAX bits, and their thumbnails correlate with
NCC >= NCC_MIN: two independent checks that unrelated pictures fail (bench/quality.py shows
the trade-off on real photographs).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.fft
from PIL import Image
from threadpoolctl import threadpool_limits

from .bits import hamming, to_signed
from .regions import Corners

# Bump with anything that changes the signals (and add a migration for images_to_rehash).
SIGNALS_VERSION = 2

REGIONS = ("whole", "centre", "top-left", "top-right", "bottom-left", "bottom-right")
CORNERS = REGIONS[2:]
BASE_MIN = 100  # the working image is halved when its short side is >= 2 * BASE_MIN
CENTRE = 0.6
RHO = 0.7
CENTRE_SCALES = (1.0, 0.95, 0.9)
CORNER_SCALES = (1.0, 0.96, 0.92, 0.88, 0.84, 0.8)
BAR_FRACTIONS = (0.1, 0.125, 0.15)
ROTATIONS = (-4.5, -2.5, 2.5, 4.5)
PICTURE_CENTRE_SCALES = (1.0,)  # a picture found in the query: its centre (bench/region_study.py)
RADIUS = 6  # pHash bits between a query variant and a stored region (the probe's radius)
RADII = {"whole": 8}  # where a region's radius differs
DHASH_MAX = 16
NCC_MIN = 0.85
THUMB = 16
MIN_STD = 3.0  # a region flatter than this (gray levels) says nothing: neither stored nor probed

Box = tuple[float, float, float, float]  # fractions of the width and height

# The region arrays are small matrix products: BLAS threads only fight over the cores that the
# CPU pool's threads (one analysis each) already use. Measured: 13 ms a query with one BLAS
# thread, 350 ms with OpenBLAS's default on two busy cores.
threadpool_limits(limits=1, user_api="blas")


@dataclass(frozen=True, slots=True)
class Signal:
    region: str  # one of REGIONS
    phash: int  # signed 64-bit, as stored
    dhash: int  # signed 64-bit
    thumb: bytes  # THUMB x THUMB gray levels
    label: str = ""  # on the query side: what the variant assumes ("crop 0.9", ...)
    # On the query side, for a picture found in the query (regions.py): where it lies, in
    # the query's upright pixels. None for the variants of the whole query.
    corners: Corners | None = None


def radius_of(signal: Signal) -> int:
    return RADII.get(signal.region, RADIUS)


# --- hashing boxes of a gray image -----------------------------------------------------------


def _bits(flags: np.ndarray) -> int:
    return to_signed(int.from_bytes(np.packbits(flags.ravel()).tobytes(), "big"))


@functools.lru_cache(maxsize=4096)
def _area_matrix(lo: float, hi: float, n: int, size: int) -> np.ndarray:
    """(n, size) weights averaging the pixels of [lo, hi) (pixel units) into n equal bins.
    Cached: queries of the same size ask for the same boxes (read-only, never written)."""
    edges = lo + (hi - lo) * np.arange(n + 1) / n
    j = np.arange(size)
    overlap = (np.minimum(edges[1:, None], j[None, :] + 1)
               - np.maximum(edges[:-1, None], j[None, :])).clip(min=0)
    weights: np.ndarray = overlap / overlap.sum(axis=1, keepdims=True).clip(min=1e-12)
    weights.flags.writeable = False
    return weights


# dHash: the 32x32 region averaged into 8 rows x 9 columns.
_DH_ROWS = _area_matrix(0, 32, 8, 32)
_DH_COLS = _area_matrix(0, 32, 9, 32)


def _regions(pixels: np.ndarray, boxes: Sequence[Box]) -> np.ndarray:
    """(n, 32, 32) area-averaged copies of boxes of a float gray array."""
    h, w = pixels.shape
    out = np.empty((len(boxes), 32, 32))
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        out[i] = (_area_matrix(y0 * h, y1 * h, 32, h) @ pixels
                  @ _area_matrix(x0 * w, x1 * w, 32, w).T)
    return out


def _signals(pixels: np.ndarray, items: Sequence[tuple[Box, str, str]]) -> list[Signal]:
    """pHash (imagehash's: DCT of the 32x32, low 8x8 against their median), dHash and
    thumbnail of every box; flat regions left out. All boxes in one batch of array work."""
    if not items:
        return []
    a32 = _regions(pixels, [box for box, _, _ in items])
    dct = scipy.fft.dct(scipy.fft.dct(a32, axis=1), axis=2)[:, :8, :8].reshape(len(a32), 64)
    phashes = dct > np.median(dct, axis=1, keepdims=True)
    grid = _DH_ROWS @ a32 @ _DH_COLS.T
    dhashes = (grid[:, :, 1:] > grid[:, :, :-1]).reshape(len(a32), 64)
    step = 32 // THUMB
    thumbs = np.rint(a32.reshape(len(a32), THUMB, step, THUMB, step).mean(axis=(2, 4)))
    flat = a32.reshape(len(a32), -1).std(axis=1) < MIN_STD
    return [Signal(region, _bits(phashes[i]), _bits(dhashes[i]),
                   thumbs[i].astype(np.uint8).tobytes(), label)
            for i, (_, region, label) in enumerate(items) if not flat[i]]


def _array(gray: Image.Image) -> np.ndarray:
    return np.asarray(gray, dtype=np.float64)


# --- trimming ----------------------------------------------------------------------------------


def _bar_rows(pixels: np.ndarray, cap: int) -> int:
    """Leading rows that form a uniform black or white bar."""
    ref = float(pixels[0].mean())
    if 40 <= ref <= 215:
        return 0
    rows = 0
    for line in pixels[:cap]:
        if line.std() >= 4 or abs(line.mean() - ref) >= 8:
            break
        rows += 1
    return rows


def trim_box(gray: Image.Image, cap: float = 0.3) -> tuple[int, int, int, int]:
    """The pixel box without symmetric uniform bars. Both opposite bars must be there (2% or
    more each, within 3% of each other), so a dark or white edge on one side stays."""
    pixels = np.asarray(gray, dtype=np.float32)
    h, w = pixels.shape
    top, bottom = _bar_rows(pixels, int(cap * h)), _bar_rows(pixels[::-1], int(cap * h))
    left, right = _bar_rows(pixels.T, int(cap * w)), _bar_rows(pixels.T[::-1], int(cap * w))

    def paired(a: int, b: int, n: int) -> bool:
        return min(a, b) >= 0.02 * n and abs(a - b) <= 0.03 * n + 2

    if not paired(top, bottom, h):
        top = bottom = 0
    if not paired(left, right, w):
        left = right = 0
    return left, top, w - right, h - bottom


def _base(gray: Image.Image) -> tuple[Image.Image, Image.Image, bool]:
    """(base, trimmed base, trimmed?): the working image halved (regions shrink to 32x32
    anyway), and the same without its bars."""
    base = gray.reduce(2) if min(gray.size) >= 2 * BASE_MIN else gray
    box = trim_box(base)
    if box == (0, 0, *base.size):
        return base, base, False
    return base, base.crop(box), True


# --- regions ----------------------------------------------------------------------------------


def _centre(fx: float, fy: float | None = None) -> Box:
    fy = fx if fy is None else fy
    mx, my = (1 - fx) / 2, (1 - fy) / 2
    return (mx, my, 1 - mx, 1 - my)


def _corner(size: tuple[int, int], corner: str, side: float) -> Box:
    w, h = size
    fx, fy = min(1.0, side / w), min(1.0, side / h)
    x0 = 0.0 if corner.endswith("left") else 1 - fx
    y0 = 0.0 if corner.startswith("top") else 1 - fy
    return (x0, y0, x0 + fx, y0 + fy)


def _inscribed_scale(degrees: float, size: tuple[int, int]) -> float:
    """The scale of the largest upright box inside a picture turned by `degrees`."""
    w, h = size
    angle = math.radians(abs(degrees))
    return 1 / (math.cos(angle) + math.sin(angle) * max(w / h, h / w))


def stored_signals(gray: Image.Image) -> list[Signal]:
    """An image's stored signals (up to 6), from its working image (mode L)."""
    base, trimmed, _ = _base(gray)
    side = RHO * min(base.size)
    return (_signals(_array(trimmed), [((0, 0, 1, 1), "whole", ""),
                                       (_centre(CENTRE), "centre", "")])
            + _signals(_array(base), [(_corner(base.size, c, side), c, "") for c in CORNERS]))


def query_signals(gray: Image.Image, orientations: bool = False,
                  corners: bool = True) -> list[Signal]:
    """A query image's variants, each labelled with the edit it assumes; `corners=False`
    leaves out the corner squares (a page's corners are its app's, not a picture's)."""
    base, trimmed, was_trimmed = _base(gray)
    items: list[tuple[Box, str, str]] = [((0, 0, 1, 1), "whole", "whole")]
    items += [(_centre(min(1.0, CENTRE / s)), "centre", f"centre crop {s:g}")
              for s in CENTRE_SCALES]
    for bar in BAR_FRACTIONS:  # borders that are not uniform (blurred fill)
        items.append((_centre(CENTRE, CENTRE * (1 - 2 * bar)), "centre", f"letterbox {bar:g}"))
        items.append((_centre(CENTRE * (1 - 2 * bar), CENTRE), "centre", f"pillarbox {bar:g}"))
    out = _signals(_array(trimmed), items)
    items = [((0, 0, 1, 1), "whole", "whole, borders kept")] if was_trimmed else []
    side = RHO * min(base.size)
    items += [(_corner(base.size, c, side / s), c, f"{c} corner, crop {s:g}")
              for c in CORNERS for s in CORNER_SCALES if corners]
    out += _signals(_array(base), items)
    for degrees in ROTATIONS:
        turned = _array(trimmed.rotate(degrees, resample=Image.Resampling.BILINEAR))
        out += _signals(turned, [(_centre(min(1.0, CENTRE / s)), "centre",
                                  f"rotated {degrees:+g}°" + (" and cropped" if s < 1 else ""))
                                 for s in (1.0, _inscribed_scale(degrees, trimmed.size))])
    if orientations:
        for transpose in Image.Transpose:
            name = transpose.name.lower().replace("_", " ")
            out += _signals(_array(trimmed.transpose(transpose)),
                            [((0, 0, 1, 1), "whole", f"whole, {name}"),
                             (_centre(CENTRE), "centre", f"centre, {name}")])
    return out


def picture_signals(picture: Image.Image, label: str, corners: Corners) -> list[Signal]:
    """The variants of a picture found in a query (regions.proposals), hashed as if it were
    the whole query (whole and centre), each carrying where it lies in the query."""
    _, trimmed, _ = _base(picture)
    items: list[tuple[Box, str, str]] = [((0, 0, 1, 1), "whole", label)]
    items += [(_centre(min(1.0, CENTRE / s)), "centre", f"{label}, centre crop {s:g}")
              for s in PICTURE_CENTRE_SCALES]
    return [replace(signal, corners=corners) for signal in _signals(_array(trimmed), items)]


# --- verification ------------------------------------------------------------------------------


def ncc(a: bytes, b: bytes) -> float:
    """Normalised cross-correlation of two thumbnails; a flat one proves nothing (0)."""
    x = np.frombuffer(a, dtype=np.uint8).astype(np.float64)
    y = np.frombuffer(b, dtype=np.uint8).astype(np.float64)
    x -= x.mean()
    y -= y.mean()
    denominator = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / denominator if denominator > 1e-9 else 0.0


def verify(variant: Signal, distance: int, dhash: int, thumb: bytes) -> float | None:
    """The score of a stored region found `distance` pHash bits from a query variant (of the
    same region), or None when its dHash or thumbnail disagree. Score: 1 - (pHash + dHash
    bits) / 128, 1 for identical."""
    dhash_bits = hamming(variant.dhash, dhash)
    if distance > radius_of(variant) or dhash_bits > DHASH_MAX:
        return None
    if ncc(variant.thumb, thumb) < NCC_MIN:
        return None
    return 1 - (distance + dhash_bits) / 128
