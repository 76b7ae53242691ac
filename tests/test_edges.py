"""Edges found by probing the service from outside (issue 10): forged cursors, lockout races
and case folding, cache headers, HEAD and ranges, and bad input that once answered 500."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import io
import json
from collections import Counter
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from server.db.pool import create_pool, plan_cache_mode
from server.errors import ValidationFailed
from server.keys import STORAGE
from server.services.cursors import Cursors, scope_of
from tests.conftest import basic, bearer, sign_up
from tests.images import make_image
from tests.raw_http import closing, part_head, upload_head
from tests.test_accounts import error_of

Client = TestClient[web.Request, web.Application]


async def upload(client: Client, key: str, title: str = "Golden sunset over blue",
                 description: str = "", tags: str = "gradient", seed: int = 1,
                 visibility: str = "public") -> dict[str, Any]:
    data = FormData()
    data.add_field("file", io.BytesIO(make_image("PNG", (64, 64), seed=seed)), filename="a.png")
    for name, value in (("title", title), ("description", description), ("tags", tags),
                        ("visibility", visibility)):
        data.add_field(name, value)
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    image: dict[str, Any] = (await resp.json())["images"][0]
    return image


async def pages_of(client: Client, path: str, **params: str) -> str:
    resp = await client.get(path, params={**params, "limit": "1"})
    assert resp.status == 200, await resp.text()
    cursor = (await resp.json())["next_cursor"]
    assert cursor
    return str(cursor)


# --- cursors ------------------------------------------------------------------------------


def old_style(*values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).rstrip(b"=").decode()


async def test_a_forged_search_cursor_cannot_pick_a_plan(client: Client) -> None:
    key = (await sign_up(client, "curt"))["api_key"]
    for seed in range(3):
        await upload(client, key, seed=seed)
    forged = old_style("exact", 1e30, "2100-01-01T00:00:00+00:00",
                       "ffffffff-ffff-ffff-ffff-ffffffffffff")
    resp = await client.get("/search", params={"q": "golden or blue", "cursor": forged})
    await error_of(resp, 422, "validation_error")

    cursor = await pages_of(client, "/search", q="golden")
    assert (await client.get("/search", params={"q": "golden", "cursor": cursor})).status == 200
    # A real cursor, under other words or filters, or with its payload changed: refused.
    for params in ({"q": "golden or sunset or blue"}, {"q": "golden", "tag": "other"}):
        resp = await client.get("/search", params={**params, "cursor": cursor})
        await error_of(resp, 422, "validation_error")
    body, mac = cursor.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[0] = "exact" if payload[0] != "exact" else "recent"
    resp = await client.get("/search", params={"q": "golden", "cursor": old_style(*payload)
                                               + "." + mac})
    await error_of(resp, 422, "validation_error")


async def test_list_and_similar_cursors_are_signed_and_bound(client: Client) -> None:
    key = (await sign_up(client, "cora"))["api_key"]
    image = await upload(client, key, seed=1)
    for seed in (1, 1, 1):
        await upload(client, key, seed=seed)
    cursor = await pages_of(client, "/images")
    assert (await client.get("/images", params={"cursor": cursor})).status == 200
    resp = await client.get("/images", params={"cursor": cursor, "tag": "gradient"})
    await error_of(resp, 422, "validation_error")
    resp = await client.get("/images", params={"cursor": old_style(
        "0001-01-01T00:00:00+14:00", "ffffffff-ffff-ffff-ffff-ffffffffffff")})
    await error_of(resp, 422, "validation_error")

    path = f"/images/{image['id']}/similar"
    cursor = await pages_of(client, path, max_distance="10")
    assert (await client.get(path, params={"cursor": cursor, "max_distance": "10"})).status == 200
    resp = await client.get(path, params={"cursor": cursor, "max_distance": "12"})
    await error_of(resp, 422, "validation_error")
    resp = await client.get(path, params={"cursor": old_style(2**40, image["id"])})
    await error_of(resp, 422, "validation_error")


async def test_every_process_accepts_the_others_cursors(
    client: Client, config: Config, aiohttp_client: AiohttpClient
) -> None:
    """The signing secret lives in PostgreSQL: a second app on the same database (another
    process or host in production) honours the first one's cursors."""
    key = (await sign_up(client, "dora"))["api_key"]
    for seed in range(3):
        await upload(client, key, seed=seed)
    cursor = await pages_of(client, "/search", q="golden")
    other = await aiohttp_client(create_app(config))
    resp = await other.get("/search", params={"q": "golden", "cursor": cursor, "limit": "1"})
    assert resp.status == 200, await resp.text()
    assert len((await resp.json())["results"]) == 1


@pytest.mark.parametrize("values", [
    ("exact", 1e300, "2026-01-01T00:00:00+00:00", "ffffffff-ffff-ffff-ffff-ffffffffffff"),
    ("exact", float("nan"), "2026-01-01T00:00:00+00:00", "ffffffff-ffff-ffff-ffff-ffffffffffff"),
    ("exact", 0.5, "0001-01-01T00:00:00+14:00", "ffffffff-ffff-ffff-ffff-ffffffffffff"),
    ("exact", 0.5, "2026-01-01T00:00:00", "ffffffff-ffff-ffff-ffff-ffffffffffff"),
    ("exact", True, "2026-01-01T00:00:00+00:00", "ffffffff-ffff-ffff-ffff-ffffffffffff"),
])
def test_out_of_range_values_in_a_signed_cursor_are_422(values: tuple[object, ...]) -> None:
    """Even with a valid signature (a leaked secret, an old version's cursor)."""
    cursors = Cursors(b"s" * 32)
    token = cursors.encode("scope", *values)
    with pytest.raises(ValidationFailed):
        cursors.decode(token, "scope", str, float, datetime, object)
    distance = cursors.encode("scope", 2**40, "ffffffff-ffff-ffff-ffff-ffffffffffff")
    with pytest.raises(ValidationFailed):
        cursors.decode(distance, "scope", int, object)


def test_a_cursor_is_bound_to_its_scope_and_secret() -> None:
    cursors = Cursors(b"s" * 32)
    token = cursors.encode(scope_of("search", None, "cats"), 1)
    assert cursors.decode(token, scope_of("search", None, "cats"), int) == (1,)
    for scope, secret in ((scope_of("search", None, "dogs"), b"s" * 32),
                          (scope_of("search", None, "cats"), b"t" * 32)):
        with pytest.raises(ValidationFailed):
            Cursors(secret).decode(token, scope, int)


async def test_statements_past_their_timeout_are_cancelled(clean_db: str) -> None:
    pool = await create_pool(clean_db, max_size=1)
    try:
        async with pool.acquire() as conn:
            with pytest.raises(asyncpg.QueryCanceledError):
                async with plan_cache_mode(conn, "auto", timeout=0.05):
                    await conn.execute("select pg_sleep(2)")
            # Outside the block the connection's own bound applies, and it is still usable.
            assert await conn.fetchval("show statement_timeout") == "15s"
    finally:
        await pool.close()


@pytest.fixture
def tight_search(config: Config) -> Config:
    return dataclasses.replace(config, search_timeout=0.001)


async def test_a_search_that_cannot_finish_in_time_is_503_and_frees_its_connection(
    tight_search: Config, aiohttp_client: AiohttpClient, clean_db: str
) -> None:
    client = await aiohttp_client(create_app(tight_search))
    key = (await sign_up(client, "tina"))["api_key"]
    await upload(client, key)
    conn = await asyncpg.connect(clean_db)
    try:  # enough rows that ranking them takes far longer than 1 ms
        await conn.execute("""
            insert into images (owner_id, title, description, content_type, width, height,
                                size_bytes, sha256, phash, dhash, ahash, whash, colorhash,
                                hash_version, storage_key, visibility)
            select owner_id, 'golden sunset ' || g, repeat('blue gradient sky ', 50),
                   content_type, width, height, size_bytes, sha256, phash, dhash, ahash, whash,
                   colorhash, hash_version, storage_key || g, 'public'
            from images, generate_series(1, 20000) as g""")
    finally:
        await conn.close()
    words = " or ".join(["golden", "sunset", "blue", "gradient", "sky"] * 10)
    timeouts = REGISTRY.get_sample_value("imagerepo_db_statement_timeouts_total") or 0
    resp = await client.get("/search", params={"q": words})
    error = await error_of(resp, 503, "query_timeout")
    # The operator sees it too (docs/operations.md: "Statement timeouts").
    assert REGISTRY.get_sample_value("imagerepo_db_statement_timeouts_total") == timeouts + 1
    assert resp.headers["Retry-After"]
    assert "too long" in error["message"]
    assert (await client.get("/health")).status == 200
    resp = await client.get("/images", params={"limit": "1"})
    assert resp.status == 200  # the pool's connection came back


# --- logins -------------------------------------------------------------------------------


async def test_concurrent_guesses_cannot_pass_the_lockout(client: Client) -> None:
    """80 attempts at once (the right password last): at most 10 password checks run."""
    await sign_up(client, "victim")
    attempts = [basic("victim", f"wrong guess {i}") for i in range(79)] + [basic("victim")]
    responses = await asyncio.gather(*(client.post("/keys", headers=h, json={})
                                       for h in attempts))
    statuses = Counter(r.status for r in responses)
    assert statuses[401] + statuses[201] <= 10, statuses
    assert statuses[429] >= 70, statuses
    assert all(r.headers.get("Retry-After") for r in responses if r.status == 429)


async def test_one_canonical_username_for_signup_login_and_lockout(client: Client) -> None:
    await sign_up(client, "victim")
    for i in range(10):
        resp = await client.post("/keys", headers=basic("victim", f"wrong {i}"), json={})
        assert resp.status == 401
    for name in ("victim", "VICTIM", "Victim"):  # ASCII case: the same, locked, account
        await error_of(await client.post("/keys", headers=basic(name), json={}), 429,
                       "too_many_requests")
    # Letters that PostgreSQL's lower() folds to ASCII but Python's does not: no account.
    for name in ("vİctİm", "VİCTİM", "vıctım"):
        resp = await client.post("/keys", headers=basic(name), json={})
        await error_of(resp, 401, "unauthorized")
    resp = await client.post("/users", json={"username": "vİctİm", "password": "x" * 12})
    await error_of(resp, 422, "validation_error")


async def test_a_username_with_nul_or_newline_is_refused_before_any_work(client: Client) -> None:
    resp = await client.post("/keys", headers=basic("ali\x00ce"), json={})
    await error_of(resp, 401, "unauthorized")
    for name in ("alice\n", "alice\r\n", "\nalice"):
        resp = await client.post("/users", json={"username": name, "password": "x" * 12})
        await error_of(resp, 422, "validation_error")


@pytest.fixture
def few_attempts(config: Config) -> Config:
    return dataclasses.replace(config, password_attempts=5)


async def test_password_attempts_are_limited_per_address(
    few_attempts: Config, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(few_attempts))
    await sign_up(client, "pam")  # one attempt: the sign-up's hash
    for i in range(4):
        resp = await client.post("/keys", headers=basic(f"someone{i}", "guess guess"), json={})
        assert resp.status == 401
    for request in (client.post("/keys", headers=basic("pam"), json={}),
                    client.post("/users", json={"username": "pat", "password": "x" * 12})):
        resp = await request
        await error_of(resp, 429, "too_many_requests")
        assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # API keys are not password attempts: the signed-up key still works.


async def test_password_checks_wait_behind_each_other_not_behind_images(
    config: Config, aiohttp_client: AiohttpClient
) -> None:
    """bcrypt has threads of its own: with every password thread busy, image work (and the
    CPU pool it runs on) goes on. A flood of slow checks (cost 12) is still running when a
    search by image, sent after them, has its answer."""
    client = await aiohttp_client(create_app(dataclasses.replace(config, bcrypt_cost=12)))
    await sign_up(client, "flood")
    checks = [asyncio.ensure_future(client.post("/keys", headers=basic("flood", f"no {i}"),
                                                json={})) for i in range(6)]
    await asyncio.sleep(0.05)
    data = FormData()
    data.add_field("file", io.BytesIO(make_image("JPEG", (1024, 768), seed=3)), filename="q.jpg")
    resp = await client.post("/search/image", data=data)
    assert resp.status == 200
    pending = sum(not check.done() for check in checks)
    assert pending >= 3, "the search waited for the password checks"
    await asyncio.gather(*checks)


# --- downloads ----------------------------------------------------------------------------


async def test_cache_headers_depend_on_who_asks(client: Client) -> None:
    key = (await sign_up(client, "owen"))["api_key"]
    public = await upload(client, key, visibility="public")
    private = await upload(client, key, visibility="private", seed=2)
    anonymous = await client.get(public["file_url"])
    assert anonymous.headers["Cache-Control"].startswith("public")
    for resp in (await client.get(public["file_url"], headers=bearer(key)),
                 await client.get(private["file_url"], headers=bearer(key)),
                 await client.get(public["file_url"], headers={"X-API-Key": key})):
        assert resp.headers["Cache-Control"].startswith("private"), resp.headers
    for resp in (anonymous,):
        assert set(resp.headers["Vary"].replace(" ", "").split(",")) >= {
            "Authorization", "X-API-Key"}


async def test_if_range_and_empty_suffix_ranges(client: Client) -> None:
    key = (await sign_up(client, "rita"))["api_key"]
    image = await upload(client, key)
    url, whole = image["file_url"], await (await client.get(image["file_url"])).read()
    etag = (await client.get(url)).headers["ETag"]
    cases = [({"If-Range": '"nope"'}, 200), ({"If-Range": etag}, 206),
             ({"If-Range": f"W/{etag}"}, 200),
             ({"If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}, 200)]
    for extra, status in cases:
        resp = await client.get(url, headers={"Range": "bytes=0-99", **extra})
        assert resp.status == status, extra
        assert await resp.read() == (whole[:100] if status == 206 else whole)
    resp = await client.get(url, headers={"Range": "bytes=-0"})
    await error_of(resp, 416, "range_not_satisfiable")
    assert resp.headers["Content-Range"] == f"bytes */{len(whole)}"
    resp = await client.get(url, headers={"Range": "bytes=-10"})
    assert resp.status == 206 and await resp.read() == whole[-10:]
    resp = await client.get(url, headers={"Range": "bytes=0-1,5-9"})  # several: whole file
    assert resp.status == 200 and await resp.read() == whole


# --- bad input that answered 500 ----------------------------------------------------------


async def test_dates_that_do_not_exist_in_utc_are_422(client: Client) -> None:
    for name in ("created_after", "created_before"):
        resp = await client.get("/search", params={"q": "x", name: "0001-01-01T00:00:00+14:00"})
        await error_of(resp, 422, "validation_error")
    resp = await client.get("/search", params={"q": "x",
                                               "created_after": "9999-12-31T23:00:00-05:00"})
    await error_of(resp, 422, "validation_error")


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"ids": ' + b"1" * 5001 + b"}",
                                  b'{"a": "\xff"}', b"\xef\xbb\xbf{}"])
async def test_hostile_json_bodies_are_400(client: Client, body: bytes) -> None:
    key = (await sign_up(client, "jason"))["api_key"]
    image = await upload(client, key)
    for method, path, headers in (("POST", "/users", {}),
                                  ("PATCH", f"/images/{image['id']}", bearer(key)),
                                  ("POST", "/images/delete", bearer(key)),
                                  ("POST", "/keys", basic("jason"))):
        resp = await client.request(method, path, data=body,
                                    headers={**headers, "Content-Type": "application/json"})
        await error_of(resp, 400, "bad_request")


@pytest.mark.parametrize("path", ["/images", "/search/image"])
async def test_multipart_without_boundary_or_end_is_400(client: Client, path: str) -> None:
    key = (await sign_up(client, "mona"))["api_key"]
    image = make_image("PNG", (32, 32), seed=1)
    part = (b'--b0und\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + image)
    for content_type, body in (("multipart/form-data", part),
                               ("multipart/form-data; boundary=b0und", part),
                               ("multipart/form-data; boundary=b0und", part + b"\r\n--b0und")):
        resp = await client.post(path, data=body, headers={
            **bearer(key), "Content-Type": content_type})
        await error_of(resp, 400, "bad_request")
    assert client.app is not None
    assert [k async for k in client.app[STORAGE].list()] == []


async def test_an_upload_that_outlives_its_account_is_401_and_leaves_nothing(
    client: Client, clean_db: str
) -> None:
    key = (await sign_up(client, "gone"))["api_key"]
    head = part_head("a.png") + make_image("PNG", (200, 200), seed=4)
    tail = closing()
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(upload_head(key, len(head) + len(tail)) + head)
    await writer.drain()
    await asyncio.sleep(0.5)  # the file is stored; its row is not written yet
    assert (await client.delete("/users/me", headers=basic("gone"))).status == 204
    writer.write(tail)
    answer = (await reader.read(65536)).decode()
    writer.close()
    assert answer.startswith("HTTP/1.1 401"), answer
    assert '"unauthorized"' in answer
    assert client.app is not None
    assert [k async for k in client.app[STORAGE].list()] == []
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("select count(*) from images") == 0
    finally:
        await conn.close()


# --- small things -------------------------------------------------------------------------


async def test_the_headline_keeps_the_whole_title(client: Client) -> None:
    key = (await sign_up(client, "hugh"))["api_key"]
    description = " ".join(f"word{i}" for i in range(14)) + " gradient and more words"
    await upload(client, key, description=description)
    await upload(client, key, description="", seed=2)
    resp = await client.get("/search", params={"q": "gradient"})
    headlines = [r["headline"] for r in (await resp.json())["results"]]
    assert len(headlines) == 2
    for headline in headlines:
        assert headline.startswith("Golden sunset over blue"), headline
    assert any("<mark>gradient</mark>" in h for h in headlines)


async def test_no_internals_in_headers_or_readiness(client: Client) -> None:
    for path in ("/", "/health", "/ready", "/nowhere"):
        resp = await client.get(path)
        assert resp.headers["Server"] == "imagerepo"
    body = await (await client.get("/ready")).json()
    assert set(body["checks"].values()) <= {"ok", "unavailable"}

