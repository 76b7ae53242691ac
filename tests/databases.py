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
        # A throwaway database needs no commit to wait for its WAL to reach the disk.
        await conn.execute(f'alter database "{name}" set synchronous_commit = off')
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


# Every table but the migration record emptied, and the sequences restarted, in one round
# trip. DELETE, not TRUNCATE: these tables hold a few rows, and TRUNCATE makes new files for
# every table and index (about 35 ms a test, against 5). The replica role skips the foreign
# keys' triggers: every table is emptied anyway.
_EMPTY_ALL = """
do $$
declare r record;
begin
    set local session_replication_role = replica;
    for r in select quote_ident(tablename) as t from pg_tables
             where schemaname = 'public' and tablename <> 'schema_migrations' loop
        execute 'delete from ' || r.t;
    end loop;
    for r in select quote_ident(sequencename) as s from pg_sequences
             where schemaname = 'public' loop
        execute 'alter sequence ' || r.s || ' restart';
    end loop;
end $$
"""


async def truncate_all(dsn: str) -> None:
    """Empty every table but the migration record, between tests."""
    conn = await asyncpg.connect(dsn)
    try:
        try:
            await conn.execute(_EMPTY_ALL)
        except asyncpg.InsufficientPrivilegeError:  # the replica role needs a superuser
            tables = await conn.fetch(
                "select quote_ident(tablename) as t from pg_tables "
                "where schemaname = 'public' and tablename <> 'schema_migrations'"
            )
            names = ", ".join(row["t"] for row in tables)
            await conn.execute(f"truncate {names} restart identity cascade")
    finally:
        await conn.close()
