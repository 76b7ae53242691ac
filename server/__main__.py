"""Command line: ``python -m server serve | migrate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from contextlib import AsyncExitStack

from aiohttp import web

from .access_log import RequestLogger
from .app import create_app
from .config import Config, ConfigError, redact_url
from .db.migrations import migrate
from .db.pool import create_pool
from .embedded import embedded_postgres

log = logging.getLogger("server")
SHUTDOWN_GRACE_SECONDS = 30.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: $PORT or 8080)")
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    return parser


def serve(config: Config) -> None:
    log.info("listening on http://%s:%d", config.host, config.port)
    web.run_app(
        create_app(config),
        host=config.host,
        port=config.port,
        access_log_class=RequestLogger,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
        print=None,
    )


async def run_migrations(config: Config) -> list[str]:
    async with AsyncExitStack() as stack:
        dsn = config.database_url
        if dsn is None:
            dsn = await stack.enter_async_context(embedded_postgres(config.data_dir))
        log.info("database: %s", redact_url(dsn) if config.database_url else "embedded")
        pool = await create_pool(dsn, max_size=1)
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            return await migrate(conn)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        serve(config.with_overrides(host=args.host, port=args.port))
    elif args.command == "migrate":
        applied = asyncio.run(run_migrations(config))
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
