"""Text-search benchmark: the API's SQL beside two baselines, at a million images.

    DATABASE_URL=postgresql://.../bench python -m bench.text_search [--rows 1000000]

Fills the images table of that database (it is emptied first: use a database of its own)
with generated text drawn from a vocabulary with a Zipf-like word frequency, written with
COPY, no HTTP. Then times queries of 1-3 words in three buckets by the share of rows they
match: rare (< 0.1%), medium (about 1%) and common (>= 10%), for the API's SQL (the service
function, as the handler calls it), the plain "GIN match, ts_rank_cd every match, sort,
limit" query, and a naive ILIKE scan.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import numpy as np

from bench.common import percentile
from server.db.migrations import migrate
from server.db.pool import init_connection
from server.db.queries import load_queries, positional_args, sql_of
from server.services.cursors import Cursors
from server.services.search import (
    RECENT_CANDIDATES,
    SearchFilters,
    _choose_mode,
    search,
    split_last_word,
)

VOCABULARY = 20_000
TAG_VOCABULARY = 500
USERS = 1000
BATCH = 50_000
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"] + ["ar", "el", "on", "is"]

# The plain query, with the API's own query expression (prefix on the last word included),
# so that both return the same matches and only the ranking strategy differs.
PLAIN_SQL = """
select id from images
where search_doc @@ image_search_query($1, $2, $3)
  and (visibility = 'public' or owner_id = $4)
order by ts_rank_cd(search_doc, image_search_query($1, $2, $3)) desc, created_at desc, id desc
limit 20
"""

# The benchmark reads first pages only: any key signs them.
CURSORS = Cursors(b"bench" * 8)


def make_words(count: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    ordered = sorted(words)  # sets iterate in a per-process order: sort, then shuffle
    rng.shuffle(ordered)
    return ordered


def zipf(n: int, exponent: float = 1.0) -> np.ndarray[tuple[int], np.dtype[np.float64]]:
    p = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent
    result: np.ndarray[tuple[int], np.dtype[np.float64]] = p / p.sum()
    return result


def rows(total: int, words: list[str], tags: list[str], owners: list[uuid.UUID],
         seed: int) -> Iterator[list[tuple[object, ...]]]:
    rng = np.random.default_rng(seed)
    word_p, tag_p = zipf(len(words)), zipf(len(tags))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    words_arr, tags_arr = np.array(words), np.array(tags)
    for offset in range(0, total, BATCH):
        n = min(BATCH, total - offset)
        title_len = rng.integers(3, 7, n)
        desc_len = rng.integers(8, 26, n)
        tag_len = rng.integers(1, 5, n)
        title_words = words_arr[rng.choice(len(words), title_len.sum(), p=word_p)]
        desc_words = words_arr[rng.choice(len(words), desc_len.sum(), p=word_p)]
        tag_words = tags_arr[rng.choice(len(tags), tag_len.sum(), p=tag_p)]
        ti = np.concatenate([[0], np.cumsum(title_len)])
        di = np.concatenate([[0], np.cumsum(desc_len)])
        gi = np.concatenate([[0], np.cumsum(tag_len)])
        public = rng.random(n) < 0.5
        owner_idx = rng.integers(0, len(owners), n)
        # Uploads arrive in time order, so created_at follows the physical order of rows.
        seconds = (np.arange(offset, offset + n) * (2 * 365 * 86400 / total)
                   + rng.integers(0, 600, n)).astype(np.int64)
        batch: list[tuple[object, ...]] = []
        for i in range(n):
            k = offset + i
            batch.append((
                owners[owner_idx[i]], " ".join(title_words[ti[i]:ti[i + 1]]),
                " ".join(desc_words[di[i]:di[i + 1]]),
                sorted(set(tag_words[gi[i]:gi[i + 1]])),
                "public" if public[i] else "private", f"img{k}.jpg", "image/jpeg", 640, 480,
                1000, k.to_bytes(32, "big"), k, k, k, k, "0", 1, f"bench/{k}",
                start + timedelta(seconds=int(seconds[i])),
            ))
        yield batch


COLUMNS = ["owner_id", "title", "description", "tags", "visibility", "filename", "content_type",
           "width", "height", "size_bytes", "sha256", "phash", "dhash", "ahash", "whash",
           "colorhash", "hash_version", "storage_key", "created_at"]


async def load(conn: asyncpg.Connection, total: int, words: list[str], tags: list[str]) -> None:
    await conn.execute("truncate images, users cascade")
    owners = [uuid.uuid4() for _ in range(USERS)]
    await conn.copy_records_to_table(
        "users", columns=["id", "username", "password_hash"],
        records=[(o, f"user{i}", "$2b$12$" + "x" * 53) for i, o in enumerate(owners)])
    # Build the GIN indexes once at the end rather than row by row.
    await conn.execute("drop index images_search; drop index images_search_head")
    started = time.perf_counter()
    for batch in rows(total, words, tags, owners, seed=1):
        await conn.copy_records_to_table("images", columns=COLUMNS, records=batch)
        print(f"  copied {len(batch)} rows ... {time.perf_counter() - started:.0f} s", flush=True)
    await conn.execute("set maintenance_work_mem = '512MB'")
    await conn.execute("create index images_search on images using gin (search_doc)")
    await conn.execute("create index images_search_head on images using gin (search_head)")
    await conn.execute("vacuum analyze images")
    print(f"loaded {total} rows in {time.perf_counter() - started:.0f} s")


async def match_share(conn: asyncpg.Connection, q: str, total: int) -> float:
    count = await conn.fetchval(
        "select count(*) from images where search_doc @@ websearch_to_tsquery('english', $1)", q)
    return float(count) / total


async def pick_queries(conn: asyncpg.Connection, words: list[str], total: int,
                       per_bucket: int) -> dict[str, list[tuple[str, float]]]:
    """Queries of 1-3 words, bucketed by the share of rows they really match."""
    rng = random.Random(7)
    buckets: dict[str, list[tuple[str, float]]] = {"rare": [], "medium": [], "common": []}
    ranks = {"common": (0, 12), "medium": (60, 400), "rare": (2000, 19000)}
    attempts = 0
    while any(len(b) < per_bucket for b in buckets.values()) and attempts < 2000:
        attempts += 1
        name = rng.choice([b for b, v in buckets.items() if len(v) < per_bucket])
        low, high = ranks[name]
        size = rng.choice([1, 1, 2, 3]) if name != "common" else rng.choice([1, 1, 2])
        if name == "common" and size == 2:
            q = " ".join(words[rng.randrange(0, 4)] for _ in range(2))
        elif name == "medium" and size > 1:
            q = " ".join([words[rng.randrange(8, 40)] for _ in range(size - 1)]
                         + [words[rng.randrange(0, 3)]])
        else:
            q = " ".join(words[rng.randrange(low, high)] for _ in range(size))
        share = await match_share(conn, q, total)
        fits = {"rare": share < 0.001, "medium": 0.005 <= share <= 0.02, "common": share >= 0.10}
        if fits[name] and q not in [x for x, _ in buckets[name]]:
            buckets[name].append((q, share))
    return buckets


async def timed(coro_factory: object, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        await coro_factory()  # type: ignore[operator]
        out.append((time.perf_counter() - start) * 1000)
    return out


async def main(total: int, per_bucket: int, repeat: int, reload: bool) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await init_connection(conn)  # as the app's pool does
    await conn.execute("set statement_timeout = 0")  # loading takes minutes
    await migrate(conn)
    rng = random.Random(3)
    words = make_words(VOCABULARY, rng)
    tags = make_words(TAG_VOCABULARY, rng)
    have = await conn.fetchval("select count(*) from images")
    if reload or have != total:
        await load(conn, total, words, tags)
    queries = load_queries()
    viewer = await conn.fetchval("select id from users order by username limit 1")
    buckets = await pick_queries(conn, words, total, per_bucket)
    version = await conn.fetchval("show server_version")
    print(f"\nPostgreSQL {version}, {total:,} images; {per_bucket} queries per bucket, "
          f"each run {repeat} times (ms, client side, one connection)")
    print(f"{'bucket':<8} {'match share':>16} {'API p50':>8} {'API p95':>8} {'plain p50':>9} "
          f"{'plain p95':>9} {'ILIKE p50':>9} {'ILIKE p95':>9} {'top-20 = plain':>15}")
    for name, picked in buckets.items():
        api: list[float] = []
        plain: list[float] = []
        ilike: list[float] = []
        agree = []
        for q, _ in picked:
            async def run_api(q: str = q) -> list[asyncpg.Record]:
                rows, _ = await search(conn, queries, CURSORS, viewer_id=viewer, q=q,
                                       filters=SearchFilters(), cursor=None, limit=20)
                return rows

            api += await timed(run_api, repeat)
            head, last = split_last_word(q)
            plain += await timed(lambda q=q, h=head, w=last: conn.fetch(PLAIN_SQL, q, h, w, viewer),
                                 repeat)
            pattern_sql = ("select id from images where (visibility = 'public' or owner_id = $1) "
                           + "".join(f" and (title ilike ${i + 2} or description ilike ${i + 2})"
                                     for i in range(len(q.split())))
                           + " order by created_at desc limit 20")
            patterns = [f"%{w}%" for w in q.split()]
            ilike += await timed(lambda s=pattern_sql, p=patterns: conn.fetch(s, viewer, *p), 1)
            mine = {r["id"] for r in await run_api()}
            exact = {r["id"] for r in await conn.fetch(PLAIN_SQL, q, head, last, viewer)}
            agree.append(len(mine & exact) / max(1, len(exact)))
        shares = [s for _, s in picked]
        print(f"{name:<8} {min(shares):>7.3%}-{max(shares):>7.2%} "
              f"{percentile(api, 50):>8.1f} {percentile(api, 95):>8.1f} "
              f"{percentile(plain, 50):>9.1f} {percentile(plain, 95):>9.1f} "
              f"{percentile(ilike, 50):>9.1f} {percentile(ilike, 95):>9.1f} "
              f"{sum(agree) / len(agree):>15.0%}")
    for name, picked in buckets.items():
        q = picked[0][0]
        print(f"\nEXPLAIN (ANALYZE) of the API's SQL for a {name} query {q!r}:")
        head, last = split_last_word(q)
        await conn.execute("set plan_cache_mode = force_custom_plan")  # as the service does
        estimate = await conn.fetchval(sql_of(queries, "estimate_matches"), *positional_args(
            queries, "estimate_matches", q=q, head=head, last_word=last, in_head=False))
        rows_estimated = json.loads(estimate)[0]["Plan"]["Plan Rows"]
        plan_name = await _choose_mode(conn, queries, q, head, last)
        mode = "search_recent" if plan_name == "recent" else "search_ranked"
        args = positional_args(
            queries, mode, q=q, head=head, last_word=last, in_head=plan_name == "head",
            viewer_id=viewer, owner_id=None,
            tag=None, visibility=None, within=None, created_after=None, created_before=None,
            after_rank=None, after_created=None, after_id=None, limit=21,
            candidates=RECENT_CANDIDATES)
        plan = await conn.fetch("explain (analyze, costs off, timing off) "
                                + sql_of(queries, mode), *args)
        print(f"  ({plan_name} plan, planner estimate {rows_estimated:.0f} rows)")
        print("\n".join("  " + r[0] for r in plan))
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--per-bucket", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--reload", action="store_true")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.per_bucket, args.repeat, args.reload))
