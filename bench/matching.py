"""Robust search by image at a million images: the region-signal probes' latency, candidate
counts and exactness, and `POST /search/image` end to end.

    DATABASE_URL=postgresql://.../bench_matching python -m bench.matching [--images 1000000]

The images and image_signals tables of that database are emptied and filled (use a database
of its own). A few thousand generated pictures go through the service's own pipeline; each
stored image is one of them with 0-12 bits of every region's pHash and dHash flipped, so the
hashes cluster as real ones do (one row per region: up to 6 per image). Queries are real
photographs (skimage.data) under the edits of bench/quality.py, none of them stored: every
verified match would be a false one, and the unverified candidates are the probes' work.
Exactness: for some queries the probes' hits are compared with numpy brute force over every
stored signal (same region, pHash within the radius).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import asyncpg
import numpy as np

from bench.common import percentile, running_server
from server.db.migrations import migrate
from server.db.pool import init_connection
from server.db.queries import load_queries
from server.imaging import analyse
from server.imaging.signals import REGIONS, Signal, radius_of
from server.services import matching
from tests.images import encode, picture
from tests.photo_edits import EDITS, load_photos

CENTRES = 3000
IMAGE_COLUMNS = ["id", "owner_id", "content_type", "width", "height", "size_bytes", "sha256",
                 "phash", "dhash", "ahash", "whash", "colorhash", "hash_version", "storage_key",
                 "visibility"]
SIGNAL_COLUMNS = ["image_id", "region", "phash", "dhash", "thumb"]
SIGNAL_INDEXES = [f"image_signals_c{i}" for i in range(4)]
MASK = 0xFFFF_FFFF_FFFF_FFFF


def centre_signals(count: int) -> list[tuple[Signal, ...]]:
    def one(seed: int) -> tuple[Signal, ...]:
        data = encode(picture((320, 240), seed + 200_000), "PNG")
        return analyse(data, max_pixels=10**8).signals

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(one, range(count)))


def flipped(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    out = values.copy()
    flips = rng.integers(0, 13, values.size)
    for k in range(1, 13):
        rows = np.nonzero(flips >= k)[0]
        out[rows] ^= np.left_shift(np.uint64(1), rng.integers(0, 64, rows.size).astype(np.uint64))
    return out


def signed(value: int) -> int:
    value &= MASK
    return value - (1 << 64) if value >> 63 else value


async def load(conn: asyncpg.Connection, total: int, centres: list[tuple[Signal, ...]],
               reuse: bool = False) -> dict[int, tuple[np.ndarray, list[uuid.UUID]]]:
    """Fill the tables; answer, per region, the stored pHashes and their image ids. With
    `reuse`, tables that an earlier run filled (the same generator, so the same rows) are
    kept: only the answer is computed again (queries can be re-measured without a reload)."""
    if reuse:
        return await _reused(conn, total)
    await conn.execute("truncate images, users cascade")
    owner = uuid.uuid4()
    await conn.copy_records_to_table("users", columns=["id", "username", "password_hash"],
                                     records=[(owner, "owner", "$2b$12$" + "x" * 53)])
    for name in SIGNAL_INDEXES:
        await conn.execute(f"drop index if exists {name}")
    rng = np.random.default_rng(1)
    which = rng.integers(0, len(centres), total)
    ids = [uuid.uuid4() for _ in range(total)]
    started = time.perf_counter()
    per_region: dict[int, tuple[np.ndarray, list[uuid.UUID]]] = {}
    for region in range(len(REGIONS)):
        have = [i for i, c in enumerate(centres) if any(s.region == REGIONS[region] for s in c)]
        lookup = {i: next(s for s in centres[i] if s.region == REGIONS[region]) for i in have}
        rows = np.nonzero(np.isin(which, have))[0]
        base_p = np.array([lookup[int(which[r])].phash & MASK for r in rows], dtype=np.uint64)
        base_d = np.array([lookup[int(which[r])].dhash & MASK for r in rows], dtype=np.uint64)
        phashes, dhashes = flipped(rng, base_p), flipped(rng, base_d)
        per_region[region] = (phashes, [ids[r] for r in rows])
        if region == 0:  # the images themselves, with the whole region's pHash
            await _copy_images(conn, ids, owner, which, centres)
        for start in range(0, len(rows), 200_000):
            part = range(start, min(start + 200_000, len(rows)))
            await conn.copy_records_to_table("image_signals", columns=SIGNAL_COLUMNS, records=[
                (ids[rows[k]], region, signed(int(phashes[k])), signed(int(dhashes[k])),
                 lookup[int(which[rows[k]])].thumb) for k in part])
    await conn.execute("set maintenance_work_mem = '1GB'")
    for chunk, name in enumerate(SIGNAL_INDEXES):
        await conn.execute(f"create index {name} on image_signals (region, c{chunk}) "
                           "include (phash, image_id)")
    await conn.execute("vacuum analyze images")
    await conn.execute("vacuum analyze image_signals")
    count = await conn.fetchval("select count(*) from image_signals")
    print(f"loaded {total:,} images and {count:,} signals in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    return per_region


async def _reused(conn: asyncpg.Connection,
                  total: int) -> dict[int, tuple[np.ndarray, list[uuid.UUID]]]:
    """What load() answers, read back from the tables it filled."""
    if await conn.fetchval("select count(*) from images") != total:
        raise SystemExit(f"--reuse: the database does not hold {total:,} images; load first")
    per_region: dict[int, tuple[np.ndarray, list[uuid.UUID]]] = {}
    for region in range(len(REGIONS)):
        rows = await conn.fetch("select phash, image_id from image_signals where region = $1",
                                region)
        per_region[region] = (np.array([r["phash"] & MASK for r in rows], dtype=np.uint64),
                              [r["image_id"] for r in rows])
    print(f"reused {total:,} images and {sum(len(v[1]) for v in per_region.values()):,} "
          "signals", flush=True)
    return per_region


async def _copy_images(conn: asyncpg.Connection, ids: list[uuid.UUID], owner: uuid.UUID,
                       which: np.ndarray, centres: list[tuple[Signal, ...]]) -> None:
    for start in range(0, len(ids), 200_000):
        await conn.copy_records_to_table("images", columns=IMAGE_COLUMNS, records=[
            (ids[k], owner, "image/png", 1, 1, 1, bytes(32), centres[int(which[k])][0].phash,
             0, 0, 0, "", 2, f"b/{k}", "public")
            for k in range(start, min(start + 200_000, len(ids)))])


def brute_force(per_region: dict[int, tuple[np.ndarray, list[uuid.UUID]]],
                variants: Sequence[Signal]) -> set[tuple[uuid.UUID, int]]:
    """Every (image, region) within a variant's radius, by reading every stored signal."""
    hits: set[tuple[uuid.UUID, int]] = set()
    for variant in variants:
        region = REGIONS.index(variant.region)
        phashes, ids = per_region[region]
        distances = np.bitwise_count(phashes ^ np.uint64(variant.phash & MASK))
        hits.update((ids[i], region) for i in np.nonzero(distances <= radius_of(variant))[0])
    return hits


def query_images(count: int) -> list[bytes]:
    photos = load_photos()
    rng = random.Random(3)
    kinds = [k for k, (_, _, needs_all) in EDITS.items() if not needs_all]
    out = []
    for i in range(count):
        name_image = photos[i % len(photos)][1]
        kind = rng.choice(kinds)
        out.append(EDITS[kind][0](name_image, rng, i))
    return out


async def run(total: int, n_queries: int, exact_checks: int, reuse: bool) -> None:
    dsn = os.environ["DATABASE_URL"]
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    await conn.execute("set statement_timeout = 0")  # loading takes minutes
    await migrate(conn)
    centres = []
    if not reuse:
        print(f"computing the signals of {CENTRES} generated pictures ...", flush=True)
        centres = [c for c in centre_signals(CENTRES) if c]
    per_region = await load(conn, total, centres, reuse)
    queries = load_queries()
    images = query_images(n_queries)
    facts = [analyse(data, max_pixels=10**8, query=True) for data in images]
    times, candidates, verified, variants_n = [], [], [], []
    for f in facts:
        started = time.perf_counter()
        found = await matching.find(conn, queries, f.query_variants, None)
        times.append((time.perf_counter() - started) * 1000)
        verified.append(len(found))
        variants_n.append(len(f.query_variants))
        params = matching.candidate_params(f.query_variants)
        rows = [r async for r in queries.signal_candidates(conn, viewer_id=None, within=None,
                                                           **params)]
        candidates.append(len({(r["image_id"], r["region"]) for r in rows}))
    exact = 0
    for f in facts[:exact_checks]:
        params = matching.candidate_params(f.query_variants)
        rows = [r async for r in queries.signal_candidates(conn, viewer_id=None, within=None,
                                                           **params)]
        exact += {(r["image_id"], r["region"]) for r in rows} == brute_force(
            per_region, f.query_variants)
    version = "PostgreSQL " + str(await conn.fetchval("show server_version"))
    await conn.close()
    print(f"\n{version}: {total:,} images, {n_queries} queries (real photos, edited, not stored)")
    print(f"probes + verification (matching.find): p50 {percentile(times, 50):.1f} ms, "
          f"p95 {percentile(times, 95):.1f} ms")
    print(f"query variants: median {percentile(variants_n, 50):.0f}; unverified candidates per "
          f"query: median {percentile(candidates, 50):.0f}, max {max(candidates)}; verified "
          f"(false) matches: {sum(verified)}")
    print(f"exact against brute force: {exact}/{min(exact_checks, len(facts))} queries")
    with running_server({"DATABASE_URL": dsn}) as server:
        http = await http_times(server.url, 30)
    print(f"POST /search/image, 1080p JPEG, over HTTP: p50 {percentile(http, 50):.1f} ms, "
          f"p95 {percentile(http, 95):.1f} ms")


async def http_times(url: str, n: int) -> list[float]:
    query = encode(picture((1920, 1080), 7), "JPEG", quality=90)
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n + 3):
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(query), filename="q.jpg")
            started = time.perf_counter()
            async with session.post(f"{url}/search/image", data=form) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            times.append((time.perf_counter() - started) * 1000)
    return times[3:]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--exact-checks", type=int, default=20)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the tables an earlier run of the same --images filled")
    args = parser.parse_args()
    asyncio.run(run(args.images, args.queries, args.exact_checks, args.reuse))
