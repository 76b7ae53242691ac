"""Stalled and vanished uploaders: cut off, and nothing of their upload remains."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.config import Config
from server.keys import STORAGE
from tests.conftest import sign_up
from tests.images import make_image

Client = TestClient[web.Request, web.Application]
BOUNDARY = "slowb0undary"


@pytest.fixture
def config(config: Config) -> Config:
    return dataclasses.replace(config, read_timeout=1.0)


def request_head(key: str, port: int, length: int) -> bytes:
    return (f"POST /images HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {key}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def part_head(name: str) -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n").encode()


async def leftovers(client: Client, dsn: str) -> tuple[list[str], int]:
    assert client.app is not None
    keys = [info.key async for info in client.app[STORAGE].list()]
    conn = await asyncpg.connect(dsn)
    try:
        return keys, int(await conn.fetchval("select count(*) from images"))
    finally:
        await conn.close()


async def upload_then_stall(
    client: Client, key: str, dsn: str, seed: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Send one complete file and the next file's first bytes; return once the first file and
    its thumbnail are stored (the upload is then half-done: objects written, no row yet)."""
    first = make_image("PNG", (200, 200), seed=seed)
    head = part_head("a.png") + first
    tail = b"\r\n" + part_head("b.png") + first[:100]
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(request_head(key, client.port, len(head) + len(tail) + 100_000) + head)
    await writer.drain()
    await asyncio.sleep(0.2)  # separate reads: the parser sees where the first part ends
    writer.write(tail)
    await writer.drain()
    for _ in range(100):
        if len((await leftovers(client, dsn))[0]) == 2:
            break
        await asyncio.sleep(0.02)
    assert len((await leftovers(client, dsn))[0]) == 2
    return reader, writer


async def test_a_stalled_upload_is_cut_off(client: Client, clean_db: str, tmp_path: Path) -> None:
    key = (await sign_up(client, "slow"))["api_key"]
    reader, writer = await upload_then_stall(client, key, clean_db, seed=1)
    start = time.perf_counter()
    answer = await asyncio.wait_for(reader.read(4096), timeout=10)
    assert time.perf_counter() - start < 5
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer
    writer.close()
    assert await leftovers(client, clean_db) == ([], 0)
    assert (tmp_path / "objects").exists()  # the local back-end was really used


async def test_a_vanished_client_leaves_nothing(client: Client, clean_db: str) -> None:
    key = (await sign_up(client, "gone"))["api_key"]
    _, writer = await upload_then_stall(client, key, clean_db, seed=2)
    writer.transport.abort()  # the client disappears mid-upload
    for _ in range(50):
        await asyncio.sleep(0.1)
        if await leftovers(client, clean_db) == ([], 0):
            break
    assert await leftovers(client, clean_db) == ([], 0)


async def json_trickle(client: Client, pieces: list[bytes], every: float) -> tuple[bytes, float]:
    """A sign-up whose 1,000-byte JSON body is sent as `pieces`, `every` seconds apart (then
    nothing); the answer and the seconds it took, from the end of the headers."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    writer.write(b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 1000\r\n\r\n")
    started = time.perf_counter()
    answer = asyncio.ensure_future(reader.read(4096))
    for piece in pieces:
        await asyncio.wait([answer], timeout=every)
        if answer.done():
            break
        writer.write(piece)
    try:
        return await asyncio.wait_for(answer, timeout=5), time.perf_counter() - started
    finally:
        writer.close()


async def test_a_json_body_that_stalls_is_cut_off(client: Client) -> None:
    """Ten bytes, then silence: 408 once READ_TIMEOUT (1 s here) passes without a byte,
    long before BODY_TIMEOUT (20 s)."""
    answer, seconds = await json_trickle(client, [b'{"username'], every=0.1)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"read_timeout": 1.0' in answer and b"Connection: close" in answer
    assert seconds < 3


async def test_a_json_body_slower_than_the_minimum_rate_is_cut_off(client: Client) -> None:
    """A byte every 0.2 s never stalls for READ_TIMEOUT, but is far below MIN_UPLOAD_RATE:
    408 once READ_TIMEOUT seconds were spent waiting."""
    answer, seconds = await json_trickle(client, [b" "] * 100, every=0.2)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"min_rate": 16384' in answer
    assert seconds < 3
