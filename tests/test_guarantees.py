"""Tests that hold the README's promises where a deliberate bug once passed the whole suite
(issue 17; `tests/mutations.py` reintroduces each bug and checks that a test fails):
visibility on every text-search plan with the default thresholds, the plan chosen for rare
and frequent words, a file cut off at the size limit while it streams, the lockout's window,
the app's own key lookup using its index, and the reduced-scale JPEG decode."""

from __future__ import annotations

import asyncio
import dataclasses
import io
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from server.db.pool import init_connection, plan_cache_mode
from server.db.queries import load_queries, positional_args, sql_of
from server.imaging.decoding import _decode
from server.imaging.regions import EDGE_SIDE
from server.imaging.sniff import open_lazy
from server.keys import STORAGE
from server.services import search
from server.services.logins import WINDOW_SECONDS
from tests.conftest import basic, bearer, sign_up
from tests.families import original
from tests.images import make_image
from tests.raw_http import part_head, upload_head
from tests.test_similar import search_image, upload

Client = TestClient[web.Request, web.Application]

# Words and how many images carry them: chosen so that the default thresholds pick each plan.
CORPUS = {
    "quokka": ("description", 40),  # rare: every match ranked
    "yak": ("title", 4000),  # frequent, and in titles: rank the title/tag matches
    "zebra": ("description", 4000),  # frequent, in descriptions only: the newest matches
}
EXPECTED_MODE = {"quokka": "exact", "yak": "head", "zebra": "recent"}


@pytest.fixture
async def corpus(client: Client, clean_db: str) -> dict[str, Any]:
    """The words above on public images of `ann` and on private images of `oscar`, the
    private ones the newest: any plan that forgot the visibility rule would return them."""
    ann = (await sign_up(client, "ann"))["api_key"]
    oscar = (await sign_up(client, "oscar"))["api_key"]
    viewer = (await sign_up(client, "vera"))["api_key"]
    conn = await asyncpg.connect(clean_db)
    try:
        ids: dict[str, Any] = {r["username"]: r["id"]
                               for r in await conn.fetch("select username, id from users")}
        for word, (column, count) in CORPUS.items():
            await conn.execute(f"""
                insert into images (owner_id, title, description, visibility, content_type,
                                    width, height, size_bytes, sha256, phash, dhash, ahash,
                                    whash, colorhash, hash_version, storage_key, created_at)
                select case when g % 2 = 0 then $1::uuid else $2::uuid end,
                       case when '{column}' = 'title' then '{word} ' || g else 'photo ' || g end,
                       case when '{column}' = 'description' then 'a {word} ' || g else '' end,
                       case when g % 2 = 0 then 'public' else 'private' end,
                       'image/png', 1, 1, 1, sha256(g::text::bytea), 0, 0, 0, 0, '', 2,
                       '{word}/' || g,
                       now() - make_interval(secs => $3 - g + (1 - g % 2) * 100000)
                from generate_series(1, $3) as g""", ids["ann"], ids["oscar"], count)
        await conn.execute("analyze images")
    finally:
        await conn.close()
    return {"ann": ann, "oscar": oscar, "viewer": viewer, "ids": ids}


async def test_every_text_search_plan_keeps_others_private_images_out(
    client: Client, corpus: dict[str, Any], clean_db: str
) -> None:
    queries = load_queries()
    conn = await asyncpg.connect(clean_db)
    await init_connection(conn)
    try:
        for word, mode in EXPECTED_MODE.items():
            head, last = search.split_last_word(word)
            async with plan_cache_mode(conn, "force_custom_plan"):
                chosen = await search._choose_mode(conn, queries, word, head, last)
            assert chosen == mode, (word, chosen)  # the default thresholds, not patched ones
    finally:
        await conn.close()
    oscar_id = str(corpus["ids"]["oscar"])
    for word in EXPECTED_MODE:
        for key in (None, corpus["viewer"], corpus["ann"]):
            resp = await client.get("/search", params={"q": word, "limit": "100"},
                                    headers=bearer(key) if key else {})
            body = await resp.json()
            assert resp.status == 200, body
            assert body["results"], word
            assert all(r["visibility"] == "public" for r in body["results"]), word
        # The owner does see them, through the same plan: the rule is the visibility, not
        # the data.
        resp = await client.get("/search", params={"q": word, "limit": "100"},
                                headers=bearer(corpus["oscar"]))
        owners = {r["owner"] for r in (await resp.json())["results"]}
        assert "oscar" in owners, (word, owners, oscar_id)


async def test_a_rare_word_finds_every_match(client: Client, corpus: dict[str, Any]) -> None:
    """Ranked exactly: all 20 public matches of the rare word, over pages, best first."""
    seen: list[str] = []
    cursor = None
    while True:
        params = {"q": "quokka", "limit": "7", **({"cursor": cursor} if cursor else {})}
        body = await (await client.get("/search", params=params)).json()
        seen += [r["id"] for r in body["results"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == CORPUS["quokka"][1] // 2


@pytest.fixture
def small_files(config: Config) -> Config:
    return dataclasses.replace(config, max_upload_bytes=100_000)


async def test_a_file_is_cut_off_at_the_limit_while_it_streams(
    small_files: Config, aiohttp_client: AiohttpClient
) -> None:
    """300 KB of a file announced as 5 MB, with a limit of 100 KB: the 413 comes back while
    the client still holds most of the body, and nothing is stored."""
    client = await aiohttp_client(create_app(small_files))
    key = (await sign_up(client, "stream"))["api_key"]
    first = part_head("a.png") + make_image("PNG", (64, 64), seed=3) + bytes(300_000)
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(upload_head(key, 5_000_000) + first)
    await writer.drain()
    answer = (await asyncio.wait_for(reader.read(65536), 5)).decode()
    writer.close()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert client.app is not None
    assert [k async for k in client.app[STORAGE].list()] == []


async def test_the_lockout_lasts_fifteen_minutes(client: Client, clean_db: str) -> None:
    assert WINDOW_SECONDS == 15 * 60
    await sign_up(client, "locked")
    for i in range(10):
        assert (await client.post("/keys", headers=basic("locked", f"no {i}"), json={})
                ).status == 401
    resp = await client.post("/keys", headers=basic("locked"), json={})
    assert resp.status == 429
    assert 15 * 60 - 60 <= int(resp.headers["Retry-After"]) <= 15 * 60
    conn = await asyncpg.connect(clean_db)
    try:  # 14 minutes on: still locked; 16 minutes on: the failures have expired
        await conn.execute("update password_attempts set attempted_at = now() - interval '14 min'")
        assert (await client.post("/keys", headers=basic("locked"), json={})).status == 429
        await conn.execute("update password_attempts set attempted_at = now() - interval '16 min'")
    finally:
        await conn.close()
    assert (await client.post("/keys", headers=basic("locked"), json={})).status == 201


async def test_the_apps_own_key_lookup_uses_its_index(clean_db: str) -> None:
    """EXPLAIN of the query the app runs (not a copy of it), on a table big enough that
    the planner would rather scan than use a useless index."""
    queries = load_queries()
    conn = await asyncpg.connect(clean_db)
    try:
        user = await conn.fetchval("insert into users (username, password_hash) values "
                                   "('keys', '$2b$04$' || repeat('x', 53)) returning id")
        await conn.execute("""
            insert into api_keys (user_id, name, prefix, digest)
            select $1, 'k', 'irk_', sha256(g::text::bytea) from generate_series(1, 20000) g""",
                           user)
        await conn.execute("analyze api_keys")
        sql = sql_of(queries, "authenticate_key")
        args = positional_args(queries, "authenticate_key", digest=b"\x01" * 32)
        plan = "\n".join(r[0] for r in await conn.fetch("explain " + sql, *args))
        assert "api_keys_digest" in plan and "Seq Scan on api_keys" not in plan, plan
    finally:
        await conn.close()


def test_jpeg_is_decoded_at_reduced_scale() -> None:
    """A 12 MP JPEG is decoded by libjpeg's DCT scaling to about 256 px on the short side:
    a full decode would cost 36 MB and ten times the time. A query's larger copy (where its
    picture regions are found) comes from the same single decode, at a long side of 640-1279."""
    data = make_image("JPEG", (4000, 3000), seed=12, quality=90)
    with open_lazy(io.BytesIO(data), "JPEG") as im:
        small, detail = _decode(im, None)
    assert max(small.size) <= 1000 and min(small.size) >= 256, small.size
    assert isinstance(small, Image.Image) and detail is None
    with open_lazy(io.BytesIO(data), "JPEG") as im:
        small, detail = _decode(im, EDGE_SIDE)
        assert detail is im  # one decode: the working size is reduced from it
    assert EDGE_SIDE <= max(detail.size) < 2 * EDGE_SIDE, detail.size
    assert min(small.size) >= 256 and max(small.size) <= 1000, small.size



async def test_every_image_path_keeps_others_private_images_out(client: Client) -> None:
    """Another user's private copy of the very picture (and title, and tag) on every path
    that answers images: listings, filters, one image, its file, text search, search by
    image in both modes (probes, and the scan past 16 bits), similar in both modes, and an
    upload's near duplicates."""
    alice = (await sign_up(client, "alice"))["api_key"]
    bob = (await sign_up(client, "bob"))["api_key"]
    picture = original(30)
    mine = await upload(client, alice, picture, "harbour")
    secret = await upload(client, bob, picture, "harbour", "private")

    async def ids(method: str, path: str, key: str | None, **kw: Any) -> list[str]:
        resp = await client.request(method, path, headers=bearer(key) if key else {}, **kw)
        body = await resp.json()
        assert resp.status == 200, body
        items = body.get("images") or body.get("results") or []
        return [item["id"] for item in items]

    for key in (None, alice):
        for path in ("/images", "/images?owner=bob", "/search?q=harbour",
                     f"/images/{mine['id']}/similar", f"/images/{mine['id']}/similar?match=exact",
                     f"/images/{mine['id']}/similar?match=exact&max_distance=24"):
            assert secret["id"] not in await ids("GET", path, key), path
        for fields in ({}, {"match": "exact"}, {"match": "exact", "max_distance": "24"}):
            body = await search_image(client, picture, key, 200, **fields)
            assert secret["id"] not in [r["id"] for r in body["results"]], fields
        resp = await client.get(f"/images/{secret['id']}", headers=bearer(key) if key else {})
        assert resp.status == 404
        resp = await client.get(f"/images/{secret['id']}/file",
                                headers=bearer(key) if key else {})
        assert resp.status == 404
    copy = await upload(client, alice, picture, "again")
    assert [d["id"] for d in copy["near_duplicates"]] == [mine["id"]]
    # Bob, the owner, finds his own on the same paths.
    assert secret["id"] in await ids("GET", "/search?q=harbour", bob)
    body = await search_image(client, picture, bob)
    assert secret["id"] in [r["id"] for r in body["results"]]
