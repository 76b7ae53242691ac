"""The asyncpg connection pool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
    # No parallel workers: starting them costs milliseconds, more than these short queries
    # take (the Hamming probes went from 1 ms to 8 ms with two workers).
    # No statement may hold a connection for long (searches set a tighter bound of their own).
    await conn.execute("set timezone to 'UTC'; set max_parallel_workers_per_gather to 0; "
                       f"set statement_timeout to {STATEMENT_TIMEOUT_MS}")


# The bound of any one statement; asyncpg's command_timeout (30 s) is the client-side backstop.
STATEMENT_TIMEOUT_MS = 15_000


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


@asynccontextmanager
async def plan_cache_mode(
    conn: Connection, mode: str, *, timeout: float | None = None
) -> AsyncIterator[None]:
    """Run the block in a transaction whose statements use this plan_cache_mode (and, if
    given, a statement timeout in seconds: past it PostgreSQL cancels the statement).

    Some named queries want a fresh plan for every set of parameters (text search), others
    are planned once and reused (the Hamming probes: planning them cost more than running
    them). BEGIN and SET LOCAL go in one round trip.
    """
    if mode not in ("auto", "force_custom_plan", "force_generic_plan"):
        raise ValueError(f"unknown plan_cache_mode {mode!r}")
    settings = f"set local plan_cache_mode to {mode}"
    if timeout is not None:
        settings += f"; set local statement_timeout to {max(1, round(timeout * 1000))}"
    if conn.is_in_transaction():
        await conn.execute(settings)
        yield
        return
    await conn.execute(f"begin; {settings}")
    try:
        yield
    except BaseException:
        await asyncio.shield(conn.execute("rollback"))
        raise
    await conn.execute("commit")
