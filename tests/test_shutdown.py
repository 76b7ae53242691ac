"""Graceful shutdown: on SIGTERM new connections are refused, requests arriving on kept-alive
connections get 503 and Connection: close and start nothing, in-flight requests finish within
the grace period, and an upload still running after it is cancelled and cleaned up."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bench.common import free_port
from tests.conftest import _migrated_database
from tests.databases import drop_database
from tests.images import make_image
from tests.raw_http import BOUNDARY as FORM_BOUNDARY
from tests.raw_http import closed_by_peer, form, read_answer

BOUNDARY = "shutb0undary"


def start(tmp: Path, dsn: str, grace: int = 2) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "WORKERS": "1", "DATABASE_URL": dsn, "DATA_DIR": str(tmp),
           "PORT": str(port), "STORAGE_URL": (tmp / "objects").as_uri(),
           "SHUTDOWN_GRACE": str(grace), "BCRYPT_COST": "4"}
    with (tmp / "server.log").open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1):
                return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("server did not start")


def sign_up(port: int) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/users", method="POST",
        data=json.dumps({"username": f"shut{port}", "password": "x" * 12}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["api_key"])


def begin_upload(port: int, key: str) -> tuple[socket.socket, bytes]:
    """An upload whose first file is sent; returns the socket and the bytes still to send."""
    image = make_image("PNG", (100, 100), seed=1)
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.png\"\r\n\r\n").encode() + image
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall((f"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                  f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                  f"Content-Length: {len(head) + len(tail)}\r\n\r\n").encode() + head)
    return sock, tail


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def count_rows(dsn: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("select count(*) from images"))
        finally:
            await conn.close()

    return asyncio.run(count())


@pytest.fixture
def database_url(admin_dsn: str) -> Iterator[str]:
    """A database of this test's own: the server under test writes to it outside any
    per-test clean-up."""
    dsn = asyncio.run(_migrated_database(admin_dsn))
    yield dsn
    asyncio.run(drop_database(admin_dsn, dsn))


@pytest.mark.parametrize("finishes", [True, False])
def test_sigterm(tmp_path: Path, database_url: str, finishes: bool) -> None:
    process, port = start(tmp_path, database_url)
    try:
        key = sign_up(port)
        before = count_rows(database_url)
        sock, tail = begin_upload(port, key)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        assert refused(port), "new connections are refused once shutdown began"
        if finishes:
            sock.sendall(tail)  # within the grace period: the upload completes
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 201"), answer[:200]
            assert count_rows(database_url) == before + 1
        assert process.wait(15) == 0
        # The bound: SHUTDOWN_GRACE (2 s), then about a second to cancel and close.
        assert time.monotonic() - signalled < 2 + 3
        sock.close()
        if not finishes:  # cancelled after the grace period: nothing of it remains
            assert count_rows(database_url) == before
            objects = tmp_path / "objects"
            leftovers = [p for p in objects.rglob("*") if p.is_file()] if objects.exists() else []
            assert leftovers == []
    finally:
        if process.poll() is None:
            process.kill()


def kept_alive(port: int) -> socket.socket:
    """A connection that has had one answer and stays open for the next request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, _ = read_answer(sock)
    assert status == 200 and headers.get("connection", "").lower() != "close"
    return sock


def test_after_sigterm_kept_alive_connections_get_no_new_work(
    tmp_path: Path, database_url: str
) -> None:
    """An upload in flight at SIGTERM completes (201); a new upload, a sign-up and a GET sent
    afterwards on connections kept alive from before are answered 503 with Retry-After and
    Connection: close, and store nothing; the process exits as soon as the upload is done,
    long before the grace period (10 s) ends."""
    process, port = start(tmp_path, database_url, grace=10)
    try:
        key = sign_up(port)
        before = count_rows(database_url)
        idle = [kept_alive(port) for _ in range(3)]
        sock, tail = begin_upload(port, key)
        time.sleep(0.3)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.3)
        body = form([("b.png", make_image("PNG", (50, 50), seed=2))])
        requests = [
            (f"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
             f"Content-Type: multipart/form-data; boundary={FORM_BOUNDARY}\r\n"
             f"Content-Length: {len(body)}\r\n\r\n").encode() + body,
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 42\r\n\r\n{"username": "late", "password": "x"}     ',
            b"GET /users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode()
            + b"\r\n\r\n",
        ]
        for conn, request in zip(idle, requests, strict=True):
            conn.sendall(request)
            status, headers, answer = read_answer(conn)
            assert status == 503, answer
            assert headers["connection"].lower() == "close" and headers["retry-after"]
            assert json.loads(answer)["error"]["code"] == "shutting_down"
            assert closed_by_peer(conn, 5)
            conn.close()

        sock.sendall(tail)
        status, headers, answer = read_answer(sock)
        assert status == 201, answer
        assert headers.get("connection", "").lower() == "close", headers
        sock.close()
        assert process.wait(10) == 0
        assert time.monotonic() - signalled < 5, "the stop waited for more than the upload"
        assert count_rows(database_url) == before + 1
        log = (tmp_path / "server.log").read_text()
        assert "POST /users 503" in log and "POST /users 201" in log
        assert log.count("POST /users 201") == 1
    finally:
        if process.poll() is None:
            process.kill()
