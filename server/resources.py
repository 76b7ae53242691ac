"""One ``cleanup_ctx`` generator per external resource: acquire, yield, release."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack

from aiohttp import web

from .config import redact_url
from .db.migrations import migrate
from .db.pool import create_pool
from .db.queries import load_queries
from .embedded import embedded_postgres
from .keys import CONFIG, CPU_POOL, CURSORS, DSN, PASSWORDS, POOL, QUERIES, STORAGE
from .passwords import PasswordHasher
from .services import copies
from .services.cursors import Cursors
from .storage import open_storage
from .storage.measured import MeasuredStorage

log = logging.getLogger(__name__)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    async with AsyncExitStack() as stack:
        if config.database_url:
            dsn = config.database_url
            log.info("database: %s", redact_url(dsn))
        else:
            dsn = await stack.enter_async_context(embedded_postgres(config.data_dir))
            log.info("database: embedded PostgreSQL in %s; images in %s (both kept across "
                     "restarts: stop the server and remove %s to start afresh)",
                     config.data_dir / "postgres", config.storage_url, config.data_dir)
        pool = await create_pool(dsn, max_size=config.db_pool_size)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        log.info("migrations: %s", ", ".join(applied) if applied else "up to date")
        queries = load_queries()
        async with pool.acquire() as conn:
            secret = (await queries.service_secret(conn, name="cursor")
                      or await queries.service_secret(conn, name="cursor"))
        assert secret is not None, "the second call reads the row the first one raced"
        app[DSN] = dsn
        app[POOL] = pool
        app[QUERIES] = queries
        app[CURSORS] = Cursors(secret)
        yield


async def postings_merger_ctx(app: web.Application) -> AsyncIterator[None]:
    """Each process checks now and then whether new feature postings wait to be merged
    (one process merges at a time: an advisory lock)."""
    task = asyncio.create_task(copies.merge_forever(app[POOL], app[QUERIES]))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def storage_ctx(app: web.Application) -> AsyncIterator[None]:
    async with open_storage(app[CONFIG].storage_url) as storage:
        log.info("storage: %s", storage.describe())
        app[STORAGE] = MeasuredStorage(storage)
        yield


async def cpu_pool_ctx(app: web.Application) -> AsyncIterator[None]:
    workers = app[CONFIG].cpu_workers
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cpu")
    app[CPU_POOL] = executor
    passwords = PasswordHasher(app[CONFIG].bcrypt_cost, app[CONFIG].password_workers)
    app[PASSWORDS] = passwords
    try:
        yield
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        passwords.close()
