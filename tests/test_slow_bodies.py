"""Slow request bodies that are not uploads (JSON), with raw sockets against a real server
process: a body trickled a byte at a time is cut off with 408 within BODY_TIMEOUT on every
route that reads one, enough of them cannot keep /health unreachable for longer than that,
and an honest client that sends its body in a few pieces in time is served."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bench.common import ServerProcess, running_server
from tests.conftest import _migrated_database
from tests.databases import drop_database
from tests.images import make_image
from tests.raw_http import BOUNDARY, closed_by_peer, form, read_answer

BODY_TIMEOUT = 2
MAX_CONNECTIONS = 20
PASSWORD = "x" * 12


@pytest.fixture(scope="module")
def server(admin_dsn: str) -> Iterator[ServerProcess]:
    """READ_TIMEOUT and MIN_UPLOAD_RATE keep their defaults (30 s, 16 KiB/s after those
    30 s): a byte every 0.25 s passes both for half a minute, so only the deadline of a JSON
    body can cut these clients off in time."""
    dsn = asyncio.run(_migrated_database(admin_dsn))
    env = {"DATABASE_URL": dsn, "BCRYPT_COST": "4", "BODY_TIMEOUT": str(BODY_TIMEOUT),
           "MAX_CONNECTIONS": str(MAX_CONNECTIONS), "PASSWORD_ATTEMPTS": "1000"}
    try:
        with running_server(env) as process:
            yield process
    finally:
        asyncio.run(drop_database(admin_dsn, dsn))


def address(server: ServerProcess) -> tuple[str, int]:
    host, port = server.url.removeprefix("http://").split(":")
    return host, int(port)


@pytest.fixture(scope="module")
def api_key(server: ServerProcess) -> str:
    request = urllib.request.Request(
        server.url + "/users", method="POST",
        data=json.dumps({"username": "body_user", "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["api_key"])


@pytest.fixture(scope="module")
def image_id(server: ServerProcess, api_key: str) -> str:
    request = urllib.request.Request(
        server.url + "/images", method="POST",
        data=form([("a.png", make_image("PNG", (60, 40), seed=8))]),
        headers={"Authorization": f"Bearer {api_key}",
                 "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return str(json.loads(resp.read())["images"][0]["id"])


def json_head(method: str, path: str, length: int, auth: str = "") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + (f"Authorization: {auth}\r\n" if auth else "")
            + f"Content-Length: {length}\r\n\r\n").encode()


def padded(document: dict[str, object], length: int = 1000) -> bytes:
    """A valid JSON body of exactly `length` bytes (spaces after the object)."""
    raw = json.dumps(document).encode()
    return raw + b" " * (length - len(raw))


def trickle(sock: socket.socket, body: bytes, every: float, give_up: float = 15) -> tuple[
        bytes, float]:
    """Send `body` a byte every `every` seconds until the server answers; the answer and
    the seconds it took (give_up bounds the test: an unlimited server would wait forever)."""
    started = time.monotonic()
    sock.settimeout(every)
    for byte in body:
        if time.monotonic() - started > give_up:
            break
        try:
            sock.sendall(bytes([byte]))
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        return answer, time.monotonic() - started
    return b"", time.monotonic() - started


ROUTES: dict[str, tuple[str, str, str, dict[str, object]]] = {
    "sign up": ("POST", "/users", "", {"username": "never", "password": PASSWORD}),
    "new key": ("POST", "/keys", "basic", {"name": "k"}),
    "change": ("PATCH", "/images/{id}", "key", {"title": "t"}),
    "bulk delete": ("POST", "/images/delete", "key", {"ids": []}),
    "known": ("POST", "/images/known", "key", {"sha256": []}),
}


@pytest.mark.parametrize("route", ROUTES)
def test_a_trickled_json_body_is_cut_off_at_the_deadline(
    server: ServerProcess, api_key: str, image_id: str, route: str
) -> None:
    method, path, who, document = ROUTES[route]
    auth = {"": "", "key": f"Bearer {api_key}",
            "basic": "Basic " + base64.b64encode(f"body_user:{PASSWORD}".encode()).decode()}
    body = padded(document)
    sock = socket.create_connection(address(server), timeout=10)
    sock.sendall(json_head(method, path.replace("{id}", image_id), len(body), auth[who]))
    answer, seconds = trickle(sock, body, every=0.25)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert seconds < BODY_TIMEOUT + 1.5, seconds
    assert b"Connection: close" in answer and b'"request_timeout"' in answer
    assert closed_by_peer(sock, 2), "the connection stays open after the 408"
    sock.close()


def health(server: ServerProcess) -> int:
    try:
        with urllib.request.urlopen(server.url + "/health", timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def test_trickling_bodies_cannot_hold_every_connection(server: ServerProcess) -> None:
    """MAX_CONNECTIONS + 5 clients each trickle a sign-up body. /health is refused (503)
    while they hold every connection, and served again once BODY_TIMEOUT has cut them off,
    although they keep trickling."""
    body = padded({"username": "flood", "password": PASSWORD})
    socks = []
    for _ in range(MAX_CONNECTIONS + 5):
        sock = socket.create_connection(address(server), timeout=10)
        sock.setblocking(False)
        try:
            sock.send(json_head("POST", "/users", len(body)))
        except OSError:
            pass  # over the cap: answered 503 and closed at once
        socks.append(sock)
    started = time.monotonic()
    try:
        time.sleep(0.3)
        assert health(server) == 503, "the clients should fill every connection first"
        sent = 0
        while health(server) != 200:
            assert time.monotonic() - started < BODY_TIMEOUT + 3, \
                "the trickling clients still hold every connection"
            for sock in socks:
                try:
                    sock.send(body[sent:sent + 1])
                except OSError:
                    pass  # cut off (or refused): the point
            sent += 1
            time.sleep(0.25)
        seconds = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    assert seconds < BODY_TIMEOUT + 3


def test_an_honest_slow_client_is_served(server: ServerProcess) -> None:
    """A body in three pieces over about 1.2 s, within the 2 s deadline: served."""
    body = padded({"username": "patient", "password": PASSWORD})
    sock = socket.create_connection(address(server), timeout=10)
    sock.sendall(json_head("POST", "/users", len(body)))
    for piece in (body[:300], body[300:700], body[700:]):
        time.sleep(0.4)
        sock.sendall(piece)
    status, headers, answer = read_answer(sock)
    assert status == 201, answer
    assert json.loads(answer)["username"] == "patient"
    sock.close()
