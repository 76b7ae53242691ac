"""Throwaway PostgreSQL databases for the test run.

The server is ``$DATABASE_URL`` when set (CI points it at the local PostgreSQL),
otherwise an embedded PostgreSQL started for this run.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def with_database(dsn: str, name: str) -> str:
    """The same server URL, pointing at another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


async def create_database(admin_dsn: str, prefix: str = "imagerepo_test") -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_database(admin_dsn: str, dsn: str) -> None:
    name = urlsplit(dsn).path.lstrip("/")
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await conn.close()


async def truncate_all(dsn: str) -> None:
    """Empty every table but the migration record, between tests."""
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetch(
            "select quote_ident(tablename) as t from pg_tables "
            "where schemaname = 'public' and tablename <> 'schema_migrations'"
        )
        if tables:
            names = ", ".join(row["t"] for row in tables)
            await conn.execute(f"truncate {names} restart identity cascade")
    finally:
        await conn.close()
