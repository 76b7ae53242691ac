"""The command line: ``serve`` on the embedded defaults, kept across restarts; logs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from bench.common import free_port
from tests.conftest import _migrated_database
from tests.databases import drop_database


def call(url: str, method: str = "GET", body: dict[str, Any] | None = None) -> tuple[int, bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@contextmanager
def start_server(env: dict[str, str], log: Path,
                 *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`python -m server serve ARGS` on a free port, ready; SIGTERM at the end (its exit
    status is the caller's to check)."""
    port = free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(port), *args],
            env={"WORKERS": "1", **env, "PORT": "1"}, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if call(url + "/ready")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield process, url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(60)


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[str]:
    with start_server(env, log) as (process, url):
        yield url
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()


@contextmanager
def serve_own_database(tmp: Path, admin_dsn: str, **extra: str) -> Iterator[str]:
    """`serve` on a fresh migrated database of its own (dropped after), local storage in
    `tmp`, cheap bcrypt: for tests that leave rows behind."""
    database_url = asyncio.run(_migrated_database(admin_dsn))
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(tmp),
           "STORAGE_URL": (tmp / "objects").as_uri(), "BCRYPT_COST": "4", **extra}
    try:
        with serve(env, tmp / "server.log") as url:
            yield url
    finally:
        asyncio.run(drop_database(admin_dsn, database_url))


def test_serve_on_the_embedded_defaults(tmp_path: Path, embedded_data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "STORAGE_URL") and not k.startswith("AWS_")}
    env["DATA_DIR"] = str(embedded_data_dir / "data")
    log = tmp_path / "server.log"

    with serve(env, log) as url:
        for path in ("/", "/health", "/ready", "/docs", "/openapi.json"):
            assert call(url + path)[0] == 200, path
        status, _ = call(url + "/users", "POST", {"username": "kept", "password": "x" * 12})
        assert status == 201

    text = log.read_text()
    assert "database: embedded PostgreSQL in" in text
    assert f"storage: {(embedded_data_dir / 'data' / 'objects').as_uri()}" in text
    assert "GET /docs 200" in text  # one line per request: method, path, status, duration
    assert "GET /health 200" not in text  # but the health checks are quiet by default
    assert "embedded PostgreSQL stopped" in text
    assert not (embedded_data_dir / "data" / "postgres" / "postmaster.pid").exists()

    # The data survives a restart.
    with serve(env, log) as url:
        status, _ = call(url + "/users", "POST", {"username": "KEPT", "password": "x" * 12})
        assert status == 409
    assert "migrations: up to date" in log.read_text()


def test_start_up_never_logs_the_database_password(tmp_path: Path) -> None:
    dsn = os.environ.get("DATABASE_URL", "")
    if "@" not in dsn or ":" in dsn.split("://", 1)[1].split("@", 1)[0]:
        pytest.skip("needs a $DATABASE_URL without a password, on a server with trust auth")
    scheme, rest = dsn.split("://", 1)
    user, host = rest.split("@", 1)
    env = {**os.environ, "DATABASE_URL": f"{scheme}://{user}:hunter2-secret@{host}",
           "DATA_DIR": str(tmp_path), "STORAGE_URL": (tmp_path / "objects").as_uri()}
    log = tmp_path / "server.log"
    with serve(env, log) as url:
        assert call(url + "/health")[0] == 200
    text = log.read_text()
    assert "hunter2-secret" not in text
    assert f"database: {scheme}://{user}:***@{host}" in text


def test_sweep_command(tmp_path: Path, clean_db: str) -> None:
    objects = tmp_path / "objects"
    (objects / "stray").mkdir(parents=True)
    (objects / "stray" / "file").write_bytes(b"x")
    env = {**os.environ, "DATABASE_URL": clean_db, "STORAGE_URL": objects.as_uri(),
           "DATA_DIR": str(tmp_path)}
    run = [sys.executable, "-m", "server", "sweep", "--grace-minutes", "0"]
    dry = subprocess.run([*run, "--dry-run"], env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "would remove 1 without a row" in dry.stdout
    assert (objects / "stray" / "file").exists()
    done = subprocess.run(run, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "orphan object: stray/file" in done.stdout
    assert not (objects / "stray" / "file").exists()
