"""Outages of S3 and PostgreSQL under a running app: 503 with the envelope, nothing
half-written, and recovery without a restart. The outages are real: the app reaches each
dependency through a TCP proxy that the test cuts."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from server.keys import STORAGE
from tests.conftest import bearer, sign_up
from tests.faults import CuttableProxy
from tests.images import make_image
from tests.raw_http import closing, part_head, upload_head
from tests.s3server import S3Server

Client = TestClient[web.Request, web.Application]
PNG = make_image("PNG", (32, 32), seed=3)


async def upload(client: Client, key: str) -> tuple[int, dict[str, object]]:
    data = FormData()
    data.add_field("file", io.BytesIO(PNG), filename="a.png")
    resp = await client.post("/images", data=data, headers=bearer(key))
    if resp.status == 503:  # the README promises when to come back
        assert 1 <= int(resp.headers["Retry-After"]) <= 60, resp.headers
    return resp.status, await resp.json()


async def rows(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select count(*) from images"))
    finally:
        await conn.close()


@pytest.fixture
async def s3_proxy(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
                   ) -> AsyncIterator[CuttableProxy]:
    endpoint = urlsplit(s3_env.endpoint)
    proxy = CuttableProxy(endpoint.hostname or "127.0.0.1", endpoint.port or 80)
    await proxy.restore()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{proxy.port}")
    yield proxy
    await proxy.cut()


async def test_s3_outage_is_503_and_recovers(
    config: Config, clean_db: str, s3_proxy: CuttableProxy, aiohttp_client: AiohttpClient
) -> None:
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, storage_url=f"s3://{bucket}")))
    key = (await sign_up(client, "olga"))["api_key"]
    assert (await upload(client, key))[0] == 201

    await s3_proxy.cut()
    status, body = await upload(client, key)
    assert status == 503
    assert body["error"]["code"] == "storage_unavailable"  # type: ignore[index]
    assert await rows(clean_db) == 1
    resp = await client.get("/ready")
    assert resp.status == 503
    assert (await resp.json())["checks"]["storage"].startswith("unavailable")

    await s3_proxy.restore()
    assert (await upload(client, key))[0] == 201
    assert (await client.get("/ready")).status == 200
    assert await rows(clean_db) == 2


@pytest.fixture
async def pg_proxy() -> AsyncIterator[CuttableProxy]:
    proxy = CuttableProxy("127.0.0.1", 5432)
    await proxy.restore()
    yield proxy
    await proxy.cut()


def through(config: Config, dsn: str, proxy: CuttableProxy) -> Config:
    """The config with the database reached through the proxy."""
    parts = urlsplit(dsn)
    if parts.port != 5432 or parts.hostname not in ("127.0.0.1", "localhost"):
        pytest.skip("needs $DATABASE_URL on 127.0.0.1:5432 (the proxy's target)")
    via_proxy = urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{proxy.port}"))
    return dataclasses.replace(config, database_url=via_proxy)


async def test_database_outage_is_503_and_recovers(
    config: Config, clean_db: str, pg_proxy: CuttableProxy, aiohttp_client: AiohttpClient
) -> None:
    client = await aiohttp_client(create_app(through(config, clean_db, pg_proxy)))
    key = (await sign_up(client, "pete"))["api_key"]
    assert (await client.get("/images", headers=bearer(key))).status == 200

    await pg_proxy.cut()
    resp = await client.get("/images", headers=bearer(key))
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "database_unavailable"
    assert resp.headers["Retry-After"]
    status, body = await upload(client, key)
    assert status == 503
    resp = await client.get("/ready")
    assert resp.status == 503
    assert (await resp.json())["checks"]["database"].startswith("unavailable")

    await pg_proxy.restore()
    assert (await client.get("/images", headers=bearer(key))).status == 200
    assert (await upload(client, key))[0] == 201
    assert (await client.get("/ready")).status == 200
    assert await rows(clean_db) == 1


async def test_database_failing_after_the_objects_are_stored_leaves_no_object(
    config: Config, clean_db: str, pg_proxy: CuttableProxy, aiohttp_client: AiohttpClient
) -> None:
    """The upload authenticates and stores its file while PostgreSQL is up; then the
    database goes away before the row is written: 503, and the stored objects are removed."""
    client = await aiohttp_client(create_app(through(config, clean_db, pg_proxy)))
    key = (await sign_up(client, "late"))["api_key"]
    image = make_image("PNG", (300, 200), seed=7)
    # The first file whole, then (a separate read) the second one's start: the parser sees
    # where the first ends, and stores it.
    head, middle = part_head("a.png") + image, b"\r\n" + part_head("b.png") + image[:100]
    tail = image[100:] + closing()
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(upload_head(key, len(head) + len(middle) + len(tail)) + head)
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.write(middle)
    await writer.drain()
    assert client.app is not None
    storage = client.app[STORAGE]
    for _ in range(100):  # until the file is in storage
        if [k async for k in storage.list()]:
            break
        await asyncio.sleep(0.05)
    assert [k async for k in storage.list()], "the file was never stored"
    await pg_proxy.cut()
    writer.write(tail)
    answer = (await reader.read(65536)).decode()
    writer.close()
    assert answer.startswith("HTTP/1.1 503"), answer
    assert "Retry-After" in answer
    assert [k async for k in storage.list()] == []
    assert await rows(clean_db) == 0
