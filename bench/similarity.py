"""Search-by-image benchmark: the service's Hamming search SQL at a million hashes, beside
numpy brute force (the exact answers, and the memory-bandwidth floor) and a plain SQL scan.

    DATABASE_URL=postgresql://.../bench_similar python -m bench.similarity [--rows 1000000]

The images table of that database is emptied and filled (use a database of its own): a few
thousand real pHashes of generated images are family centres, each row one of them with 0-12
bits flipped; half the rows are public and the querying user owns 1%. 200 queries (half near
stored hashes, half random) run at r = 4, 8, 10, 12 and as top-10, through asyncpg with the
service's own functions; recall is checked against the brute-force answers. Then
``POST /search/image`` is timed end to end over HTTP with a 1080p JPEG query.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import asyncpg
import numpy as np

from bench.common import percentile, running_server
from server.db.migrations import migrate
from server.db.pool import init_connection
from server.db.queries import Queries, load_queries, positional_args, sql_of
from server.imaging import analyse, to_signed
from server.services import similar
from server.services.cursors import Cursors
from tests.images import encode, picture

RADII = (4, 8, 10, 12)
LIMIT = 100
CENTRES = 3000
COLUMNS = ["id", "owner_id", "content_type", "width", "height", "size_bytes", "sha256", "phash",
           "dhash", "ahash", "whash", "colorhash", "hash_version", "storage_key", "visibility"]
CHUNK_INDEXES = [f"images_phash_c{i}" for i in range(4)]

# The benchmark reads first pages only: any key signs them.
CURSORS = Cursors(b"bench" * 8)


def centre_hashes(count: int) -> list[int]:
    """Real pHashes: generated pictures through the service's own pipeline."""
    def one(seed: int) -> int:
        data = encode(picture((256, 192), seed + 100_000), "PNG")
        return analyse(data, max_pixels=10**8).phash

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        return list(pool.map(one, range(count)))


def generate(total: int, centres: list[int], seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """(unsigned hashes, public flags, owned-by-the-viewer flags)."""
    rng = np.random.default_rng(seed)
    base = np.array([c & 0xFFFF_FFFF_FFFF_FFFF for c in centres], dtype=np.uint64)
    hashes = base[rng.integers(0, len(base), total)]
    flips = rng.integers(0, 13, total)
    for bit_count in range(1, 13):
        rows = np.nonzero(flips >= bit_count)[0]
        bits = rng.integers(0, 64, rows.size).astype(np.uint64)
        hashes[rows] ^= np.left_shift(np.uint64(1), bits)  # may repeat a bit: 0-12 flips
    public = rng.random(total) < 0.5
    mine = rng.random(total) < 0.01
    return hashes, public, mine


async def load(conn: asyncpg.Connection, hashes: np.ndarray, public: np.ndarray,
               mine: np.ndarray) -> tuple[uuid.UUID, list[uuid.UUID]]:
    await conn.execute("truncate images, users cascade")
    viewer, other = uuid.uuid4(), uuid.uuid4()
    await conn.copy_records_to_table(
        "users", columns=["id", "username", "password_hash"],
        records=[(viewer, "viewer", "$2b$12$" + "x" * 53), (other, "other", "$2b$12$" + "x" * 53)])
    for name in CHUNK_INDEXES:
        await conn.execute(f"drop index {name}")
    ids = [uuid.uuid4() for _ in range(len(hashes))]
    started = time.perf_counter()
    batch = 100_000
    for start in range(0, len(hashes), batch):
        records = [
            (ids[k], viewer if mine[k] else other, "image/png", 1, 1, 1, bytes(32),
             to_signed(int(hashes[k])), 0, 0, 0, "", 1, f"b/{k}",
             "public" if public[k] else "private")
            for k in range(start, min(start + batch, len(hashes)))
        ]
        await conn.copy_records_to_table("images", columns=COLUMNS, records=records)
    await conn.execute("set maintenance_work_mem = '512MB'")
    for chunk, name in enumerate(CHUNK_INDEXES):
        await conn.execute(f"create index {name} on images (phash_c{chunk}) "
                           "include (phash, id, owner_id, visibility)")
    await conn.execute("vacuum analyze images")
    print(f"loaded {len(hashes):,} rows in {time.perf_counter() - started:.0f} s", flush=True)
    return viewer, ids


def brute_force(hashes: np.ndarray, visible: np.ndarray, ids: list[uuid.UUID], query: int,
                radius: int | None, limit: int) -> list[tuple[int, uuid.UUID]]:
    distances = np.bitwise_count(hashes ^ np.uint64(query & 0xFFFF_FFFF_FFFF_FFFF))
    mask = visible if radius is None else visible & (distances <= radius)
    rows = np.nonzero(mask)[0]
    best = rows[np.argsort(distances[rows], kind="stable")][: limit * 4 + 64]
    found = sorted((int(distances[r]), ids[r]) for r in best)
    return found[:limit]


async def http_search(url: str, n: int) -> list[float]:
    query = encode(picture((1920, 1080), 7), "JPEG", quality=90)
    times = []
    async with aiohttp.ClientSession() as session:
        for _ in range(n):
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(query), filename="q.jpg")
            start = time.perf_counter()
            async with session.post(f"{url}/search/image", data=form) as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            times.append((time.perf_counter() - start) * 1000)
    return times


async def main(total: int, n_queries: int, reload: bool) -> None:
    dsn = os.environ["DATABASE_URL"]
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    await conn.execute("set statement_timeout = 0")  # loading takes minutes
    await migrate(conn)
    print(f"computing {CENTRES} centre pHashes ...", flush=True)
    centres = centre_hashes(CENTRES)
    hashes, public, mine = generate(total, centres, seed=1)
    if reload or await conn.fetchval("select count(*) from images") != total:
        viewer, ids = await load(conn, hashes, public, mine)
    else:
        raise SystemExit("table already loaded by another run: pass --reload")
    visible = public | mine
    queries = load_queries()
    rng = random.Random(2)
    picks = [int(hashes[rng.randrange(total)]) ^ sum(1 << b for b in rng.sample(range(64),
             rng.randrange(0, 7))) if i % 2 == 0 else rng.getrandbits(64)
             for i in range(n_queries)]
    signed = [to_signed(q) for q in picks]
    filters = similar.SimilarFilters()
    version = await conn.fetchval("show server_version")
    print(f"\nPostgreSQL {version}, {total:,} hashes, {n_queries} queries (half near stored "
          f"hashes), limit {LIMIT}; ms, client side, one connection")
    print(f"{'query':<8} {'p50':>7} {'p95':>7} {'recall':>7} {'scan p50':>9} {'x faster':>9} "
          f"{'numpy p50':>10} {'mean found':>10}")
    for radius in (*RADII, None):
        times, scan_times, numpy_times, recalls, found = [], [], [], [], []
        for query in signed:
            started = time.perf_counter()
            if radius is None:
                rows = await similar.nearest(conn, queries, [query], viewer_id=viewer, k=10,
                                             filters=filters)
            else:
                rows, _ = await similar.within(conn, queries, CURSORS, [query], viewer_id=viewer,
                                               max_distance=radius, filters=filters,
                                               limit=LIMIT)
            times.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            exact = brute_force(hashes, visible, ids, query, radius,
                                10 if radius is None else LIMIT)
            numpy_times.append((time.perf_counter() - started) * 1000)
            got = [(r["distance"], r["id"]) for r in rows]
            if radius is None:  # ties at the k-th distance may pick other ids
                recalls.append(float([d for d, _ in got] == [d for d, _ in exact]))
            else:
                recalls.append(len(set(got) & set(exact)) / len(exact) if exact else 1.0)
            found.append(len(got))
        for query in signed[:20]:
            started = time.perf_counter()
            await _scan(conn, queries, query, viewer, 64 if radius is None else radius)
            scan_times.append((time.perf_counter() - started) * 1000)
        name = "top-10" if radius is None else f"r = {radius}"
        print(f"{name:<8} {percentile(times, 50):>7.2f} {percentile(times, 95):>7.2f} "
              f"{min(recalls):>7.3f} {percentile(scan_times, 50):>9.1f} "
              f"{percentile(scan_times, 50) / percentile(times, 50):>9.0f} "
              f"{percentile(numpy_times, 50):>10.2f} {sum(found) / len(found):>10.1f}")

    c0, c1, c2, c3 = similar.probe_values([signed[0]], 12)
    args = positional_args(
        queries, "similar_probe", query=signed[0], others=[], c0=c0, c1=c1, c2=c2, c3=c3,
        viewer_id=viewer, max_distance=12, exclude_id=None, q=None, head=None, last_word=None,
        tag=None, owner_id=None, within=None, after_distance=None, after_id=None,
        limit=LIMIT + 1)
    plan = await conn.fetch("explain (analyze, costs off) " + sql_of(queries, "similar_probe"),
                            *args)
    print("\nEXPLAIN ANALYZE of the probe query at r = 12:")
    # The probe arrays make lines very long: keep the start of each.
    print("\n".join("  " + (r[0] if len(r[0]) < 160 else r[0][:150] + " ...") for r in plan))
    await conn.close()

    with running_server({"DATABASE_URL": dsn}) as server:
        times = await http_search(server.url, 60)
    print(f"\nPOST /search/image, 1080p JPEG query, end to end over HTTP: "
          f"p50 {percentile(times[10:], 50):.1f} ms, p95 {percentile(times[10:], 95):.1f} ms")


async def _scan(conn: asyncpg.Connection, queries: Queries, query: int, viewer: uuid.UUID,
                radius: int) -> object:
    """The plain SQL scan: every visible hash's distance."""
    args = positional_args(
        queries, "similar_scan", query=query, others=[], viewer_id=viewer, max_distance=radius,
        exclude_id=None, q=None, head=None, last_word=None, tag=None, owner_id=None,
        within=None, after_distance=None, after_id=None, limit=LIMIT + 1)
    return await conn.fetch(sql_of(queries, "similar_scan"), *args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--reload", action="store_true", default=True)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.queries, args.reload))
