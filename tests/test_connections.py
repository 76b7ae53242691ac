"""The connection layer, tried as an attacker would, with raw sockets against a real server
process (`python -m server serve`): slow headers, slow uploads, too many connections, HEAD
on keep-alive connections, and requests aiohttp's parser refuses."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import struct
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.common import ServerProcess, running_server
from tests.conftest import _migrated_database
from tests.databases import drop_database
from tests.images import make_image
from tests.raw_http import BOUNDARY, form, part_head, upload_head
from tests.test_images import noise_png


@pytest.fixture(scope="module")
def server(admin_dsn: str) -> Iterator[ServerProcess]:
    """A server process on a database of its own (the other tests empty theirs after each
    test; this one lives for the module)."""
    dsn = asyncio.run(_migrated_database(admin_dsn))
    env = {"DATABASE_URL": dsn, "BCRYPT_COST": "4", "HEADER_TIMEOUT": "1",
           "READ_TIMEOUT": "2", "MIN_UPLOAD_RATE": "20000", "MAX_CONNECTIONS": "12",
           "PASSWORD_ATTEMPTS": "1000"}
    try:
        with running_server(env) as process:
            yield process
    finally:
        asyncio.run(drop_database(admin_dsn, dsn))


@pytest.fixture(scope="module")
def api_key(server: ServerProcess) -> str:
    request = urllib.request.Request(
        server.url + "/users", method="POST",
        data=json.dumps({"username": "conn_user", "password": "x" * 12}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return str(json.loads(resp.read())["api_key"])


def upload_public(server: ServerProcess, api_key: str, name: str, data: bytes) -> Any:
    body = form([(name, data)], {"visibility": "public"})
    request = urllib.request.Request(server.url + "/images", method="POST", data=body, headers={
        "Authorization": f"Bearer {api_key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.loads(resp.read())["images"][0]


@pytest.fixture(scope="module")
def image_id(server: ServerProcess, api_key: str) -> str:
    return str(upload_public(server, api_key, "a.png", make_image("PNG", (300, 200), seed=5))
               ["id"])


@pytest.fixture(scope="module")
def big_image_url(server: ServerProcess, api_key: str) -> str:
    """A public 7.7 MB image: far more than the socket buffers hold."""
    return str(upload_public(server, api_key, "n.png", noise_png(1600, 1600))["file_url"])


def connect(server: ServerProcess) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_response(stream: io.BufferedReader) -> tuple[str, dict[str, str], bytes]:
    """One HTTP/1.1 response off a keep-alive connection: status line, headers, body."""
    status = stream.readline().decode("latin-1").strip()
    headers: dict[str, str] = {}
    while (line := stream.readline().decode("latin-1").strip()):
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, b""


def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed the connection (None if it did not in time)."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except TimeoutError:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def test_headers_must_arrive_within_the_deadline(server: ServerProcess) -> None:
    """A client trickling a header line every 0.3 s is cut off after HEADER_TIMEOUT (1 s),
    however long it keeps trickling; one that sends nothing at all too."""
    trickler, silent = connect(server), connect(server)
    trickler.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    for i in range(20):
        try:
            trickler.sendall(f"X-Slow-{i}: y\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(0.3)
    assert time.monotonic() - started < 4, "the trickling client was never cut off"
    assert closed_within(silent, 3) is not None
    trickler.close()
    silent.close()


def test_a_keep_alive_connection_gets_the_deadline_again(server: ServerProcess) -> None:
    sock = connect(server)
    stream = sock.makefile("rb")
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(stream)[0] == "HTTP/1.1 200 OK"
    stream.read(15)  # {"status":"ok"}
    sock.sendall(b"GET /health HTTP/1.1\r\n")  # the next request's headers never end
    assert closed_within(sock, 4) is not None
    sock.close()


def test_an_upload_slower_than_the_minimum_rate_is_cut_off(
    server: ServerProcess, api_key: str
) -> None:
    """Bytes arrive often enough to beat the stall timeout (every 0.3 s < 2 s), but at about
    30 bytes a second instead of the 20,000 required: 408 once the first 2 s are used."""
    image = make_image("PNG", (400, 400), seed=6)
    head = part_head("s.png")
    sock = connect(server)
    sock.sendall(upload_head(api_key, len(head) + len(image) + 100) + head)
    answer = b""
    sock.settimeout(0.3)
    started = time.monotonic()
    for offset in range(0, len(image), 10):
        if time.monotonic() - started > 10:
            break  # bounded: an unlimited server would take hours
        try:
            sock.sendall(image[offset:offset + 10])
            answer += sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
        if answer:
            break
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"min_rate": 20000' in answer
    assert time.monotonic() - started < 10
    sock.close()


def test_connections_over_the_cap_get_503_at_once_and_the_rest_is_served(
    server: ServerProcess,
) -> None:
    idle = [connect(server) for _ in range(12)]
    time.sleep(0.2)
    try:
        extra = connect(server)
        started = time.monotonic()
        extra.settimeout(2)
        answer = extra.recv(65536)
        assert time.monotonic() - started < 1
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"Retry-After: 1" in answer and b"too_many_connections" in answer
        extra.close()
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
        assert resp.status == 200
    log = (server.data_dir / "server.log").read_text()
    assert log.count("connection cap") <= 2  # no line per refused connection


@pytest.mark.parametrize("path", [
    "/", "/health", "/ready", "/openapi.json", "/images", "/images/{id}", "/images/{id}/file",
    "/images/{id}/similar", "/search?q=x", "/images/{id}/file?x=1",
    "/images/{id}/thumbnail", "/images/{id}/thumbnail?size=1024&v=1",
])
def test_head_answers_headers_only_on_a_keep_alive_connection(
    server: ServerProcess, image_id: str, path: str
) -> None:
    """After HEAD, the next response on the same connection must parse: a body sent for the
    HEAD would be read as the next status line."""
    sock = connect(server)
    stream = sock.makefile("rb")
    target = path.replace("{id}", image_id)
    sock.sendall(f"HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n"
                 "GET /health HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    status, headers, _ = read_response(stream)
    assert status.startswith("HTTP/1.1 200"), status
    assert int(headers.get("content-length", "0")) >= 0
    status, headers, _ = read_response(stream)
    assert status == "HTTP/1.1 200 OK", status
    assert stream.read(int(headers["content-length"])) == b'{"status": "ok"}'
    sock.close()


def test_a_malformed_request_gets_the_envelope_without_echoing_it(server: ServerProcess) -> None:
    secret = "irk_thisisasecretkeyvalue"
    sock = connect(server)
    sock.sendall(f"GET /health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\x01\r\n"
                 "\r\n".encode())
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    sock.close()
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.0 400"))  # 1.0: version unparsed
    assert secret.encode() not in answer
    assert b"Server: imagerepo" in answer
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "bad_request"
    assert b"Python" not in answer and b"aiohttp" not in answer
    time.sleep(0.2)
    assert secret not in (server.data_dir / "server.log").read_text()


def test_no_log_flood_from_bad_requests(server: ServerProcess, tmp_path: Path) -> None:
    log = server.data_dir / "server.log"
    before = log.read_text().count("\n")
    for _ in range(50):
        sock = connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nBad\x01Header: y\r\n\r\n")
        sock.recv(65536)
        sock.close()
    time.sleep(0.2)
    grown = log.read_text().count("\n") - before
    assert grown <= 50 * 2, f"{grown} log lines for 50 bad requests:\n" + "\n".join(
        log.read_text().splitlines()[-10:])
    assert "Traceback" not in log.read_text()


def test_a_client_leaving_mid_download_is_not_a_database_outage(
    server: ServerProcess, big_image_url: str
) -> None:
    log = server.data_dir / "server.log"
    before = len(log.read_text())
    for _ in range(3):
        sock = connect(server)
        sock.sendall(f"GET {big_image_url} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(1000)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, with most of the body unsent
    time.sleep(1)
    with urllib.request.urlopen(server.url + "/health", timeout=5) as resp:
        assert resp.status == 200
    written = log.read_text()[before:]
    assert "database unavailable" not in written
    assert " 503 " not in written and "Traceback" not in written
