"""The asyncpg connection pool."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    Pool: TypeAlias = asyncpg.Pool[asyncpg.Record]
    from asyncpg.pool import PoolConnectionProxy

    # A connection of its own, or one borrowed from the pool: both run queries alike.
    Connection: TypeAlias = (
        asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    )
else:  # asyncpg's classes are generic only in its stubs
    Pool = asyncpg.Pool
    Connection = asyncpg.Connection


async def init_connection(conn: Connection) -> None:
    # Every statement runs in UTC so that timestamps read back the same everywhere.
    # Custom plans always: the named queries' best plans depend on their parameters (optional
    # filters written as "$1 is null or ...", the words of a text search), and asyncpg's
    # prepared statements would otherwise drift to one generic plan for all of them.
    await conn.execute("set timezone to 'UTC'; set plan_cache_mode to force_custom_plan")


async def create_pool(dsn: str, *, max_size: int = 10) -> Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        command_timeout=30,
        # Connections go stale when PostgreSQL restarts; recycle idle ones.
        max_inactive_connection_lifetime=60,
        init=init_connection,
    )
    assert pool is not None
    return pool
