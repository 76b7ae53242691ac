"""Picture regions of a query: where a screenshot, a post, a frame, a photo of a screen or a
collage holds a picture, found from the query's edges and warped upright.

Today's query variants guess edits of the whole query; a copy that shows the stored picture
as a part of the query (docs/copy-study.md, "Region proposals") needs the part itself. The
picture-like regions are the convex quadrilaterals and near-rectangular contours of the
query's edges that cover MIN_AREA-MAX_AREA of it, largest first; each is rectified (a
perspective warp, since photos of screens are seen at an angle) to an upright gray picture
that the region signals then hash as if it were the whole query. Pure functions (OpenCV, one
thread): callers run them in the CPU pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

EDGE_SIDE = 640  # the long side edges are looked for at (the thresholds were set there)
MIN_AREA, MAX_AREA = 0.08, 0.97  # of the query: smaller says too little, larger is the query
MAX_PROPOSALS = 8
SAME_REGION = 0.85  # bounding-box IoU above which two proposals are one
RECTANGULAR = 0.9  # a contour's hull fills at least this much of its rotated rectangle
PICTURE_SHORT_SIDE = 256  # a rectified region, as the working image of an upload

Point = tuple[float, float]
Corners = tuple[Point, Point, Point, Point]  # top-left, top-right, bottom-right, bottom-left

# The CPU pool runs one analysis per core: OpenCV's own threads would only fight over them.
cv2.setNumThreads(1)


@dataclass(frozen=True, slots=True)
class Proposal:
    corners: Corners  # in the pixels of the image it was found in
    picture: Image.Image  # the region warped upright, mode L


def _ordered(quad: np.ndarray) -> np.ndarray:
    """The four points clockwise from the top-left (smallest x + y)."""
    centre = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    return np.roll(quad, -int(np.argmin(quad.sum(axis=1))), axis=0)


def _overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two quads' bounding boxes."""
    x0, y0 = max(a[:, 0].min(), b[:, 0].min()), max(a[:, 1].min(), b[:, 1].min())
    x1, y1 = min(a[:, 0].max(), b[:, 0].max()), min(a[:, 1].max(), b[:, 1].max())
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area_a = float(np.ptp(a[:, 0]) * np.ptp(a[:, 1]))
    area_b = float(np.ptp(b[:, 0]) * np.ptp(b[:, 1]))
    return float(inter / max(1e-9, area_a + area_b - inter))


def _quad(hull: np.ndarray, area: float) -> np.ndarray | None:
    """A hull's four corners: its polygon when that is a convex quadrilateral (a picture
    seen at an angle), else its rotated rectangle when it nearly fills it; else None."""
    approx = cv2.approxPolyDP(hull, 0.03 * cv2.arcLength(hull, True), True)
    if len(approx) == 4 and cv2.isContourConvex(approx):
        return approx.reshape(4, 2).astype(np.float32)
    rect = cv2.minAreaRect(hull)
    if area < RECTANGULAR * rect[1][0] * rect[1][1]:
        return None
    return cv2.boxPoints(rect).astype(np.float32)


def quads(gray: np.ndarray) -> list[np.ndarray]:
    """Picture-like regions of a gray uint8 image, largest first: (4, 2) float32 arrays in
    its pixels, ordered as Corners."""
    h, w = gray.shape
    scale = min(1.0, EDGE_SIDE / max(h, w))
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))),
                       interpolation=cv2.INTER_AREA) if scale < 1 else gray
    edges = cv2.dilate(cv2.Canny(cv2.GaussianBlur(small, (3, 3), 0), 40, 120),
                       np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    total = small.shape[0] * small.shape[1]
    found: list[tuple[float, np.ndarray]] = []
    for contour in contours:
        hull = cv2.convexHull(contour)
        area = float(cv2.contourArea(hull))
        if MIN_AREA * total <= area <= MAX_AREA * total:
            quad = _quad(hull, area)
            if quad is not None:
                found.append((area, _ordered(quad) / scale))
    kept: list[np.ndarray] = []
    for _, quad in sorted(found, key=lambda item: -item[0]):
        if all(_overlap(quad, k) < SAME_REGION for k in kept):
            kept.append(quad)
        if len(kept) == MAX_PROPOSALS:
            break
    return kept


def rectified(gray: np.ndarray, quad: np.ndarray) -> Image.Image:
    """The region warped upright to a rectangle of its own proportions, short side
    PICTURE_SHORT_SIDE."""
    side = [float(np.linalg.norm(quad[(i + 1) % 4] - quad[i])) for i in range(4)]
    width, height = max(side[0], side[2]), max(side[1], side[3])
    scale = PICTURE_SHORT_SIDE / max(1.0, min(width, height))
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return Image.fromarray(cv2.warpPerspective(gray, warp, (w, h), flags=cv2.INTER_AREA))


def quad_area(corners: Corners) -> float:
    """The area of four corners in order (the shoelace formula)."""
    x = np.array([p[0] for p in corners])
    y = np.array([p[1] for p in corners])
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def proposals(gray: Image.Image) -> list[Proposal]:
    """The picture-like regions of a query (mode L, upright), largest first, each with its
    corners in the image's pixels and its rectified picture."""
    pixels = np.asarray(gray, dtype=np.uint8)
    return [Proposal(_corners(quad), rectified(pixels, quad)) for quad in quads(pixels)]


def _corners(quad: np.ndarray) -> Corners:
    (a, b), (c, d), (e, f), (g, h) = quad.tolist()
    return ((a, b), (c, d), (e, f), (g, h))


def scaled(corners: Corners, sx: float, sy: float) -> Corners:
    """Corners in another image's pixels (x times sx, y times sy)."""
    (a, b), (c, d), (e, f), (g, h) = corners
    return ((a * sx, b * sy), (c * sx, d * sy), (e * sx, f * sy), (g * sx, h * sy))
