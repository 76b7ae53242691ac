"""Study: picture-region proposals in a query, hashed as today's signals.

Many copies hold the stored picture as a region of the query: a screenshot, a post, a frame,
a photo of a screen, a collage. Today's query variants guess edits of the whole query, so they
miss all of these (docs/copy-study.md). Here the query's picture-like regions are proposed
from its edges (convex quadrilaterals and near-rectangular contours covering 8-97% of it),
each rectified to an upright rectangle (a perspective warp: photos of screens) and hashed as
today's whole and centre variants; the union with today's variants is matched against
today's stored signals, pairwise in memory (what matching.find() returns from PostgreSQL).

    nice -n 5 .venv/bin/python -m bench.region_study [--instances 3] [--distractors 2000]

Figures: docs/copy-study.md ("Region proposals").
"""

from __future__ import annotations

import argparse
import io
import time
from collections import defaultdict
from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image

from server.imaging import analyse
from server.imaging.signals import (
    CENTRE,
    CENTRE_SCALES,
    Signal,
    _array,
    _base,
    _centre,
    _signals,
    radius_of,
    verify,
)
from tests import copy_edits as ce
from tests.photo_edits import EDITS

PROPOSAL_SIDE = 640  # the query's long side where edges are looked for
MIN_AREA, MAX_AREA = 0.08, 0.97  # of the query
MAX_PROPOSALS = 8
Quad = np.ndarray  # (4, 2) float32: top-left, top-right, bottom-right, bottom-left


def _ordered(quad: Quad) -> Quad:
    centre = quad.mean(axis=0)
    quad = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]
    return np.roll(quad, -int(np.argmin(quad.sum(axis=1))), axis=0)


def _overlap(a: Quad, b: Quad) -> float:
    """Intersection over union of the quads' bounding boxes."""
    x0, y0 = max(a[:, 0].min(), b[:, 0].min()), max(a[:, 1].min(), b[:, 1].min())
    x1, y1 = min(a[:, 0].max(), b[:, 0].max()), min(a[:, 1].max(), b[:, 1].max())
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area_a = float(np.ptp(a[:, 0]) * np.ptp(a[:, 1]))
    area_b = float(np.ptp(b[:, 0]) * np.ptp(b[:, 1]))
    return float(inter / max(1e-9, area_a + area_b - inter))


def proposals(rgb: np.ndarray) -> list[Quad]:
    """Picture-like regions of a query, largest first, in its pixels."""
    h, w = rgb.shape[:2]
    scale = PROPOSAL_SIDE / max(h, w)
    small = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    edges = cv2.dilate(cv2.Canny(cv2.GaussianBlur(gray, (3, 3), 0), 40, 120),
                       np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(edges, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    total = gray.shape[0] * gray.shape[1]
    found: list[tuple[float, Quad]] = []
    for contour in contours:
        hull = cv2.convexHull(contour)
        area = cv2.contourArea(hull)
        if not MIN_AREA * total <= area <= MAX_AREA * total:
            continue
        approx = cv2.approxPolyDP(hull, 0.03 * cv2.arcLength(hull, True), True)
        if len(approx) == 4 and cv2.isContourConvex(approx):
            quad = approx.reshape(4, 2).astype(np.float32)
        else:
            rect = cv2.minAreaRect(hull)
            if area < 0.9 * rect[1][0] * rect[1][1]:
                continue  # not a rectangle
            quad = cv2.boxPoints(rect).astype(np.float32)
        found.append((area, _ordered(quad) / scale))
    kept: list[Quad] = []
    for _, quad in sorted(found, key=lambda item: -item[0]):
        if all(_overlap(quad, k) < 0.85 for k in kept):
            kept.append(quad)
        if len(kept) == MAX_PROPOSALS:
            break
    return kept


def rectified(rgb: np.ndarray, quad: Quad, short_side: int = 256) -> Image.Image:
    """The region warped upright, its short side `short_side` (the working size), gray."""
    side = [float(np.linalg.norm(quad[(i + 1) % 4] - quad[i])) for i in range(4)]
    width, height = max(side[0], side[2]), max(side[1], side[3])
    scale = short_side / max(1.0, min(width, height))
    w, h = max(8, round(width * scale)), max(8, round(height * scale))
    target = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    warp = cv2.getPerspectiveTransform(quad.astype(np.float32), target)
    return Image.fromarray(cv2.cvtColor(cv2.warpPerspective(rgb, warp, (w, h),
                                                            flags=cv2.INTER_AREA),
                                        cv2.COLOR_RGB2GRAY))


def region_variants(rgb: np.ndarray) -> list[Signal]:
    out: list[Signal] = []
    for n, quad in enumerate(proposals(rgb)):
        _, trimmed, _ = _base(rectified(rgb, quad))
        items = [((0.0, 0.0, 1.0, 1.0), "whole", f"region {n}")]
        items += [(_centre(min(1.0, CENTRE / s)), "centre", f"region {n} centre {s:g}")
                  for s in CENTRE_SCALES]
        out += _signals(_array(trimmed), items)
    return out


class Index:
    """Today's stored signals of the stored set, matched as the probes and verify() do."""

    def __init__(self, stored: Sequence[bytes]) -> None:
        owners, regions, phashes, self.dhashes, self.thumbs = [], [], [], [], []
        for k, data in enumerate(stored):
            for s in analyse(data, max_pixels=10**8).signals:
                owners.append(k)
                regions.append(s.region)
                phashes.append(s.phash & (2**64 - 1))
                self.dhashes.append(s.dhash)
                self.thumbs.append(s.thumb)
        self.owners, self.regions = np.array(owners), np.array(regions)
        self.phashes = np.array(phashes, dtype=np.uint64)

    def find(self, variants: Sequence[Signal]) -> set[int]:
        hits: set[int] = set()
        for v in variants:
            d = np.bitwise_count(self.phashes ^ np.uint64(v.phash & (2**64 - 1)))
            for i in np.nonzero((d <= radius_of(v)) & (self.regions == v.region))[0]:
                if int(self.owners[i]) not in hits and verify(
                        v, int(d[i]), self.dhashes[i], self.thumbs[i]) is not None:
                    hits.add(int(self.owners[i]))
        return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--distractors", type=int, default=2000)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    stored = list(ce.stored_set(args.distractors))
    keys = {key: k for k, (key, _, _) in enumerate(stored)}
    index = Index([data for _, _, data in stored])
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    false: dict[tuple[str, str], int] = defaultdict(int)
    cpu: list[float] = []
    queries = list(ce.copies(ce.PHOTOS, instances=args.instances, edits=1))
    for c in queries:
        family = "legacy edits" if c.family.startswith("edit:") else c.family
        split = "dev" if c.photo in ce.DEVELOPMENT else "held"
        orientations = c.family.startswith("edit:") and EDITS[c.family[5:]][2]
        today = analyse(c.data, max_pixels=10**8, query=True,
                        variants=orientations).query_variants
        rgb = np.asarray(Image.open(io.BytesIO(c.data)).convert("RGB"))
        started = time.process_time()
        extra = region_variants(rgb)
        cpu.append(time.process_time() - started)
        answers = {keys[a] for a in c.answers}
        for mode, variants in (("today", today), ("+regions", [*today, *extra])):
            hits = index.find(variants)
            count = counts[(family, mode, split)]
            count[0] += len(answers & hits)
            count[1] += len(answers)
            false[(mode, split)] += len(hits - answers)
    print(f"{len(stored)} stored images ({args.distractors} distractors), {len(queries)} "
          f"queries; proposals + their variants: CPU p50 {1000 * np.median(cpu):.1f} ms, "
          f"p95 {1000 * np.percentile(cpu, 95):.1f} ms a query")
    print("false matches: " + ", ".join(f"{m} {s} {n}" for (m, s), n in sorted(false.items())))
    print("\n| family | today dev | today held-out | + regions dev | + regions held-out |")
    print("|---|---|---|---|---|")
    for family in dict.fromkeys(f for f, _, _ in counts):
        cells = [f"{counts[(family, m, s)][0]}/{counts[(family, m, s)][1]}"
                 for m in ("today", "+regions") for s in ("dev", "held")]
        print(f"| {family} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
