"""Search-by-image quality on real photographs: per-edit recall, rank-1 and false matches of
the service's robust matching, beside the anchors, in one run.

    DATABASE_URL=postgresql://.../bench_quality python -m bench.quality [--no-anchors]

The photographs are the ones scikit-image ships (skimage.data: nothing is downloaded). The
stored set is every photo (JPEG q90) plus the distractors: random sub-regions of every photo
(15-80% of the area, some flipped or resized: similar-looking but different pictures, the
hard negatives) and the 200 LFW faces of skimage. The queries are every photo under every
edit of tests/photo_edits.py (caption bands, logos, crops of up to 20%, borders, tilts up to
5°, re-encodings, colour changes, rotations and mirrors), none of them stored. A query's
result counts as false when it is not its original, except for regions cut from its own
photo (those are the same picture). The service's side runs its own code end to end:
analyse() for stored and query images, signals and local features in PostgreSQL (the
tables of that database are emptied and filled), matching.page() for the answers (what
POST /search/image runs). The anchors are imagehash's phash,
dhash and whash (Hamming distance <= 10) and crop_resistant_hash (a segment within 16 bits),
each on the whole decoded picture, with the 8 orientations for the edits that need them.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import imagehash
import numpy as np
from PIL import Image

from server.db.migrations import migrate
from server.db.pool import init_connection
from server.db.queries import load_queries
from server.imaging import ImageFacts, analyse
from server.services import copies, matching
from server.services.cursors import Cursors
from server.services.images import insert_signals
from server.services.similar import SimilarFilters
from tests.photo_edits import EDITS, distractors, edited, load_photos, original_bytes

RADIUS = 10
Counts = dict[str, list[int]]  # edit -> [found, first, queries]


def facts_of(data: bytes, query: bool = False, orientations: bool = False) -> ImageFacts:
    return analyse(data, max_pixels=10**8, query=query, variants=orientations)


async def load(conn: asyncpg.Connection, stored: list[ImageFacts]) -> list[uuid.UUID]:
    await conn.execute("truncate images, users cascade")
    owner = uuid.uuid4()
    await conn.execute("insert into users (id, username, password_hash) "
                       "values ($1, 'quality', $2)", owner, "$2b$12$" + "x" * 53)
    ids = [uuid.uuid4() for _ in stored]
    await conn.copy_records_to_table(
        "images", columns=["id", "owner_id", "content_type", "width", "height", "size_bytes",
                           "sha256", "phash", "dhash", "ahash", "whash", "colorhash",
                           "hash_version", "storage_key", "visibility"],
        records=[(i, owner, "image/jpeg", 1, 1, 1, bytes(32), f.phash, f.dhash, f.ahash,
                  f.whash, "", 2, str(i), "public") for i, f in zip(ids, stored, strict=True)])
    queries = load_queries()
    for image_id, f in zip(ids, stored, strict=True):
        await insert_signals(conn, queries, image_id, f.signals)
        await copies.insert(conn, queries, image_id, f.features)
    await conn.execute("analyze image_signals")
    await conn.execute("analyze image_features")
    return ids


def score(counts: Counts, found: bool, first: bool, edit: str) -> None:
    row = counts.setdefault(edit, [0, 0, 0])
    row[0] += found
    row[1] += first
    row[2] += 1


def table(title: str, counts: Counts, false: int) -> tuple[float, float]:
    print(f"\n{title}")
    print(f"{'edit':<16}{'queries':>8}{'recall':>8}{'rank-1':>8}")
    total = [0, 0, 0]
    for edit, (found, first, n) in counts.items():
        print(f"{edit:<16}{n:>8}{found / n:>8.3f}{first / n:>8.3f}")
        total = [total[0] + found, total[1] + first, total[2] + n]
    worst = min(found / n for found, _, n in counts.values())
    print(f"{'all':<16}{total[2]:>8}{total[0] / total[2]:>8.3f}{total[1] / total[2]:>8.3f}"
          f"   worst edit {worst:.3f}, false matches {false}, precision "
          f"{total[0] / max(1, total[0] + false):.4f}")
    return total[0] / total[2], worst


async def robust(names: list[str], sources: list[str], stored: list[ImageFacts],
                 queries: list[tuple[str, int, ImageFacts]]) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await init_connection(conn)
    await conn.execute("set statement_timeout = 0")  # loading takes minutes
    await migrate(conn)
    ids = await load(conn, stored)
    index = {image_id: k for k, image_id in enumerate(ids)}
    named = load_queries()
    counts: Counts = {}
    false, candidates, times = 0, 0, []
    signals_by: dict[str, int] = defaultdict(int)
    cursors = Cursors(b"quality" * 8)
    verify = ThreadPoolExecutor(1)
    for edit, photo, query in queries:
        started = time.perf_counter()
        local = None if query.features is None else matching.LocalQuery(
            query.features, (query.width, query.height), verify,
            mirrored=query.mirrored_features)
        page, _ = await matching.page(
            conn, named, cursors, list(query.query_variants), viewer_id=None,
            filters=SimilarFilters(), cursor=None, limit=100,
            whole=[query.phash, *query.variant_phashes], local=local)
        found = [m for _, m in page]
        times.append((time.perf_counter() - started) * 1000)
        answers = [(index[m.image_id], m) for m in found]
        answers = [(k, m) for k, m in answers if k == photo or sources[k] != names[photo]]
        hit = [m for k, m in answers if k == photo]
        score(counts, bool(hit), bool(answers) and answers[0][0] == photo, edit)
        false += len(answers) - len(hit)
        candidates += len(answers)
        if hit:
            signals_by[hit[0].region] += 1
    await conn.close()
    verify.shutdown()
    table(f"robust matching (the service, match=robust), {len(stored)} stored images",
          counts, false)
    print(f"matched by region: {dict(signals_by)}; matching (signals, features, "
          f"verification) p50 "
          f"{float(np.median(times)):.1f} ms over {len(queries)} queries")


def anchor(names: list[str], sources: list[str], stored: list[Image.Image],
           queries: list[tuple[str, int, Image.Image, bool]],
           hashes: Callable[[Image.Image], list[int]], cutoff: int, title: str) -> None:
    """Any of the query's hashes within `cutoff` of any of a stored image's hashes."""
    db = [hashes(im) for im in stored]
    owner = np.array([k for k, hs in enumerate(db) for _ in hs])
    flat = np.array([h for hs in db for h in hs], dtype=np.uint64)
    source = np.array(sources)
    counts: Counts = {}
    false = 0
    for edit, photo, image, orientations in queries:
        variants = [image] + ([image.transpose(t) for t in Image.Transpose] if orientations
                              else [])
        query = [h for v in variants for h in hashes(v)]
        distance = np.min([np.bitwise_count(flat ^ np.uint64(h)) for h in query], axis=0)
        best = np.full(len(db), 64)
        np.minimum.at(best, owner, distance)
        ok = (best <= cutoff) & ((source != names[photo]) | (np.arange(len(db)) == photo))
        others = best[ok & (np.arange(len(db)) != photo)]
        score(counts, bool(ok[photo]),
              bool(ok[photo]) and (not len(others) or others.min() > best[photo]), edit)
        false += int(ok.sum() - ok[photo])
    table(title, counts, false)


def _bits(h: imagehash.ImageHash) -> int:
    return int.from_bytes(np.packbits(np.asarray(h.hash, dtype=bool).ravel()).tobytes(), "big")


ANCHORS: dict[str, tuple[Callable[[Image.Image], list[int]], int]] = {
    "imagehash.phash <= 10": (lambda im: [_bits(imagehash.phash(im))], RADIUS),
    "imagehash.dhash <= 10": (lambda im: [_bits(imagehash.dhash(im))], RADIUS),
    "imagehash.whash <= 10": (lambda im: [_bits(imagehash.whash(im))], RADIUS),
    "imagehash.crop_resistant_hash (a segment within 16 bits)": (
        lambda im: [_bits(h) for h in imagehash.crop_resistant_hash(im).segment_hashes], 16),
}


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def main(anchors: bool) -> None:
    started = time.perf_counter()
    photos = load_photos()
    names = [name for name, _ in photos]
    extra = distractors(photos)
    stored_bytes = [original_bytes(im) for _, im in photos] + [b for _, b in extra]
    sources = names + [source for source, _ in extra]
    plan = [(edit, k, edited(im, edit, i, k), needs)
            for k, (_, im) in enumerate(photos)
            for edit, (_, count, needs) in EDITS.items() for i in range(count)]
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        stored = list(pool.map(facts_of, stored_bytes))
        query_facts = list(pool.map(lambda p: facts_of(p[2], True, p[3]), plan))
    print(f"{len(photos)} photos, {len(stored)} stored images ({len(extra)} distractors), "
          f"{len(plan)} queries; analysed in {time.perf_counter() - started:.0f} s")
    asyncio.run(robust(names, sources, stored,
                       [(e, k, f) for (e, k, _, _), f in zip(plan, query_facts, strict=True)]))
    if anchors:
        images = [decoded(b) for b in stored_bytes]
        query_images = [(e, k, decoded(data), needs) for e, k, data, needs in plan]
        for title, (hashes, cutoff) in ANCHORS.items():
            anchor(names, sources, images, query_images, hashes, cutoff, title)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-anchors", action="store_true", help="the service's table only")
    main(not parser.parse_args().no_anchors)
