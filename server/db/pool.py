"""The asyncpg connection pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from ..observability import metrics

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


class MeasuredPool(Pool):
    """asyncpg's pool, reporting its size, the connections lent, the requests waiting for
    one and how long they waited. asyncpg has no hook for this: `acquire()` goes through
    `_acquire`, stable since asyncpg 0.18 (tests/test_operability.py notices a change)."""

    async def _acquire(self, timeout: float | None) -> Any:
        metrics.db_waiting(1)
        started = time.perf_counter()
        try:
            connection = await super()._acquire(timeout)  # type: ignore[misc]
        finally:
            metrics.db_waiting(-1)
        metrics.db_acquired(time.perf_counter() - started)
        self._report()
        return connection

    async def release(self, connection: Any, *, timeout: float | None = None) -> None:
        await super().release(connection, timeout=timeout)
        self._report()

    def _report(self) -> None:
        size = self.get_size()
        metrics.db_pool(size, size - self.get_idle_size(), self.get_max_size())


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
    # What asyncpg.create_pool does, with the measured class.
    pool = MeasuredPool(
        dsn,
        min_size=1,
        max_size=max_size,
        max_queries=50_000,
        command_timeout=30,
        # Connections go stale when PostgreSQL restarts; recycle idle ones.
        max_inactive_connection_lifetime=60,
        init=init_connection,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        loop=None,
    )
    await pool
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
