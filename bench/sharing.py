"""Share links at scale: what opening a link and reading what it shows costs in PostgreSQL.

    DATABASE_URL=postgresql://.../bench_sharing python -m bench.sharing [--images 1000000]

Fills a database of its own (emptied first) with generated rows written by SQL, no HTTP:
`--images` images over 1,000 owners, an album of `--album` of one owner's images, and
`--links` share links spread over the owners (to images and to albums). Then times, through
the service functions the handlers call, every read a visitor's request makes: opening the
link (GET /shared and every other /shared request), one image by id (metadata, thumbnail,
file), a page of an album link's images (first and last), the album with its count, and the
ids a search inside the link is restricted to. Each is timed `--repeat` times; the figures are
milliseconds, p50 and p95. EXPLAIN shows that the link rule's function is inlined (index
lookups by the token's digest, no scan).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from bench.common import percentile
from server.credentials import SHARE_PREFIX, new_api_key
from server.db.migrations import migrate
from server.db.pool import init_connection
from server.db.queries import load_queries, positional_args, sql_of
from server.services import shares
from server.services.cursors import Cursors

CURSORS = Cursors(b"bench" * 8)
OWNERS = 1000

FILL = """
insert into users (username, password_hash)
select 'user' || n, '$2b$04$x' from generate_series(1, {owners}) n;

insert into images (owner_id, title, visibility, content_type, width, height, size_bytes,
                    sha256, phash, dhash, ahash, whash, colorhash, hash_version, storage_key)
select u.id, 'image ' || n, case when n % 3 = 0 then 'public' else 'private' end,
       'image/jpeg', 640, 480, 1000, sha256(n::text::bytea), n, n, n, n, '0', 1,
       'bench/' || n
from generate_series(1, {images}) n
join (select id, row_number() over (order by username) as k from users) u
  on u.k = 1 + n % {owners};

insert into albums (owner_id, title)
select id, 'album of ' || username from users;
"""


async def fill(conn: asyncpg.Connection, images: int, album: int, links: int) -> dict[str, Any]:
    await conn.execute("truncate users, images, albums, share_links cascade")
    await conn.execute(FILL.format(owners=OWNERS, images=images))
    owner = await conn.fetchval("select id from users where username = 'user1'")
    album_id = await conn.fetchval("select id from albums where owner_id = $1", owner)
    # The album's owner needs that many images of their own: take them from the others.
    await conn.execute("""
        update images set owner_id = $1
        where id in (select id from images where owner_id <> $1 limit $2)
    """, owner, album)
    await conn.execute("""
        insert into album_images (album_id, image_id, position)
        select $1, id, row_number() over (order by created_at, id)
        from (select id, created_at from images where owner_id = $2 limit $3) i
    """, album_id, owner, album)
    # Other owners' links: half to images, half to their albums.
    await conn.execute("""
        insert into share_links (owner_id, image_id, digest, prefix)
        select owner_id, id, sha256(id::text::bytea), 'irs_bench'
        from images tablesample system (5) limit $1
    """, links // 2)
    await conn.execute("""
        insert into share_links (owner_id, album_id, digest, prefix)
        select a.owner_id, a.id, sha256((a.id::text || n)::bytea), 'irs_bench'
        from albums a, generate_series(1, $1) n
    """, max(1, links // 2 // OWNERS))
    image_id = await conn.fetchval(
        "select image_id from album_images where album_id = $1 order by position desc limit 1",
        album_id)
    made = {}
    for kind, target in (("image", image_id), ("album", album_id)):
        token = new_api_key(SHARE_PREFIX)
        await conn.execute(
            f"insert into share_links (owner_id, {kind}_id, digest, prefix) "
            "values ($1, $2, $3, $4)", owner, target, token.digest, token.prefix)
        made[kind] = token.secret
    await conn.execute("analyze")
    return {"tokens": made, "image_id": image_id, "album_id": album_id}


async def timed(repeat: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    await call()  # warm: plans and pages
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50), percentile(times, 95)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--album", type=int, default=10_000)
    parser.add_argument("--links", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await init_connection(conn)
    await migrate(conn)
    await conn.execute("set statement_timeout = 0")  # filling takes minutes
    queries = load_queries()
    started = time.perf_counter()
    made = await fill(conn, args.images, args.album, args.links)
    print(f"filled {args.images:,} images, an album of {args.album:,}, "
          f"{await conn.fetchval('select count(*) from share_links'):,} links "
          f"in {time.perf_counter() - started:.0f} s")
    image_link = await shares.open_link(conn, queries, made["tokens"]["image"])
    album_link = await shares.open_link(conn, queries, made["tokens"]["album"])
    _, last_cursor = await shares.images(conn, queries, CURSORS, album_link, cursor=None,
                                         limit=args.album - 50)

    cases: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("open the link (every /shared request)",
         lambda: shares.open_link(conn, queries, made["tokens"]["album"])),
        ("one image of an image link",
         lambda: shares.image(conn, queries, image_link, made["image_id"])),
        ("one image of an album link (the album's last)",
         lambda: shares.image(conn, queries, album_link, made["image_id"])),
        ("first page (50) of the album link",
         lambda: shares.images(conn, queries, CURSORS, album_link, cursor=None, limit=50)),
        ("last page (50) of the album link",
         lambda: shares.images(conn, queries, CURSORS, album_link, cursor=last_cursor,
                               limit=50)),
        ("the album and its count (GET /shared)",
         lambda: queries.shared_album(conn, digest=album_link.digest)),
        ("every id of the album link (a search's `within`)",
         lambda: shares.image_ids(conn, queries, album_link)),
    ]
    print(f"{'read':<52} {'p50 ms':>7} {'p95 ms':>7}")
    for name, call in cases:
        p50, p95 = await timed(args.repeat, call)
        print(f"{name:<52} {p50:7.2f} {p95:7.2f}")

    sql = sql_of(queries, "shared_image")
    plan = await conn.fetch("explain (analyze, costs off, timing off) " + sql,
                            *positional_args(queries, "shared_image", digest=album_link.digest,
                                             image_id=made["image_id"]))
    print("\nEXPLAIN ANALYZE shared_image (an album link):")
    print("\n".join("  " + row[0] for row in plan))
    await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
