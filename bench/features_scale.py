"""Copy detection by local features at a million images: the service's candidates
(`copies.candidates`: the postings' SQL, the votes of the whole query and of its picture
regions counted in numpy, the best looked up) with their latency,
postings read and recall per copy family for several max_df; `POST /search/image` end to
end over HTTP; and the bytes per image of the feature tables.

    createdb -h 127.0.0.1 -U postgres bench_features
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_features \\
        nice -n 5 .venv/bin/python -m bench.features_scale [--images 1000000] [--reuse]

The images, image_features, feature_postings and feature_postings_recent tables of that
database are emptied and filled (use a database of its own; `--reuse` keeps what an earlier
run of the same --images loaded). Everything goes through the service's own code: features
and keys from server.imaging (analyse, features.KEY_BIT_POSITIONS), the schema of the
migrations, and `copies.candidates` with its named queries.

Stored images. Real ones: the stored picture of every photo of tests/copy_edits.py (the true
answers), its hard negatives and the first --real distractors of its stream, analysed by
`analyse`. Synthetic ones (the rest), as docs/retrieval-study.md did: each takes a feature
count from the real images' counts and that many descriptors drawn from the pool of the real
images' descriptors, each with ~Binomial(256, 0.04) bits flipped (a fresh flip mask per
feature, from a table of 65,536 masks), at random points of a 640x480 picture: stored bytes
(128 x 32 B descriptors + 128 x 4 B points) and key frequencies are those of real pictures.
Postings are built in numpy (sorted by key) and COPY'd as merged arrays, except those of the
last images, left in feature_postings_recent (what waits between two merges; fewer than
services/copies.MERGE_AT, so the server's merger leaves them there).

Queries: one instance of every copy family of tests/copy_edits.py for every photo,
analysed as the service analyses a query (`analyse(..., query=True)`). Recall: whether each
true answer is among the candidates (copies.CANDIDATES, and REGION_CANDIDATES per picture
region). Warm: the second of two passes.
Over HTTP, each copy is placed in a 1920x1080 JPEG (q90), as a shared screenshot would be.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import numpy as np
from PIL import Image

import tests.copy_edits as ce
from bench.common import percentile, postings_batches, running_server
from bench.matching import IMAGE_COLUMNS
from server.db.migrations import migrate
from server.db.pool import init_connection
from server.db.queries import Queries, load_queries, positional_args, sql_of
from server.imaging import analyse
from server.imaging.features import (
    FEATURES_VERSION,
    KEY_BIT_POSITIONS,
    KEY_BITS,
    STORED_COUNT,
    Features,
    keys,
)
from server.services import copies

FEATURE_COLUMNS = ["seq", "image_id", "version", "width", "height", "points", "descriptors",
                   "thumb"]
CHUNK = 10_000  # synthetic images generated (and COPY'd) at a time
FLIP = 0.04  # share of descriptor bits flipped (a re-detection differs by ~10-40 bits)
MASKS = 65_536
SYNTH_SIZE = (640, 480)
RECENT_IMAGES = 72  # their ~18k postings wait in feature_postings_recent (< MERGE_AT)
MAX_DFS = (500, copies.MAX_DF, 2_000)


@dataclass
class Real:
    key: str  # storage key: ce/<photo> for the true answers
    features: Features


def real_images(distractors: int) -> list[Real]:
    """The stored pictures, their hard negatives and the first distractors, with the
    features the service stores for them."""
    def one(item: tuple[str, bytes]) -> Real | None:
        features = analyse(item[1], max_pixels=10**8).features
        return None if features is None or not len(features) else Real(item[0], features)

    items = [(f"ce/{name}", ce.stored_bytes(name)) for name in ce.PHOTOS]
    items += [(f"ce/{name}/hard{k}", data) for name in ce.PHOTOS
              for k, (_, data) in enumerate(ce.hard_negatives(name))]
    items += [(f"d/{i}", d.data) for i, d in enumerate(ce.distractors(distractors))]
    with ThreadPoolExecutor(2) as pool:
        return [r for r in pool.map(one, items) if r is not None]


def chunk_keys(desc: np.ndarray) -> np.ndarray:
    """features.keys() vectorised over (m, 32) descriptors: (m, KEY_TABLES) int64 keys, one
    per table, (table << KEY_BITS) | sampled bits (same bits, same order)."""
    out = np.zeros((len(desc), len(KEY_BIT_POSITIONS)), dtype=np.int64)
    for table, positions in enumerate(KEY_BIT_POSITIONS):
        value = np.zeros(len(desc), dtype=np.int64)
        for p in positions:  # np.unpackbits order: bit 0 is the top bit of byte 0
            value = (value << 1) | ((desc[:, p >> 3] >> (7 - (p & 7))) & 1)
        out[:, table] = value + (table << KEY_BITS)
    return out


def flip_masks(rng: np.random.Generator) -> np.ndarray:
    return np.packbits(rng.random((MASKS, 256)) < FLIP, axis=1)


async def load(conn: asyncpg.Connection, total: int, real: list[Real]) -> dict[str, object]:
    """Fill the tables; answer load facts (seconds, postings)."""
    started = time.perf_counter()
    await conn.execute("truncate images, users restart identity cascade")
    await conn.execute("truncate feature_postings, feature_postings_recent")
    owner = uuid.uuid4()
    await conn.copy_records_to_table("users", columns=["id", "username", "password_hash"],
                                     records=[(owner, "owner", "$2b$12$" + "x" * 53)])
    rng = np.random.default_rng(5)
    # Not the true answers' own descriptors: synthetic images share nothing with them
    # beyond what other pictures (hard negatives, distractors) share.
    pool = np.concatenate([r.features.descriptors for r in real
                           if r.key.count("/") > 1 or r.key.startswith("d/")]).astype(np.uint8)
    counts_real = np.array([len(r.features) for r in real])
    masks = flip_masks(rng)
    # The real images at random places among the synthetic ones (seq = index + 1).
    real_at = dict(zip(rng.choice(total - RECENT_IMAGES, len(real), replace=False).tolist(),
                       real, strict=True))
    parts: list[np.ndarray] = []  # (key << 32) | seq, merged postings
    recent: list[np.ndarray] = []
    for start in range(0, total, CHUNK):
        n = min(CHUNK, total - start)
        counts = rng.choice(counts_real, n)
        desc = pool[rng.integers(0, len(pool), (n, STORED_COUNT))] ^ masks[
            rng.integers(0, MASKS, (n, STORED_COUNT))]
        halves = np.stack([rng.integers(0, 2 * SYNTH_SIZE[0], (n, STORED_COUNT)),
                           rng.integers(0, 2 * SYNTH_SIZE[1], (n, STORED_COUNT))],
                          axis=2).astype("<u2")
        sizes = [SYNTH_SIZE] * n
        storage = [f"s/{start + i}" for i in range(n)]
        thumbs = [rng.integers(0, 256, 256, dtype=np.uint8).tobytes() for _ in range(n)]
        for i in range(n):
            r = real_at.get(start + i)
            if r is None:
                continue
            c = len(r.features)
            counts[i] = c
            pts, _ = r.features.packed()
            halves[i, :c] = np.frombuffer(pts, dtype="<u2").reshape(-1, 2)
            desc[i, :c] = r.features.descriptors
            sizes[i] = r.features.size
            thumbs[i] = r.features.thumb
            storage[i] = r.key
        ids = [uuid.uuid4() for _ in range(n)]
        await conn.copy_records_to_table("images", columns=IMAGE_COLUMNS, records=[
            (ids[i], owner, "image/jpeg", 1, 1, 1, bytes(32), 0, 0, 0, 0, "", 2, storage[i],
             "public") for i in range(n)])
        await conn.copy_records_to_table("image_features", columns=FEATURE_COLUMNS, records=[
            (start + i + 1, ids[i], FEATURES_VERSION, sizes[i][0], sizes[i][1],
             halves[i, :counts[i]].tobytes(), desc[i, :counts[i]].tobytes(), thumbs[i])
            for i in range(n)])
        valid = np.arange(STORED_COUNT)[None, :] < counts[:, None]
        k = chunk_keys(desc.reshape(-1, 32)).reshape(n, STORED_COUNT, -1)
        seqs = np.broadcast_to(np.arange(start + 1, start + n + 1)[:, None, None], k.shape)
        pairs = np.unique(((k << 32) | seqs)[valid].ravel())  # distinct keys per image
        if start == 0:  # the vectorised keys are the service's keys
            first = pairs[(pairs & 0xFFFF_FFFF) == 1] >> 32
            assert first.tolist() == keys(desc[0, :counts[0]]), "keys differ from the service"
        cut = total - RECENT_IMAGES
        late = (pairs & 0xFFFF_FFFF) > cut
        parts.append(pairs[~late])
        recent.append(pairs[late])
        if (start // CHUNK) % 10 == 9:
            print(f"  {start + n:,} images, {time.perf_counter() - started:.0f} s", flush=True)
    features_s = time.perf_counter() - started
    await conn.execute("select setval(pg_get_serial_sequence('image_features', 'seq'), $1)",
                       total)
    merged = np.concatenate(parts)
    del parts
    merged.sort()
    postings = len(merged)
    key_of = (merged >> 32).astype(np.int32)
    seq_of = (merged & 0xFFFF_FFFF).astype(np.int32)
    del merged
    distinct = 0
    for batch in postings_batches(key_of, seq_of):
        distinct += len(batch)
        await conn.copy_records_to_table("feature_postings", columns=["key", "df", "seqs"],
                                         records=batch)
    late_pairs = np.concatenate(recent)
    await conn.copy_records_to_table("feature_postings_recent", columns=["key", "seq"], records=[
        (int(v >> 32), int(v & 0xFFFF_FFFF)) for v in late_pairs])
    for table in ("images", "image_features", "feature_postings", "feature_postings_recent"):
        await conn.execute(f"vacuum analyze {table}")
    return {"seconds": time.perf_counter() - started, "features_s": features_s,
            "postings": postings, "keys": distinct, "recent": len(late_pairs),
            "pool": len(pool), "real": len(real)}


@dataclass
class Query:
    family: str
    photo: str
    data: bytes
    answers: tuple[str, ...]
    features: Features


def query_set() -> list[Query]:
    def one(c: ce.Copy) -> Query:
        facts = analyse(c.data, max_pixels=10**8, query=True)
        assert facts.features is not None
        return Query(c.family, c.photo, c.data, c.answers, facts.features)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, ce.copies(ce.PHOTOS, instances=1, edits=0)))


CPU = ThreadPoolExecutor(1)  # the votes are counted in the CPU pool, as the server does


async def candidates(conn: asyncpg.Connection, queries: Queries, q: Query,
                     max_df: int) -> tuple[list[uuid.UUID], float]:
    """The service's candidates (copies.candidates: the postings' SQL, the votes counted in
    numpy, the best looked up) and the milliseconds they took."""
    started = time.perf_counter()
    whole, regions = copies.query_keys(q.features)
    found = await copies.candidates(conn, queries, CPU, whole, None, regions=regions,
                                    max_df=max_df)
    return [c.image_id for c in found], (time.perf_counter() - started) * 1000


async def postings_read(conn: asyncpg.Connection, q: Query, max_df: int) -> int:
    k = keys(q.features.descriptors)
    merged = await conn.fetchval("select coalesce(sum(df), 0) from feature_postings "
                                 "where key = any($1::int4[]) and df <= $2", k, max_df)
    recent = await conn.fetchval("select count(*) from feature_postings_recent "
                                 "where key = any($1::int4[])", k)
    return int(merged) + int(recent)


@dataclass
class SqlResult:
    max_df: int
    times: list[float]
    postings: list[int]
    hits: dict[str, tuple[int, int]]  # family: (answers found, answers)
    median_query: Query


async def measure_sql(conn: asyncpg.Connection, queries: Queries, qs: Sequence[Query],
                      answer_ids: dict[str, uuid.UUID], max_df: int) -> SqlResult:
    for q in qs:  # the first pass warms the cache
        await candidates(conn, queries, q, max_df)
    times, postings = [], []
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for q in qs:
        found, ms = await candidates(conn, queries, q, max_df)
        times.append(ms)
        postings.append(await postings_read(conn, q, max_df))
        for a in q.answers:
            hits[q.family][0] += answer_ids[a] in found
            hits[q.family][1] += 1
    median = qs[int(np.argsort(times)[len(times) // 2])]
    return SqlResult(max_df, times, postings, {f: (h[0], h[1]) for f, h in hits.items()},
                     median)


async def explain(conn: asyncpg.Connection, queries: Queries, q: Query, max_df: int) -> str:
    args = positional_args(queries, "feature_postings_of", keys=keys(q.features.descriptors),
                           max_df=max_df)
    rows = await conn.fetch("explain (analyze, buffers, costs off) "
                            + sql_of(queries, "feature_postings_of"), *args)
    return "\n".join(re.sub(r"'\{[0-9,]+\}'", lambda m: f"'{{{m[0].count(',') + 1} keys}}'",
                            r[0]) for r in rows)


def in_1080p(data: bytes) -> bytes:
    """The copy placed in a 1920x1080 frame (scaled to fit), JPEG q90."""
    im = Image.open(io.BytesIO(data)).convert("RGB")
    scale = min(1920 * 0.9 / im.width, 1080 * 0.9 / im.height)
    im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))),
                   Image.Resampling.BILINEAR)
    frame = Image.new("RGB", (1920, 1080), (236, 236, 240))
    frame.paste(im, ((1920 - im.width) // 2, (1080 - im.height) // 2))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=90)
    return out.getvalue()


def cpu_seconds(pids: Sequence[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


@dataclass
class HttpResult:
    times: list[float]
    found: int
    answers: int
    errors: int  # non-200 answers (a statement past the pool's timeout, say)
    server_cpu_ms: float  # per request
    pg_cpu_ms: float


async def measure_http(dsn: str, conn: asyncpg.Connection, qs: Sequence[Query],
                       answer_ids: dict[str, uuid.UUID]) -> HttpResult:
    bodies = [in_1080p(q.data) for q in qs]
    with running_server({"DATABASE_URL": dsn}) as server:
        async with aiohttp.ClientSession() as session:
            async def post(body: bytes) -> str | None:
                form = aiohttp.FormData()
                form.add_field("file", io.BytesIO(body), filename="q.jpg",
                               content_type="image/jpeg")
                async with session.post(f"{server.url}/search/image", data=form) as resp:
                    text = await resp.text()
                    if resp.status != 200:
                        print(f"  HTTP {resp.status}: {text[:200]}", flush=True)
                        return None
                    return text

            for body in bodies:  # warm pass
                await post(body)
            backends = [r["pid"] for r in await conn.fetch(
                "select pid from pg_stat_activity where datname = current_database() "
                "and pid <> pg_backend_pid()")]
            cpu0, pg0 = cpu_seconds(server.pids()), cpu_seconds(backends)
            times, found, answers, errors = [], 0, 0, 0
            for q, body in zip(qs, bodies, strict=True):
                started = time.perf_counter()
                text = await post(body)
                times.append((time.perf_counter() - started) * 1000)
                answers += len(q.answers)
                if text is None:
                    errors += 1
                    continue
                found += sum(str(answer_ids[a]) in text for a in q.answers)
            cpu1, pg1 = cpu_seconds(server.pids()), cpu_seconds(backends)
    n = len(qs)
    return HttpResult(times, found, answers, errors, (cpu1 - cpu0) * 1000 / n,
                      (pg1 - pg0) * 1000 / n)


async def sizes(conn: asyncpg.Connection, total: int) -> dict[str, tuple[float, int]]:
    out = {}
    for table in ("image_features", "feature_postings", "feature_postings_recent",
                  "image_signals"):
        size = int(await conn.fetchval("select pg_total_relation_size($1::regclass)", table))
        rows = int(await conn.fetchval(f"select count(*) from {table}"))
        out[table] = (size / total, rows)
    return out


async def run(total: int, n_real: int, reuse: bool, http: bool,
              max_dfs: Sequence[int]) -> None:
    dsn = os.environ["DATABASE_URL"]
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    await conn.execute("set statement_timeout = 0")
    await migrate(conn)
    copies.CANDIDATES_TIMEOUT = 60.0  # larger max_df values are measured, not cut off
    facts: dict[str, object] = {}
    if reuse:
        if await conn.fetchval("select count(*) from image_features") != total:
            raise SystemExit(f"--reuse: the database does not hold {total:,} images; load first")
    else:
        t = time.perf_counter()
        real = real_images(n_real)
        print(f"features of {len(real)} real images: {time.perf_counter() - t:.0f} s",
              flush=True)
        facts = await load(conn, total, real)
        print(f"loaded {total:,} images: {facts}", flush=True)
    answer_ids = {r["storage_key"][3:]: r["id"] for r in await conn.fetch(
        "select id, storage_key from images where storage_key = any($1::text[])",
        [f"ce/{name}" for name in ce.PHOTOS])}
    t = time.perf_counter()
    qs = query_set()
    print(f"{len(qs)} queries analysed in {time.perf_counter() - t:.0f} s", flush=True)
    queries = load_queries()
    families = list(dict.fromkeys(q.family for q in qs))
    version = "PostgreSQL " + str(await conn.fetchval("show server_version"))
    print(f"\n## {version}: {total:,} images, {len(qs)} queries (tests/copy_edits.py, one "
          f"copy per family and photo), warm (second pass)\n")
    if facts:
        print(f"Load: {facts['seconds']:.0f} s ({facts['features_s']:.0f} s images and "
              f"features, the rest postings + VACUUM ANALYZE); {facts['postings']:,} merged "
              f"postings in {facts['keys']:,} keys, {facts['recent']:,} recent; pool "
              f"{facts['pool']:,} descriptors of {facts['real']} real images\n")
    print("| max_df | SQL p50 ms | SQL p95 ms | postings read p50 | p95 | recall (all) | "
          + " | ".join(families) + " |")
    print("|---" * (6 + len(families)) + "|", flush=True)
    results = []
    for m in max_dfs:
        r = await measure_sql(conn, queries, qs, answer_ids, m)
        results.append(r)
        found = sum(v[0] for v in r.hits.values())
        n = sum(v[1] for v in r.hits.values())
        print(f"| {r.max_df:,} | {percentile(r.times, 50):.1f} | {percentile(r.times, 95):.1f} "
              f"| {percentile(r.postings, 50):,.0f} | {percentile(r.postings, 95):,.0f} "
              f"| {found}/{n} | "
              + " | ".join(f"{r.hits[f][0]}/{r.hits[f][1]}" for f in families) + " |",
              flush=True)
    print("\n| table | bytes per image | rows |\n|---|---|---|")
    for table, (per, rows) in (await sizes(conn, total)).items():
        note = " (empty: no region signals loaded)" if table == "image_signals" else ""
        print(f"| {table} | {per:,.0f}{note} | {rows:,} |")
    last = results[-1]
    plan = await explain(conn, queries, last.median_query, last.max_df)
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the median query ({last.median_query.family}/"
          f"{last.median_query.photo}, max_df {last.max_df:,}):\n{plan}", flush=True)
    h = await measure_http(dsn, conn, qs, answer_ids) if http else None
    await conn.close()
    if h is not None:
        print(f"\nPOST /search/image, copies in 1920x1080 JPEG q90, over HTTP (max_df "
              f"{copies.MAX_DF:,}): p50 {percentile(h.times, 50):.1f} ms, p95 "
              f"{percentile(h.times, 95):.1f} ms; answers found {h.found}/{h.answers}; "
              f"errors {h.errors}; CPU per request: server {h.server_cpu_ms:.0f} ms, "
              f"PostgreSQL backends {h.pg_cpu_ms:.0f} ms")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--real", type=int, default=600,
                        help="distractors of tests/copy_edits.py stored as real images")
    parser.add_argument("--reuse", action="store_true",
                        help="keep the tables an earlier run of the same --images filled")
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--max-df", type=int, nargs="+", default=list(MAX_DFS),
                        help="max_df values for the SQL stage (the last one is EXPLAINed)")
    args = parser.parse_args()
    asyncio.run(run(args.images, args.real, args.reuse, not args.no_http, args.max_df))
