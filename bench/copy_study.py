"""Local features with geometric verification against the copy families of
tests/copy_edits.py, measured pairwise, beside today's region hashes (the baseline).

    nice -n 5 python -m bench.copy_study [--distractors 150] [--instances 2] \
        [--detectors orb,akaze,sift] [--no-baseline]

Stored side: every stored picture, every hard negative and the first N distractors of the
stream, decoded and shrunk to a long side of at most STORED_SIDE, keeping at most K keypoints
(the budget: <= 8 KB per image for descriptors and coordinates). Query side: every copy of
every photo (DEVELOPMENT and HELD_OUT), decoded at reduced scale (JPEG draft) to a long side of
at most QUERY_SIDE, up to QUERY_K keypoints. Each query is verified against its true originals
and against every non-answer stored image (the other stored pictures, every hard negative, the
N distractors): ratio-test matches (stored -> query), RANSAC homography, inlier count; the
sanity rule (inliers spread over >= 10% of the stored picture, convex quad, bounded scale and
perspective, at least 45% of the stored picture, projected by the inliers' affine fit, inside
the query) is applied on top. The threshold is the smallest inlier count above
every non-match of the DEVELOPMENT queries (zero false matches there); HELD_OUT is reported at
that threshold. Times are CPU time of this process (one OpenCV thread).
"""

from __future__ import annotations

import argparse
import io
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image

from tests import copy_edits as ce

STORED_SIDE = 640
QUERY_SIDE = 1024
QUERY_K = 1500
RATIO = 0.8
RANSAC_PX = 5.0
MIN_MATCHES = 6
MIN_VISIBLE = 0.45  # of the projected stored picture inside the query (truth needs 0.5)
MIN_SPREAD = 0.1  # the inliers' convex hull, as a share of the stored picture's area

cv2.setNumThreads(1)


@dataclass(frozen=True)
class Detector:
    name: str
    stored: Callable[[], cv2.Feature2D]
    query: Callable[[], cv2.Feature2D]
    stored_k: int
    norm: int
    descriptor_bytes: int  # as stored (SIFT: quantised to uint8)


def _orb(k: int) -> cv2.Feature2D:
    orb: cv2.Feature2D = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=k, fastThreshold=10, edgeThreshold=15)
    return orb


def _akaze(k: int) -> cv2.Feature2D:  # top k by response are kept afterwards
    akaze: cv2.Feature2D = cv2.AKAZE_create(  # type: ignore[attr-defined]
        descriptor_size=256, threshold=0.0005)
    return akaze


def _sift(k: int) -> cv2.Feature2D:
    sift: cv2.Feature2D = cv2.SIFT_create(nfeatures=k)  # type: ignore[attr-defined]
    return sift


DETECTORS = {
    "orb": Detector("orb", lambda: _orb(200), lambda: _orb(QUERY_K), 200, cv2.NORM_HAMMING, 32),
    "akaze": Detector("akaze", lambda: _akaze(200), lambda: _akaze(QUERY_K), 200,
                      cv2.NORM_HAMMING, 32),
    "sift": Detector("sift", lambda: _sift(60), lambda: _sift(QUERY_K), 60, cv2.NORM_L2, 128),
}


@dataclass
class Features:
    points: np.ndarray  # (n, 2) float32, working-image pixels
    descriptors: np.ndarray | None
    size: tuple[int, int]  # working image (w, h)
    scale: float  # working pixels per original pixel


def decode(data: bytes, side: int) -> tuple[np.ndarray, float]:
    """Gray working image with a long side <= `side` (JPEG decoded at reduced scale)."""
    with Image.open(io.BytesIO(data)) as im:
        full = im.size
        im.draft("L", (full[0] * side // max(full), full[1] * side // max(full)))
        gray = im.convert("L")
    if max(gray.size) > side:
        f = side / max(gray.size)
        gray = gray.resize((max(1, round(gray.width * f)), max(1, round(gray.height * f))),
                           Image.Resampling.BILINEAR)
    return np.asarray(gray), gray.width / full[0]


def features(data: bytes, make: cv2.Feature2D, side: int, keep: int) -> Features:
    gray, scale = decode(data, side)
    kps, desc = make.detectAndCompute(gray, None)
    if desc is not None and len(kps) > keep:  # the strongest `keep`
        order = np.argsort([-k.response for k in kps])[:keep]
        kps, desc = [kps[i] for i in order], desc[order]
    if desc is not None and desc.dtype == np.float32:  # SIFT: stored as uint8
        desc = np.clip(np.rint(desc), 0, 255).astype(np.uint8).astype(np.float32)
    pts = np.array([k.pt for k in kps], dtype=np.float32).reshape(-1, 2)
    return Features(pts, desc, (gray.shape[1], gray.shape[0]), scale)


@dataclass
class Verdict:
    inliers: int
    sane: bool
    quad: np.ndarray | None  # stored corners in the query's working pixels


def _convex(quad: np.ndarray) -> bool:
    d = np.roll(quad, -1, axis=0) - quad
    cross = d[:, 0] * np.roll(d, -1, axis=0)[:, 1] - d[:, 1] * np.roll(d, -1, axis=0)[:, 0]
    return bool((cross > 0).all() or (cross < 0).all())


def _area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return float(abs(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))) / 2)


def sane(h: np.ndarray, affine: np.ndarray, stored: tuple[int, int],
         query: tuple[int, int]) -> tuple[bool, np.ndarray]:
    """The geometric sanity rule; and the stored picture's corners in the query (by the
    homography). The share of the stored picture inside the query is judged on the affine
    fit of the inliers: a homography fitted to a narrow strip of shared content (another view
    of the scene) extrapolates wildly, an affine map does not."""
    w, hh = stored
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, hh, 1], [0, hh, 1]], dtype=np.float64)
    proj = corners @ h.T
    if (proj[:, 2] <= 0).any():
        return False, np.zeros((4, 2))
    quad = proj[:, :2] / proj[:, 2:]
    if proj[:, 2].max() / proj[:, 2].min() > 2.5 or not _convex(quad):
        return False, quad
    area = _area(quad)
    ratio = area / (w * hh)
    if not 1 / 400 <= ratio <= 100 or area < 0.005 * query[0] * query[1]:
        return False, quad
    flat = corners @ affine.T
    if not _convex(flat) or _area(flat) <= 0:
        return False, quad
    inside, _ = cv2.intersectConvexConvex(
        flat.astype(np.float32),
        np.array([[0, 0], [query[0], 0], [query[0], query[1]], [0, query[1]]], np.float32))
    return inside >= MIN_VISIBLE * _area(flat), quad


def verify(stored: Features, query: Features, matcher: cv2.DescriptorMatcher) -> Verdict:
    if stored.descriptors is None or query.descriptors is None or len(query.points) < 2 \
            or len(stored.points) < 4:
        return Verdict(0, False, None)
    pairs = matcher.knnMatch(stored.descriptors, query.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < MIN_MATCHES:
        return Verdict(0, False, None)
    src = stored.points[[m.queryIdx for m in good]]
    dst = query.points[[m.trainIdx for m in good]]
    h, mask = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_PX, maxIters=2000,
                                 confidence=0.995)
    if h is None:
        return Verdict(0, False, None)
    keep = mask.ravel().astype(bool)
    hull = cv2.contourArea(cv2.convexHull(src[keep])) if keep.sum() >= 3 else 0.0
    if hull < MIN_SPREAD * stored.size[0] * stored.size[1]:  # a strip or a clump: degenerate
        return Verdict(int(keep.sum()), False, None)
    ones = np.hstack([src[keep], np.ones((int(keep.sum()), 1), np.float32)])
    affine = np.linalg.lstsq(ones, dst[keep], rcond=None)[0].T  # (2, 3)
    ok, quad = sane(h, affine, stored.size, query.size)
    return Verdict(int(keep.sum()), ok, quad)


# --- the run ---------------------------------------------------------------------------------

@dataclass
class Query:
    copy: ce.Copy
    split: str  # "dev" or "held"


@dataclass
class Scores:
    true: list[tuple[Query, int, Verdict]] = field(default_factory=list)  # (q, answer k, v)
    false_raw: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    false_sane: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    worst: dict[str, tuple[int, str, str]] = field(default_factory=dict)


def family_of(c: ce.Copy) -> str:
    return "edits (21 kinds)" if c.family.startswith("edit:") else c.family


def run_detector(det: Detector, stored: list[tuple[str, str, bytes]], queries: list[Query],
                 names_index: dict[str, int]) -> None:
    t0 = time.process_time()
    make = det.stored()
    feats = [features(data, make, STORED_SIDE, det.stored_k) for _, _, data in stored]
    ingest_ms = (time.process_time() - t0) * 1000 / len(stored)
    kp = np.array([len(f.points) for f in feats])
    bytes_per = kp * (det.descriptor_bytes + 4)
    matcher = cv2.BFMatcher(det.norm)
    make_q = det.query()
    scores = Scores()
    q_ms, pair_s, pairs = 0.0, 0.0, 0
    for q in queries:
        t = time.process_time()
        qf = features(q.copy.data, make_q, QUERY_SIDE, QUERY_K)
        q_ms += (time.process_time() - t) * 1000
        answers = {names_index[a] for a in q.copy.answers}
        t = time.process_time()
        for k, f in enumerate(feats):
            v = verify(f, qf, matcher)
            if k in answers:
                if q.copy.corners is not None:
                    gt = q.copy.corners[q.copy.answers.index(stored[k][0])] * qf.scale
                    v = Verdict(v.inliers, v.sane, None if v.quad is None else
                                np.abs(v.quad - gt).max(axis=1).max(keepdims=True)
                                / float(np.hypot(*qf.size)))
                else:
                    v = Verdict(v.inliers, v.sane, None)
                scores.true.append((q, k, v))
            else:
                scores.false_raw[q.split].append(v.inliers)
                scores.false_sane[q.split].append(v.inliers if v.sane else 0)
                key = f"{q.split}/{'sane' if v.sane else 'raw'}"
                if v.inliers > scores.worst.get(key, (-1, "", ""))[0]:
                    scores.worst[key] = (v.inliers, f"{q.copy.family}/{q.copy.photo}"
                                         f"#{q.copy.instance}", f"{stored[k][1]}:{stored[k][0]}")
        pair_s += time.process_time() - t
        pairs += len(feats)
    print(f"\n### {det.name}: stored K <= {det.stored_k} at long side <= {STORED_SIDE}, "
          f"query K <= {QUERY_K} at <= {QUERY_SIDE}\n")
    print(f"- stored keypoints: mean {kp.mean():.0f}, min {kp.min()}; bytes/stored image "
          f"mean {bytes_per.mean():.0f}, max {bytes_per.max()} "
          f"({det.descriptor_bytes} B descriptor + 4 B coordinates)")
    print(f"- CPU ms: ingest {ingest_ms:.1f}/stored image, query features "
          f"{q_ms / len(queries):.1f}/query, verification {pair_s * 1000 / pairs:.2f}/pair "
          f"({pairs} pairs)")
    for key, (n, query_name, stored_name) in sorted(scores.worst.items()):
        print(f"- most inliers of a non-match ({key}): {n} ({query_name} vs {stored_name})")
    report(scores, "raw", scores.false_raw)
    report(scores, "sane", scores.false_sane)


def report(scores: Scores, mode: str, false: dict[str, list[int]]) -> None:
    threshold = max(false["dev"], default=0) + 1
    held_false = sum(1 for n in false["held"] if n >= threshold)
    held_max = max(false["held"], default=0)
    print(f"\n{mode}: threshold {threshold} inliers (max non-match dev {threshold - 1}, held-out "
          f"{held_max}; held-out false matches at threshold: {held_false} of "
          f"{len(false['held'])} pairs)\n")
    rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    errors: dict[str, list[float]] = defaultdict(list)
    for q, _, v in scores.true:
        inl = v.inliers if (mode == "raw" or v.sane) else 0
        found = int(inl >= threshold)
        rows[family_of(q.copy)][q.split].append(found)
        rows["all"][q.split].append(found)
        if found and v.quad is not None:
            errors[family_of(q.copy)].append(float(v.quad[0]))
    by_edit: dict[str, list[int]] = defaultdict(list)
    for q, _, v in scores.true:
        if q.copy.family.startswith("edit:"):
            by_edit[q.copy.family[5:]].append(int((v.inliers if mode == "raw" or v.sane
                                                   else 0) >= threshold))
    weak = {k: f"{np.mean(f):.2f}" for k, f in by_edit.items() if np.mean(f) < 0.8}
    print(f"legacy edits found < 80% (both halves): {weak}\n")
    print("| family | dev recall | held-out recall | box error p50 (% diag) |")
    print("|---|---|---|---|")
    for fam, by in rows.items():
        e = errors.get(fam)
        cells = [f"{np.mean(by[s]):.2f} ({sum(by[s])}/{len(by[s])})" for s in ("dev", "held")]
        print(f"| {fam} | {cells[0]} | {cells[1]} | "
              f"{'' if not e else f'{100 * float(np.median(e)):.1f}'} |")


# --- today's design, pairwise in memory --------------------------------------------------------

def baseline(stored: list[tuple[str, str, bytes]], queries: list[Query],
             names_index: dict[str, int]) -> None:
    """server.imaging's analyse() and signals.verify() on every (query variant, stored
    signal) pair of the same region within the probe's radius: what matching.find() returns
    from PostgreSQL, without the database."""
    from server.imaging import analyse
    from server.imaging.signals import radius_of
    from server.imaging.signals import verify as verify_signal
    from tests.photo_edits import EDITS

    t0 = time.process_time()
    owners, regions, phashes, dhashes, thumbs = [], [], [], [], []
    for k, (_, _, data) in enumerate(stored):
        for s in analyse(data, max_pixels=10**8).signals:
            owners.append(k)
            regions.append(s.region)
            phashes.append(s.phash & (2**64 - 1))
            dhashes.append(s.dhash)
            thumbs.append(s.thumb)
    ingest = (time.process_time() - t0) * 1000 / len(stored)
    own = np.array(owners)
    reg = np.array(regions)
    ph = np.array(phashes, dtype=np.uint64)
    rows: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    false = {"dev": 0, "held": 0}
    for q in queries:
        needs = q.copy.family.startswith("edit:") and EDITS[q.copy.family[5:]][2]
        variants = analyse(q.copy.data, max_pixels=10**8, query=True,
                           variants=needs).query_variants
        hits: set[int] = set()
        for v in variants:
            d = np.bitwise_count(ph ^ np.uint64(v.phash & (2**64 - 1)))
            for i in np.nonzero((d <= radius_of(v)) & (reg == v.region))[0]:
                if own[i] not in hits and verify_signal(v, int(d[i]), dhashes[i],
                                                        thumbs[i]) is not None:
                    hits.add(int(own[i]))
        answers = {names_index[a] for a in q.copy.answers}
        for a in answers:
            rows[family_of(q.copy)][q.split].append(int(a in hits))
            rows["all"][q.split].append(int(a in hits))
        false[q.split] += len(hits - answers)
    print(f"\n### today's design (region pHash/dHash/NCC signals), {ingest:.1f} ms CPU per "
          f"stored image; false matches: dev {false['dev']}, held-out {false['held']}\n")
    print("| family | dev recall | held-out recall |")
    print("|---|---|---|")
    for fam, by in rows.items():
        print(f"| {fam} | " + " | ".join(f"{np.mean(by[s]):.2f} ({sum(by[s])}/{len(by[s])})"
                                         for s in ("dev", "held")) + " |")


def build_queries(instances: int, photos: Iterable[str]) -> list[Query]:
    return [Query(c, "dev" if c.photo in ce.DEVELOPMENT else "held")
            for c in ce.copies(tuple(photos), instances=instances, edits=1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distractors", type=int, default=150)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--detectors", default="orb,akaze,sift")
    parser.add_argument("--no-baseline", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    stored = list(ce.stored_set(args.distractors))
    names_index = {key: k for k, (key, _, _) in enumerate(stored)}
    queries = build_queries(args.instances, ce.PHOTOS)
    print(f"{len(stored)} stored images ({len(ce.PHOTOS)} stored pictures, "
          f"{len(ce.PHOTOS) * ce.HARD_NEGATIVES} hard negatives, {args.distractors} "
          f"distractors), {len(queries)} queries; built in "
          f"{time.perf_counter() - started:.0f} s")
    for name in args.detectors.split(","):
        if name == "akaze" and not hasattr(cv2, "AKAZE_create"):
            print("\n### akaze: not in this OpenCV build (5.x moved it to contrib), skipped")
            continue
        t = time.perf_counter()
        run_detector(DETECTORS[name], stored, queries, names_index)
        print(f"\n({name}: {time.perf_counter() - t:.0f} s wall)")
    if not args.no_baseline:
        t = time.perf_counter()
        baseline(stored, queries, names_index)
        print(f"\n(baseline: {time.perf_counter() - t:.0f} s wall)")


if __name__ == "__main__":
    main()
