"""Local features for copy detection: ORB keypoints, their index keys, and geometric
verification (docs/copy-study.md chose ORB; docs/retrieval-study.md the keys).

A stored picture keeps its STORED_COUNT strongest ORB features at a long side of STORED_SIDE,
spread over a grid so that a crop of any half of it still holds its share. A query keeps up to
QUERY_COUNT at QUERY_SIDE, spread the same way so that a picture inset on a busy page keeps
keypoints of its own. Candidates come from PostgreSQL (sql/queries/features.sql): each feature
has KEY_TABLES keys of KEY_BITS sampled descriptor bits, and the stored pictures sharing most
keys with the query are verified here: ratio-test matches, a RANSAC homography, and a sanity
rule on the geometry that other views of the same scene fail (a strip of shared content, a
wild extrapolation). A verified match says where the stored picture lies in the query.

Pure functions (OpenCV with one thread): callers run them in the CPU pool.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np
from PIL import Image

from .regions import Corners, quad_area

# Bump with anything that changes stored features (the backfill recomputes older ones).
FEATURES_VERSION = 1

STORED_SIDE = 640
STORED_COUNT = 128
QUERY_SIDE = 960  # a 1080p JPEG decodes at half scale (DCT scaling) to exactly this
QUERY_COUNT = 1500
GRID = 4  # cells per side that the kept features are spread over
MIN_SIDE = 16  # pictures thinner than this (in working pixels) have no features
DETECT_FACTOR = 3  # detect this many times the features kept, then spread them

KEY_BITS = 24
KEY_TABLES = 2
# Fixed descriptor bits per table (disjoint): data independent, nothing to train or ship.
_SAMPLED = random.Random(11).sample(range(256), 256)
KEY_BIT_POSITIONS = tuple(tuple(_SAMPLED[t * KEY_BITS:(t + 1) * KEY_BITS])
                          for t in range(KEY_TABLES))

RATIO = 0.8  # Lowe's ratio test on Hamming distances
RANSAC_PX = 5.0  # at the query's working scale
MIN_MATCHES = 6
MIN_INLIERS = 20  # with the rules below: no development non-match (bench/copy_features.py)
CONFIRM_INLIERS = 8  # enough to confirm a match the region signals found through a guess
MIN_SPREAD = 0.1  # the inliers' hull, as a share of the stored picture's area
SURE_SPREAD = 0.2  # below this spread the pixels must agree too (MIN_NCC)
MIN_VISIBLE = 0.45  # of the stored picture inside the query, projected by an affine fit
MAX_DEPTH_RATIO = 2.5  # homogeneous depth between the projected corners: bounded perspective
THUMB = 16  # the stored thumbnail's side (cells)
MIN_NCC = 0.85  # the stored thumbnail against the query warped onto it, where it shows
MIN_CELLS = 48  # thumbnail cells inside the query for the photometric check to apply
AGREE_LEVELS = 16.0  # gray levels (of 255) within which a cell agrees with the fit

cv2.setNumThreads(1)


@dataclass(frozen=True, slots=True, eq=False)
class Features:
    """ORB features of a picture at its working scale."""

    points: np.ndarray  # (n, 2) float32, working pixels
    descriptors: np.ndarray  # (n, 32) uint8
    size: tuple[int, int]  # working (w, h)
    thumb: bytes = b""  # stored side: THUMB x THUMB gray levels of the working image
    pixels: np.ndarray | None = None  # query side: the working gray image itself
    # Query side: which features lie inside each picture region of the query (a post's or a
    # collage's pictures), as boolean masks: each region's features also vote on their own,
    # so that a picture is not outvoted by the page around it (the app's bars and text,
    # which other posts in the library share).
    regions: tuple[np.ndarray, ...] = ()

    def __len__(self) -> int:
        return len(self.points)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Features) and self.size == other.size
                and self.thumb == other.thumb and np.array_equal(self.points, other.points)
                and np.array_equal(self.descriptors, other.descriptors))

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside

    def packed(self) -> tuple[bytes, bytes]:
        """(points, descriptors) as stored: points as uint16 pairs in half pixels (the
        thumbnail is stored as it is)."""
        halves = np.clip(np.rint(self.points * 2), 0, 65535).astype("<u2")
        return halves.tobytes(), np.ascontiguousarray(self.descriptors, np.uint8).tobytes()

    @classmethod
    def unpacked(cls, points: bytes, descriptors: bytes, size: tuple[int, int],
                 thumb: bytes = b"") -> Features:
        pts = np.frombuffer(points, dtype="<u2").astype(np.float32).reshape(-1, 2) / 2
        desc = np.frombuffer(descriptors, dtype=np.uint8).reshape(-1, 32)
        return cls(pts, desc, size, thumb)


def _resized(gray: Image.Image, side: int) -> Image.Image:
    if max(gray.size) <= side:
        return gray
    f = side / max(gray.size)
    return gray.resize((max(1, round(gray.width * f)), max(1, round(gray.height * f))),
                       Image.Resampling.BILINEAR)


def _spread(points: np.ndarray, responses: np.ndarray, size: tuple[int, int],
            keep: int) -> np.ndarray:
    """Indices of `keep` features: the strongest of each grid cell in turn (round robin by
    rank within the cell), so that no part of the picture has all of them."""
    w, h = size
    cells = (np.minimum(points[:, 0] * GRID // max(w, 1), GRID - 1) * GRID
             + np.minimum(points[:, 1] * GRID // max(h, 1), GRID - 1)).astype(int)
    # Rank of each feature within its cell (0 = the cell's strongest), without a loop.
    order = np.lexsort((-responses, cells))
    sorted_cells = cells[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    rank = np.empty(len(order), dtype=int)
    rank[order] = np.arange(len(order)) - first
    chosen = np.lexsort((-responses, rank))[:keep]
    return np.asarray(chosen)


def detect(pixels: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(points, descriptors) of up to `count` ORB features of a gray array, spread: keypoints
    first (DETECT_FACTOR times more), descriptors only for the ones kept."""
    if min(pixels.shape) < MIN_SIDE:  # ORB's image pyramid needs room (and finds nothing)
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    orb = cv2.ORB_create(nfeatures=count * DETECT_FACTOR,  # type: ignore[attr-defined]
                         fastThreshold=10, edgeThreshold=15)
    keypoints = orb.detect(pixels, None)
    if not keypoints:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    responses = np.array([k.response for k in keypoints], dtype=np.float32)
    chosen = _spread(points, responses, (pixels.shape[1], pixels.shape[0]), count)
    kept, descriptors = orb.compute(pixels, [keypoints[i] for i in chosen])
    if descriptors is None or not kept:
        return np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8)
    return np.array([k.pt for k in kept], dtype=np.float32), descriptors


def stored_features(gray: Image.Image) -> Features:
    """A stored picture's features, with the thumbnail that photometric checks compare."""
    small = _resized(gray, STORED_SIDE)
    points, descriptors = detect(np.asarray(small, dtype=np.uint8), STORED_COUNT)
    thumb = small.resize((THUMB, THUMB), Image.Resampling.BOX).tobytes()
    return Features(points, descriptors, small.size, thumb)


def query_features(gray: Image.Image) -> Features:
    """A query's features, with its pixels (for the photometric check)."""
    small = _resized(gray, QUERY_SIDE)
    pixels = np.asarray(small, dtype=np.uint8)
    points, descriptors = detect(pixels, QUERY_COUNT)
    return Features(points, descriptors, small.size, pixels=pixels)


MAX_REGIONS = 3  # picture regions of a query that vote on their own, largest first
MIN_REGION_FEATURES = 30  # fewer features than this in a region: it says too little
# A region this large is most of the query: the whole query's votes already speak for it.
MAX_REGION_SHARE = 0.6


def in_regions(features: Features, quads: Sequence[Corners]) -> Features:
    """The query's features with the masks of those inside each picture region (convex
    quads in the features' working pixels, largest first); regions over MAX_REGION_SHARE
    of the query, or holding fewer than MIN_REGION_FEATURES, are left out."""
    masks: list[np.ndarray] = []
    for quad in quads:
        if quad_area(quad) > MAX_REGION_SHARE * features.size[0] * features.size[1]:
            continue
        corners = np.asarray(quad, dtype=np.float64)
        edges = np.roll(corners, -1, axis=0) - corners
        rel = features.points[:, None, :].astype(np.float64) - corners[None, :, :]
        cross = edges[None, :, 0] * rel[:, :, 1] - edges[None, :, 1] * rel[:, :, 0]
        inside = np.asarray((cross >= 0).all(axis=1) | (cross <= 0).all(axis=1))  # any winding
        if MIN_REGION_FEATURES <= inside.sum() < len(features):
            masks.append(inside)
        if len(masks) == MAX_REGIONS:
            break
    return replace(features, regions=tuple(masks))


def feature_keys(descriptors: np.ndarray) -> np.ndarray:
    """Each descriptor's index keys, (n, KEY_TABLES): (table << KEY_BITS) | sampled bits."""
    bits = np.unpackbits(np.ascontiguousarray(descriptors, np.uint8).reshape(-1, 32),
                         axis=1)  # (n, 256)
    weights = 1 << np.arange(KEY_BITS - 1, -1, -1, dtype=np.int64)
    return np.stack([bits[:, positions].astype(np.int64) @ weights + (table << KEY_BITS)
                     for table, positions in enumerate(KEY_BIT_POSITIONS)], axis=1)


def keys(descriptors: np.ndarray) -> list[int]:
    """The index keys of a set of descriptors, distinct and sorted."""
    return [int(k) for k in np.unique(feature_keys(descriptors))]


# --- verification ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verified:
    inliers: int
    share: float  # inliers / the stored picture's features
    coverage: float  # inliers / the stored features that the homography puts inside the query
    spread: float  # the inliers' convex hull, as a share of the stored picture
    ncc: float  # the stored thumbnail against the query warped onto it (1: alike)
    agree: float  # the share of its cells that agree with the query (Photometry)
    corners: Corners  # the stored picture's corners in the query's working pixels


def _convex(quad: np.ndarray) -> bool:
    d = np.roll(quad, -1, axis=0) - quad
    nxt = np.roll(d, -1, axis=0)
    cross = d[:, 0] * nxt[:, 1] - d[:, 1] * nxt[:, 0]
    return bool((cross > 0).all() or (cross < 0).all())


def _area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def _sane_quad(h: np.ndarray, affine: np.ndarray, stored: tuple[int, int],
               query: tuple[int, int]) -> np.ndarray | None:
    """The stored picture's corners in the query when the geometry is one a copy can have:
    convex, bounded scale and perspective, and at least MIN_VISIBLE of the picture inside the
    query by the inliers' affine fit (a homography fitted to a strip of shared content, as
    another view of a scene gives, extrapolates wildly; an affine map does not)."""
    w, hh = stored
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, hh, 1], [0, hh, 1]], dtype=np.float64)
    proj = corners @ h.T
    if (proj[:, 2] <= 0).any() or proj[:, 2].max() / proj[:, 2].min() > MAX_DEPTH_RATIO:
        return None
    quad = proj[:, :2] / proj[:, 2:]
    if not _convex(quad):
        return None
    area = _area(quad)
    if not 1 / 400 <= area / (w * hh) <= 100 or area < 0.005 * query[0] * query[1]:
        return None
    flat = corners @ affine.T
    if not _convex(flat) or _area(flat) <= 0:
        return None
    inside = _area_inside(flat, query)
    return quad if inside >= MIN_VISIBLE * _area(flat) else None


def _area_inside(polygon: np.ndarray, size: tuple[int, int]) -> float:
    """The area of a convex polygon inside the frame [0, w] x [0, h]: Sutherland-Hodgman
    clipping (OpenCV's intersectConvexConvex misjudges corners that lie on the frame)."""
    points = [tuple(p) for p in polygon]
    for axis, limit, keep_below in ((0, 0.0, False), (0, float(size[0]), True),
                                    (1, 0.0, False), (1, float(size[1]), True)):
        def inside(p: tuple[float, ...]) -> bool:
            return p[axis] <= limit if keep_below else p[axis] >= limit  # noqa: B023

        clipped: list[tuple[float, ...]] = []
        for i, current in enumerate(points):
            previous = points[i - 1]
            if inside(current) != inside(previous):
                t = (limit - previous[axis]) / (current[axis] - previous[axis])
                clipped.append(tuple(a + t * (b - a) for a, b in zip(previous, current,
                                                                      strict=True)))
            if inside(current):
                clipped.append(current)
        points = clipped
        if not points:
            return 0.0
    return _area(np.array(points, dtype=np.float64))


_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


def verify(stored: Features, query: Features, min_inliers: int | None = None
           ) -> Verified | None:
    """A stored picture found in the query by geometry, or None. `min_inliers` lowers the
    count for a confirmation (CONFIRM_INLIERS); every other rule holds."""
    least = MIN_INLIERS if min_inliers is None else min_inliers
    if len(stored) < MIN_MATCHES or len(query) < 2:
        return None
    pairs = _MATCHER.knnMatch(stored.descriptors, query.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < max(MIN_MATCHES, least):
        return None
    src = stored.points[[m.queryIdx for m in good]]
    dst = query.points[[m.trainIdx for m in good]]
    cv2.setRNGSeed(len(good))  # RANSAC's samples: the same query always gets the same answer
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX, maxIters=2000,
                                 confidence=0.995)
    if h is None:
        return None
    keep = mask.ravel().astype(bool)
    inliers = int(keep.sum())
    if inliers < least:
        return None
    hull = cv2.contourArea(cv2.convexHull(src[keep]))
    if hull < MIN_SPREAD * stored.size[0] * stored.size[1]:  # a strip or a clump
        return None
    ones = np.hstack([src[keep], np.ones((inliers, 1), np.float32)])
    affine = np.linalg.lstsq(ones, dst[keep], rcond=None)[0].T  # (2, 3)
    quad = _sane_quad(h, affine, stored.size, query.size)
    if quad is None:
        return None
    # Other views of a scene share a strip of it: few places of the picture (spread under
    # SURE_SPREAD) and pixels that disagree where the rest of the picture should be.
    seen = _photometry(stored, query, h, src[keep])
    if hull < SURE_SPREAD * stored.size[0] * stored.size[1] and (seen is None
                                                                  or seen.ncc < MIN_NCC):
        return None
    corners = tuple((float(x), float(y)) for x, y in quad)
    projected = cv2.perspectiveTransform(stored.points.reshape(-1, 1, 2), h).reshape(-1, 2)
    inside = int(((projected >= 0) & (projected < np.array(query.size))).all(axis=1).sum())
    return Verified(inliers, inliers / len(stored), inliers / max(inside, 1),
                    hull / (stored.size[0] * stored.size[1]), 1.0 if seen is None else seen.ncc,
                    1.0 if seen is None else seen.agree, corners)  # type: ignore[arg-type]


_SUPERSAMPLE = 4


@dataclass(frozen=True, slots=True)
class Photometry:
    ncc: float  # of the stored thumbnail and the warped query, over the cells inside it
    agree: float  # the share of those cells that agree after a gain and offset fit


def _photometry(stored: Features, query: Features, h: np.ndarray,
                inliers: np.ndarray) -> Photometry | None:
    """The stored thumbnail against the query warped onto the stored picture by the
    homography, over the cells that lie inside the query: a copy shows the picture there,
    another view of the scene shows its shared part and then something else (a border,
    bars, the rest of its own scene). The gain and offset are fitted on the cells that hold
    inliers (the part surely shared); a cell agrees when it is within AGREE_LEVELS of the
    fit. None when there is nothing to compare (no pixels: a stored image as the query; too
    little of the picture inside the query)."""
    if not stored.thumb or query.pixels is None:
        return None
    side = THUMB * _SUPERSAMPLE
    w, hh = stored.size
    grid_to_stored = np.array([[w / side, 0, 0], [0, hh / side, 0], [0, 0, 1]])
    grid_to_query = h @ grid_to_stored
    # Shrink the query first so the warp samples an image about the grid's scale (no
    # aliasing): the picture spans about sqrt(area) query pixels for `side` grid pixels.
    corners = cv2.perspectiveTransform(
        np.array([[[0, 0]], [[side, 0]], [[side, side]], [[0, side]]], np.float64),
        grid_to_query).reshape(4, 2)
    factor = max(1, int(np.sqrt(_area(corners)) / side))
    pixels = query.pixels
    if factor > 1:
        pixels = cv2.resize(pixels, (max(1, pixels.shape[1] // factor),
                                     max(1, pixels.shape[0] // factor)),
                            interpolation=cv2.INTER_AREA)
        grid_to_query = np.diag([1 / factor, 1 / factor, 1.0]) @ grid_to_query
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(pixels.astype(np.float32), grid_to_query, (side, side),
                                 flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=-1)
    cells = warped.reshape(THUMB, _SUPERSAMPLE, THUMB, _SUPERSAMPLE)
    valid = (cells >= 0).all(axis=(1, 3)).ravel()
    if valid.sum() < MIN_CELLS:
        return None
    x_all = cells.mean(axis=(1, 3)).ravel()
    y_all = np.frombuffer(stored.thumb, dtype=np.uint8).astype(np.float64)
    x, y = x_all[valid], y_all[valid]
    xc, yc = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((xc * xc).sum() * (yc * yc).sum()))
    if denominator <= 1e-6:
        return None
    held = np.zeros(THUMB * THUMB, dtype=bool)
    cx = np.clip((inliers[:, 0] * THUMB / w).astype(int), 0, THUMB - 1)
    cy = np.clip((inliers[:, 1] * THUMB / hh).astype(int), 0, THUMB - 1)
    held[cy * THUMB + cx] = True
    fit = held & valid
    if fit.sum() < 6:
        fit = valid
    gain, offset = np.polyfit(x_all[fit], y_all[fit], 1)
    residual = np.abs(y - (gain * x + offset))
    return Photometry(float((xc * yc).sum()) / denominator,
                      float((residual <= AGREE_LEVELS).mean()))
