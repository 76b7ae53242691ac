"""Command line: ``python -m server serve | migrate | sweep | rehash | thumbnails``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from datetime import timedelta

from . import lifecycle
from .config import Config, ConfigError, redact_url
from .db.migrations import migrate
from .db.pool import Pool, create_pool
from .db.queries import load_queries
from .embedded import embedded_postgres
from .imaging.thumbnails import LARGE, SIZES, SMALL
from .observability import logs, metrics, tracing
from .services.rehash import RehashReport, rehash
from .services.sweep import SweepReport, sweep
from .services.thumbnails import BackfillReport, backfill
from .storage import open_storage
from .workers import inherited_socket, serve_workers

log = logging.getLogger("server")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m server", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", help="listen address (default: $HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: $PORT or 8080)")
    serve.add_argument("--workers", type=int,
                       help="server processes sharing the port (default: $WORKERS, or one per "
                            "core)")
    commands.add_parser("migrate", help="apply pending database migrations and exit")
    sweep = commands.add_parser(
        "sweep", help="remove stored objects that have no row; report rows without an object")
    sweep.add_argument("--grace-minutes", type=float, default=60.0,
                       help="leave objects younger than this alone (uploads in flight)")
    sweep.add_argument("--dry-run", action="store_true", help="report, remove nothing")
    commands.add_parser(
        "rehash", help="give images hashed by an older pipeline the current hashes, region "
                       "signals and local features (resumable; safe while the service runs)")
    thumbs = commands.add_parser(
        "thumbnails", help="make the thumbnails that images uploaded before them lack "
                           "(resumable; safe while the service runs)")
    thumbs.add_argument("--size", type=int, choices=SIZES, action="append",
                        help=f"a size to make (repeatable; default: {SMALL}, the size uploads "
                             f"make; {LARGE} is otherwise made on its first request)")
    return parser


def serve(config: Config, workers: int) -> int:
    if workers > 1 and inherited_socket() is None:
        tracing.check(config)  # each worker sets tracing up for itself: fail before any starts
        return serve_workers(config, workers)
    tracing.setup(config)  # before the app is built (its instrumentation wraps the app)
    try:
        asyncio.run(lifecycle.serve(config))
    finally:
        tracing.shutdown()  # the last spans exported, off the event loop
    return 0


async def _open_pool(config: Config, stack: AsyncExitStack) -> Pool:
    dsn = config.database_url
    if dsn is None:
        dsn = await stack.enter_async_context(embedded_postgres(config.data_dir))
    log.info("database: %s", redact_url(dsn) if config.database_url else "embedded")
    pool = await create_pool(dsn, max_size=2)
    stack.push_async_callback(pool.close)
    return pool


async def run_migrations(config: Config) -> list[str]:
    async with AsyncExitStack() as stack:
        pool = await _open_pool(config, stack)
        async with pool.acquire() as conn:
            return await migrate(conn)


async def run_sweep(config: Config, grace: timedelta, dry_run: bool) -> SweepReport:
    async with AsyncExitStack() as stack:
        pool = await _open_pool(config, stack)
        storage = await stack.enter_async_context(open_storage(config.storage_url))
        return await sweep(pool, load_queries(), storage, grace=grace, dry_run=dry_run)


async def run_rehash(config: Config) -> RehashReport:
    async with AsyncExitStack() as stack:
        pool = await _open_pool(config, stack)
        storage = await stack.enter_async_context(open_storage(config.storage_url))
        cpu = stack.enter_context(ThreadPoolExecutor(config.cpu_workers,
                                                     thread_name_prefix="cpu"))
        return await rehash(pool, load_queries(), storage, cpu, workers=config.cpu_workers)


async def run_thumbnails(config: Config, sizes: Sequence[int]) -> list[BackfillReport]:
    async with AsyncExitStack() as stack:
        pool = await _open_pool(config, stack)
        storage = await stack.enter_async_context(open_storage(config.storage_url))
        cpu = stack.enter_context(ThreadPoolExecutor(config.cpu_workers,
                                                     thread_name_prefix="cpu"))
        return [await backfill(pool, load_queries(), storage, cpu, size=size,
                               workers=config.cpu_workers) for size in sizes]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = Config.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_format)
    if not config.metrics:
        metrics.disable()
    # The embedded PostgreSQL's command lines and their output (~50 lines on a first start):
    # for debugging only. Its platformdirs warns when there is no login session: harmless.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    if args.command == "serve":
        if args.workers is not None and args.workers < 1:
            print("--workers must be at least 1", file=sys.stderr)
            return 2
        try:
            return serve(config.with_overrides(host=args.host, port=args.port),
                         args.workers or config.workers)
        except tracing.TracingUnavailable as exc:
            print(f"configuration error: {exc}", file=sys.stderr)
            return 2
    elif args.command == "migrate":
        applied = asyncio.run(run_migrations(config))
        print("applied: " + ", ".join(applied) if applied else "database is up to date")
    elif args.command == "sweep":
        report = asyncio.run(run_sweep(config, timedelta(minutes=args.grace_minutes),
                                       args.dry_run))
        verb = "would remove" if args.dry_run else "removed"
        print(f"objects: {report.objects_seen}; {verb} {len(report.orphans_removed)} without a "
              f"row; left {report.orphans_kept_young} younger than the grace period")
        for key in report.orphans_removed:
            print(f"  orphan object: {key}")
        print(f"rows without an object: {len(report.rows_without_object)}")
        for image_id in report.rows_without_object:
            print(f"  image {image_id}")
        return 1 if report.rows_without_object else 0
    elif args.command == "rehash":
        result = asyncio.run(run_rehash(config))
        print(f"rehashed {result.done}; skipped {result.skipped} (deleted or missing); "
              f"failed {result.failed}")
        return 1 if result.failed else 0
    elif args.command == "thumbnails":
        reports = asyncio.run(run_thumbnails(config, args.size or [SMALL]))
        for size, made in zip(args.size or [SMALL], reports, strict=True):
            print(f"thumbnails {size}px: made {made.done}; skipped {made.skipped} (deleted, "
                  f"made meanwhile or missing); failed {made.failed}")
        return 1 if any(r.failed for r in reports) else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
