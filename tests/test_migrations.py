"""Migrations apply once, in order, and concurrent runners agree."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from server.db.migrations import load_migrations, migrate
from tests.databases import create_database, drop_database


@pytest.fixture
async def empty_database(admin_dsn: str) -> AsyncIterator[str]:
    dsn = await create_database(admin_dsn, prefix="imagerepo_migrations")
    try:
        yield dsn
    finally:
        await drop_database(admin_dsn, dsn)


async def _tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("select tablename from pg_tables where schemaname = 'public'")
    return {row["tablename"] for row in rows}


def test_files_are_numbered_in_order() -> None:
    migrations = load_migrations()
    assert migrations, "the package ships its migrations"
    versions = [m.version for m in migrations]
    assert versions == sorted(versions) == list(range(1, len(versions) + 1))


async def test_all_apply_to_an_empty_database_and_a_second_run_does_nothing(
    empty_database: str,
) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        applied = await migrate(conn)
        assert applied == [f"{m.version:04d}_{m.name}" for m in load_migrations()]
        assert {"schema_migrations", "users", "api_keys"} <= await _tables(conn)
        assert await migrate(conn) == []
        count = await conn.fetchval("select count(*) from schema_migrations")
        assert count == len(applied)
    finally:
        await conn.close()


async def test_concurrent_runs_end_in_one_correct_schema(empty_database: str) -> None:
    conns = [await asyncpg.connect(empty_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        total = len(load_migrations())
        # Exactly one runner applied everything; the others found it done.
        assert sorted(len(r) for r in results) == [0, 0, total]
        versions = await conns[0].fetch("select version from schema_migrations order by 1")
        assert [row["version"] for row in versions] == list(range(1, total + 1))
    finally:
        for conn in conns:
            await conn.close()
