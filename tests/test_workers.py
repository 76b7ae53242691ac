"""Scaling out: `serve --workers N` (one port, N processes, a dead worker replaced, graceful
stop with an upload in flight), and state shared through PostgreSQL between servers that know
nothing of each other (lockout, cursors, idempotency)."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from queue import Empty, Queue
from typing import Any

import pytest

from bench.common import free_port
from tests.conftest import migrated_database
from tests.images import make_image
from tests.raw_http import closing, form, part_head, read_answer, upload_head
from tests.test_cli import start_server


def call(url: str, method: str = "GET", body: Any = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any, dict[str, str]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, method=method, data=data, headers={
        **({"Content-Type": "application/json"} if data else {}), **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null"), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null"), dict(exc.headers)


@contextmanager
def server(tmp: Path, env: dict[str, str], *args: str) -> Iterator[tuple[subprocess.Popen[bytes],
                                                                         str, Path]]:
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / f"server-{len(list(tmp.glob('server-*.log')))}.log"
    with start_server({**os.environ, "DATA_DIR": str(tmp),
                       "STORAGE_URL": (tmp / "objects").as_uri(), "BCRYPT_COST": "4",
                       "SHUTDOWN_GRACE": "10",
                       # The tests tell the workers apart by their access lines, /ready's too.
                       "ACCESS_LOG_QUIET_PATHS": "", **env}, log, *args) as (process, url):
        yield process, url, log


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def pids_in_log(log: Path, pattern: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"\[(\d+)\] [\w.]+: " + pattern, log.read_text())}


def kept_alive(port: int) -> socket.socket:
    """A connection that has had one answer and stays open for the next request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_answer(sock)[0] == 200
    return sock


@pytest.fixture
def dsn(admin_dsn: str) -> Iterator[str]:
    with migrated_database(admin_dsn) as database:
        yield database


def sign_up(url: str, name: str) -> str:
    status, body, _ = call(url + "/users", "POST", {"username": name, "password": "x" * 12})
    assert status == 201, body
    return str(body["api_key"])


def test_workers_share_the_port_and_a_dead_one_is_replaced(tmp_path: Path, dsn: str) -> None:
    with server(tmp_path, {"DATABASE_URL": dsn}, "--workers", "2") as (process, url, log):
        workers = children(process.pid)
        assert len(workers) == 2
        # Both workers accept on the one socket; whichever loop is free takes a connection,
        # so requests arriving together reach both.
        with ThreadPoolExecutor(16) as pool:
            for _ in range(20):
                statuses = list(pool.map(lambda _: call(url + "/ready")[0], range(32)))
                assert set(statuses) == {200}
                if len(pids_in_log(log, r"GET /ready 200")) == 2:
                    break
        assert pids_in_log(log, r"GET /ready 200") == workers
        assert "migrations:" in log.read_text()

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while len(children(process.pid) - {victim}) < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert "exited with status -9; starting another" in log.read_text()
        deadline = time.monotonic() + 30
        while call(url + "/ready")[0] != 200 or len(pids_in_log(
                log, r"worker accepting on")) < 3:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        for _ in range(10):
            assert call(url + "/health")[0] == 200


def test_listening_is_logged_once_every_worker_accepts(tmp_path: Path, dsn: str) -> None:
    """"listening ... with 2 workers" is true when it appears: read from the output as it is
    written, it comes after both workers said they accept, and a request sent at once is
    answered (the socket listens from the start, so a request sent before any worker accepts
    only waits in its backlog, for the seconds that a worker takes to start)."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", "--port", str(port), "--workers", "2"],
        env={**os.environ, "DATABASE_URL": dsn, "DATA_DIR": str(tmp_path),
             "STORAGE_URL": (tmp_path / "objects").as_uri()},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: Queue[str] = Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.decode())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not seen or " with 2 workers" not in seen[-1]:
            try:
                seen.append(lines.get(timeout=max(0.0, deadline - time.monotonic())))
            except Empty:
                pytest.fail("no 'listening' line:\n" + "".join(seen))
        sent = time.monotonic()
        assert call(f"http://127.0.0.1:{port}/health")[0] == 200
        answered = time.monotonic() - sent
        text = "".join(seen)
        assert "listening on http://127.0.0.1:" in seen[-1], text
        assert len(re.findall(r"worker accepting on", text)) == 2, text
        assert answered < 3.0, (answered, text)
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        reader.join(10)
        if process.stdout is not None:
            process.stdout.close()
    while not lines.empty():
        seen.append(lines.get())
    assert code == 0, "".join(seen)
    assert "".join(seen).count(" with 2 workers") == 1


def test_a_graceful_stop_of_all_workers_finishes_an_upload(tmp_path: Path, dsn: str) -> None:
    """SIGTERM to the supervisor: the upload in flight in one worker completes (201); uploads
    sent afterwards on connections kept alive from before store nothing: the busy worker
    answers them 503 + Connection: close, the idle one has closed its connections (it had
    nothing in flight, so it stopped at once); everything stops once the upload is done,
    long before SHUTDOWN_GRACE (10 s)."""
    with server(tmp_path, {"DATABASE_URL": dsn}, "--workers", "2") as (process, url, log):
        key = sign_up(url, "uploader")
        port = int(url.rsplit(":", 1)[1])
        idle = [kept_alive(port) for _ in range(6)]  # spread over both workers by the kernel
        image = make_image("PNG", (300, 200), seed=3)
        body = part_head("a.png") + image + closing()
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(upload_head(key, len(body)) + body[:1000])
        time.sleep(0.5)  # the upload is in flight in one of the workers
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.5)
        late = form([("b.png", make_image("PNG", (40, 40), seed=4))])
        refused = 0
        for conn in idle:
            try:
                conn.sendall(upload_head(key, len(late)) + late)
                status, headers, answer = read_answer(conn)
            except ConnectionError:
                continue  # closed by the worker that stopped at once
            finally:
                conn.close()
            assert status == 503 and headers["connection"] == "close", answer
            assert json.loads(answer)["error"]["code"] == "shutting_down"
            refused += 1
        sock.sendall(body[1000:])
        status, headers, answer = read_answer(sock)
        sock.close()
        assert status == 201, answer
        assert headers["connection"] == "close"
        assert process.wait(60) == 0, log.read_text()
        assert time.monotonic() - signalled < 6, "the stop waited for more than the upload"
        text = log.read_text()
        assert "stopping 2 workers" in text, text
        assert text.count("] server.lifecycle: stopped") == 2, text  # the whole log if not
        assert text.count("POST /images 201") == 1
        assert text.count("POST /images 503") == refused
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


def test_a_worker_that_exits_with_status_0_is_replaced(tmp_path: Path, dsn: str) -> None:
    """Not only a killed worker: one stopped gracefully on its own (SIGTERM to the worker
    alone, as an operator or an OOM-averse tool might send: it finishes its requests and
    exits 0) while the supervisor is not stopping is replaced too."""
    with server(tmp_path, {"DATABASE_URL": dsn}, "--workers", "2") as (process, url, log):
        workers = children(process.pid)
        assert len(workers) == 2
        deadline = time.monotonic() + 30
        while pids_in_log(log, r"worker accepting on") != workers:  # signal handlers set
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        victim = min(workers)
        os.kill(victim, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while len(children(process.pid) - {victim}) < 2 or len(pids_in_log(
                log, r"worker accepting on")) < 3:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert f"(pid {victim}) exited with status 0; starting another" in log.read_text()
        assert victim not in children(process.pid)
        for _ in range(10):
            assert call(url + "/health")[0] == 200
    assert process.returncode == 0


def test_workers_on_the_embedded_database(embedded_data_dir: Path) -> None:
    env = {"DATABASE_URL": "", "STORAGE_URL": ""}
    tmp_path = embedded_data_dir
    with server(tmp_path, env, "--workers", "2") as (process, url, log):
        assert call(url + "/users", "POST", {"username": "emb", "password": "x" * 12})[0] == 201
        assert len(children(process.pid)) >= 2
    assert process.returncode == 0
    text = log.read_text()
    assert "shared by 2 workers" in text and text.count("embedded PostgreSQL stopped") == 1
    assert not (tmp_path / "postgres" / "postmaster.pid").exists()


def test_state_is_shared_between_separate_servers(tmp_path: Path, dsn: str) -> None:
    """Two servers on one database (as two hosts would be): what one decides, the other
    knows, because nothing that matters lives in a process."""
    env = {"DATABASE_URL": dsn, "WORKERS": "1"}
    with server(tmp_path / "a", env) as (_, a, _), server(tmp_path / "b", env) as (_, b, _):
        key = sign_up(a, "shared")
        # Lockout: ten wrong passwords on A lock the account on B too.
        wrong = base64.b64encode(b"shared:wrong password").decode()
        for _ in range(10):
            assert call(a + "/keys", "POST", {}, {"Authorization": f"Basic {wrong}"})[0] == 401
        right = base64.b64encode(b"shared:" + b"x" * 12).decode()
        status, body, headers = call(b + "/keys", "POST", {}, {"Authorization": f"Basic {right}"})
        assert status == 429 and headers["Retry-After"]

        # A cursor signed by A continues on B.
        auth = {"Authorization": f"Bearer {key}"}
        for seed in range(3):
            png = make_image("PNG", (40, 30), seed=seed)
            boundary = "x0x0x0"
            payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                       f"filename=\"{seed}.png\"\r\n\r\n").encode() + png + \
                f"\r\n--{boundary}--\r\n".encode()
            request = urllib.request.Request(a + "/images", method="POST", data=payload, headers={
                **auth, "Content-Type": f"multipart/form-data; boundary={boundary}",
                **({"Idempotency-Key": "first"} if seed == 0 else {})})
            with urllib.request.urlopen(request, timeout=30) as resp:
                assert resp.status == 201
                if seed == 0:
                    first_answer = json.loads(resp.read())
                    first_payload = payload
        status, page, _ = call(a + "/images?owner=me&limit=1", headers=auth)
        status, rest, _ = call(b + f"/images?owner=me&limit=5&cursor={page['next_cursor']}",
                               headers=auth)
        assert status == 200 and len(rest["images"]) == 2
        assert page["images"][0]["id"] not in {i["id"] for i in rest["images"]}

        # An Idempotency-Key used on A is answered from B without a second upload.
        request = urllib.request.Request(b + "/images", method="POST", data=first_payload,
                                         headers={**auth, "Idempotency-Key": "first",
                                                  "Content-Type": "multipart/form-data; "
                                                                  "boundary=x0x0x0"})
        with urllib.request.urlopen(request, timeout=30) as resp:
            assert resp.headers["Idempotent-Replayed"] == "true"
            assert json.loads(resp.read()) == first_answer
        assert len(call(b + "/images?owner=me&limit=10", headers=auth)[1]["images"]) == 3
