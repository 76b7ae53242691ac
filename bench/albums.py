"""Albums benchmark: what the `within` filter costs when it is null (every search), and how
fast a search within an album is, on a generated library.

    createdb bench_albums_x
    DATABASE_URL=postgresql://.../bench_albums_x python -m bench.albums [--rows 200000]
    dropdb bench_albums_x

Fills the database (emptied first: use one of its own) with SQL alone: 100 users, one of
them holding a tenth of the images; text from a skewed vocabulary; random pHashes and one
region signal per image. Two albums of that user: 50 and 10,000 images. Then, for text
search, exact search by image (similar_probe) and the robust search's candidates
(signal_candidates), it runs the API's SQL and the SQL as it was before `within` (the same
files with the filter taken out) with `within` null, under the plan cache mode the service
uses, compares the plans and times both; then the same searches within each album.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiosql
import asyncpg

from server.db.migrations import migrate
from server.db.paths import queries_dir
from server.db.pool import init_connection, plan_cache_mode
from server.db.queries import Queries, load_queries
from server.imaging.signals import Signal
from server.services import albums, matching, similar
from server.services.cursors import Cursors
from server.services.search import SearchFilters, _choose_mode, search, split_last_word
from server.services.within import Within

CURSORS = Cursors(b"bench" * 8)
USERS = 100
VOCABULARY = 3000
REPEAT = 30

FILL = """
insert into images (owner_id, title, description, tags, visibility, filename, content_type,
                    width, height, size_bytes, sha256, phash, dhash, ahash, whash, colorhash,
                    hash_version, storage_key, created_at)
select case when g % 10 = 0 then ($1::uuid[])[1] else ($1::uuid[])[2 + g % ($2::int - 1)] end,
       w(g, 1) || ' ' || w(g, 2) || ' ' || w(g, 3),
       w(g, 4) || ' ' || w(g, 5) || ' ' || w(g, 6) || ' ' || w(g, 7) || ' ' || w(g, 8),
       array[w(g, 9)],
       case when g % 10 < 7 then 'public' else 'private' end,
       'x.jpg', 'image/jpeg', 640, 480, 1000,
       decode(md5(g::text) || md5(g::text), 'hex'),
       ('x' || substr(md5('p' || g), 1, 16))::bit(64)::bigint,
       ('x' || substr(md5('d' || g), 1, 16))::bit(64)::bigint, 0, 0, '0',
       2, 'k' || g, now() - g * interval '1 second'
from generate_series(1, $3) as g
"""

# A word from a skewed vocabulary: a few words in most rows, most words in a few.
WORD = """
create or replace function w(g int, k int) returns text language sql immutable as $$
    select 'w' || floor($VOCAB * power(
        ('x' || substr(md5(g || '.' || k), 1, 8))::bit(32)::int::float8 / 2147483648.0 * 0.5
        + 0.5, 4))::int
$$
"""


async def fill(conn: asyncpg.Connection, rows: int) -> None:
    await conn.execute("set statement_timeout = 0; truncate users cascade")
    users = [await conn.fetchval("insert into users (username, password_hash) "
                                 "values ($1, '$2b$04$' || repeat('x', 53)) returning id",
                                 f"user{n}")
             for n in range(USERS)]
    await conn.execute(WORD.replace("$VOCAB", str(VOCABULARY)))
    started = time.perf_counter()
    await conn.execute(FILL, users, USERS, rows)
    await conn.execute("insert into image_signals (image_id, region, phash, dhash, thumb) "
                       "select id, 0, phash, dhash, decode(repeat('00', 256), 'hex') "
                       "from images")
    for table in ("images", "image_signals"):  # one statement each: not in a transaction
        await conn.execute(f"vacuum analyze {table}")
    print(f"filled {rows} images in {time.perf_counter() - started:.0f} s")


async def make_albums(conn: asyncpg.Connection) -> tuple[uuid.UUID, dict[str, Within]]:
    owner = await conn.fetchval("select id from users where username = 'user0'")
    # Many small albums, as a library has: the planner's idea of an album's size is theirs.
    await conn.execute("insert into albums (owner_id, title) "
                       "select id, 'small' from users, generate_series(1, 20)")
    await conn.execute(
        "insert into album_images (album_id, image_id, position) "
        "select a.id, i.id, row_number() over (partition by a.id order by i.id) "
        "from albums a cross join lateral (select id from images where owner_id = a.owner_id "
        "  order by md5(a.id::text || id::text) limit 20) i")
    made: dict[str, Within] = {}
    for name, size in (("50", 50), ("10000", 10_000)):  # the two measured
        album = await conn.fetchval("insert into albums (owner_id, title) values ($1, $2) "
                                    "returning id", owner, name)
        await conn.execute(
            "insert into album_images (album_id, image_id, position) "
            "select $1, id, row_number() over (order by md5(id::text)) from images "
            "where owner_id = $2 order by md5(id::text) limit $3", album, owner, size)
        queries = load_queries()
        made[name] = await albums.within(conn, queries, owner, album)
    await conn.execute("analyze album_images")
    return owner, made


def queries_before_within() -> Queries:
    """The query files as they were before `within`: its filter lines and parameter taken out
    (the filter is one line wherever it appears)."""
    tmp = Path(tempfile.mkdtemp(prefix="queries-before-"))
    for name in ("search", "similar", "signals", "features"):
        path = queries_dir() / f"{name}.sql"
        text = path.read_text()
        text = text.split("-- name: search_within")[0]  # new with `within`
        text = "\n".join(line for line in text.splitlines()
                         if ":within::uuid[] is null" not in line)
        text = re.sub(r"(-- name: [^\n]*), within\b", r"\1", text)
        (tmp / path.name).write_text(text + "\n")
    return cast(Queries, aiosql.from_path(tmp, "asyncpg"))


async def timed(run: Callable[..., Awaitable[object]], *args: Any, **kwargs: Any) -> float:
    """Median milliseconds of REPEAT runs of run(*args, **kwargs), after two to warm up."""
    for _ in range(2):
        await run(*args, **kwargs)
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        await run(*args, **kwargs)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def text_params(conn: asyncpg.Connection, queries: Queries, q: str,
                      viewer: uuid.UUID) -> tuple[str, dict[str, Any]]:
    head, last = split_last_word(q)
    mode = await _choose_mode(conn, queries, q, head, last)
    params = {"viewer_id": viewer, "q": q, "head": head, "last_word": last, "owner_id": None,
              "tag": None, "visibility": None, "created_after": None, "created_before": None,
              "after_rank": None, "after_created": None, "after_id": None, "limit": 21}
    if mode == "recent":
        params["candidates"] = 1000
    else:
        params["in_head"] = mode == "head"
    return ("search_recent" if mode == "recent" else "search_ranked"), params


async def fetch(conn: asyncpg.Connection, queries: Queries, name: str, mode: str,
                **params: Any) -> list[Any]:
    async with plan_cache_mode(conn, mode):
        return [r async for r in getattr(queries, name)(conn, **params)]


async def plan_of(conn: asyncpg.Connection, queries: Queries, name: str, mode: str,
                  **params: Any) -> str:
    """EXPLAIN (costs off) as the service would plan it."""
    sql = getattr(queries, name).sql
    order = getattr(queries, "driver_adapter").var_sorted[name]  # noqa: B009
    async with plan_cache_mode(conn, mode):
        if mode == "force_generic_plan":  # a prepared statement, as asyncpg's cache holds it
            statement = await conn.prepare("explain (costs off) " + sql)
            rows = await statement.fetch(*[params[p] for p in order])
        else:
            rows = await conn.fetch("explain (costs off) " + sql, *[params[p] for p in order])
    return "\n".join(r[0] for r in rows)


def same(a: str, b: str) -> str:
    return "same plan" if a == b else "PLANS DIFFER"


async def main(rows: int, reload: bool) -> None:
    dsn = os.environ["DATABASE_URL"]
    conn = await asyncpg.connect(dsn)
    await init_connection(conn)
    await migrate(conn)
    if reload or not await conn.fetchval("select count(*) from images"):
        await fill(conn, rows)
    await conn.execute("delete from albums")
    owner, sets = await make_albums(conn)
    total = await conn.fetchval("select count(*) from images")
    new, old = load_queries(), queries_before_within()
    print(f"{total} images, {USERS} users; albums of {', '.join(sets)} images "
          f"(owner: {owner}); median of {REPEAT} runs, ms\n")

    words = [r["w"] for r in await conn.fetch(
        "select w from (values ('w0'), ('w40'), ('w700'), ('w2500')) as v(w)")]
    print("text search (the API's SQL, `within` null, against the SQL before `within`):")
    for q in words:
        name, params = await text_params(conn, new, q, owner)
        before = await timed(fetch, conn, old, name, "force_custom_plan", **params)
        # search_recent never takes a set: its SQL is the same as before.
        unset = {} if name == "search_recent" else {"within": None}
        after = await timed(fetch, conn, new, name, "force_custom_plan", **unset, **params)
        plans = same(await plan_of(conn, old, name, "force_custom_plan", **params),
                     await plan_of(conn, new, name, "force_custom_plan", **unset, **params))
        print(f"  q={q:<6} {name:<14} before {before:7.2f}  after {after:7.2f}  {plans}")
    print("text search within an album (the service: search.search, as the viewer = owner):")
    for q in words:
        for label, within in sets.items():
            filters = SearchFilters(within=within)
            ms = await timed(search, conn, new, CURSORS, viewer_id=owner, q=q, filters=filters,
                             cursor=None, limit=20)
            found, _ = await search(conn, new, CURSORS, viewer_id=owner, q=q, filters=filters,
                                    cursor=None, limit=20)
            head, last = split_last_word(q)
            mode = await _choose_mode(conn, new, q, head, last, len(within.ids))
            print(f"  q={q:<6} album of {label:>5}: {ms:7.2f}  ({len(found)} results, "
                  f"{mode} plan)")

    rng = random.Random(7)
    sample = [r["phash"] for r in await conn.fetch(
        "select phash from images order by md5(id::text) limit 5")]
    hashes = [h ^ (1 << rng.randrange(63)) for h in sample]
    print("\nexact search by image, r = 10 (similar_probe, one generic plan):")
    for h in hashes[:3]:
        c0, c1, c2, c3 = similar.probe_values([h], 10)
        params = {"query": h, "others": [], "c0": c0, "c1": c1, "c2": c2, "c3": c3,
                  "viewer_id": owner, "max_distance": 10, "exclude_id": None, "q": None,
                  "head": None, "last_word": None, "tag": None, "owner_id": None,
                  "after_distance": None, "after_id": None, "limit": 21}
        before = await timed(fetch, conn, old, "similar_probe", "force_generic_plan", **params)
        after = await timed(fetch, conn, new, "similar_probe", "force_generic_plan",
                            within=None, **params)
        plans = same(await plan_of(conn, old, "similar_probe", "force_generic_plan", **params),
                     await plan_of(conn, new, "similar_probe", "force_generic_plan",
                                   within=None, **params))
        inside = {label: await timed(similar.matches, conn, new, [h], viewer_id=owner,
                                     max_distance=10, filters=similar.SimilarFilters(within=w),
                                     limit=21)
                  for label, w in sets.items()}
        print(f"  before {before:6.2f}  after {after:6.2f}  {plans};  within album of 50 "
              f"{inside['50']:6.2f}, of 10000 {inside['10000']:6.2f}")

    print("\nrobust search's candidates, 40 variants (signal_candidates, one generic plan):")
    for h in hashes[3:5]:
        variants = [Signal("whole", h ^ (1 << rng.randrange(63)), 0, bytes(256), "v")
                    for _ in range(40)]
        params = {"viewer_id": owner, **matching.candidate_params(variants)}
        before = await timed(fetch, conn, old, "signal_candidates", "force_generic_plan",
                             **params)
        after = await timed(fetch, conn, new, "signal_candidates", "force_generic_plan",
                            within=None, **params)
        plans = same(await plan_of(conn, old, "signal_candidates", "force_generic_plan",
                                   **params),
                     await plan_of(conn, new, "signal_candidates", "force_generic_plan",
                                   within=None, **params))
        inside = {label: await timed(fetch, conn, new, "signal_candidates",
                                     "force_generic_plan", within=list(w.ids), **params)
                  for label, w in sets.items()}
        print(f"  before {before:6.2f}  after {after:6.2f}  {plans};  within album of 50 "
              f"{inside['50']:6.2f}, of 10000 {inside['10000']:6.2f}")

    print("\nthe album's visible image ids (visible_album_image_ids), as the viewer = owner:")
    for label, within in sets.items():
        album_id = uuid.UUID(within.source.split(":")[1])
        ms = await timed(albums.within, conn, new, owner, album_id)
        print(f"  album of {label:>5}: {ms:6.2f}")
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--reload", action="store_true", help="refill even if filled")
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.reload))
