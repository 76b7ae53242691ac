"""`python -m server rehash`: images hashed by an older pipeline get the current one's hashes,
region signals and local features (hash_version and image_features.version say which
pipeline made a row's; an image without features has none yet).

Resumable and safe while the service runs: it reads each image's stored original, analyses
it exactly as an upload would, and writes the hashes, the signals and the version in one
transaction; an image deleted meanwhile is skipped. Search works throughout: images not yet
rehashed are still found by their whole-picture pHash (services/matching.py).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from ..backfill import Progress, all_of, batches
from ..db.pool import Pool
from ..db.queries import Queries, Record
from ..imaging import HASH_VERSION, ImageFacts, ImageRejected
from ..imaging.features import FEATURES_VERSION
from ..ingest.analyse import analyse_stored
from ..storage import ObjectNotFound, Storage
from ..storage.copies import local_copy
from . import copies
from .images import insert_signals

log = logging.getLogger(__name__)
BATCH = 64


@dataclass
class RehashReport:
    done: int = 0
    skipped: int = 0  # deleted meanwhile, or the object is missing
    failed: int = 0  # the stored bytes no longer decode


async def _rehash_one(pool: Pool, queries: Queries, storage: Storage, cpu: Executor,
                      row: Record, report: RehashReport) -> None:
    try:
        async with local_copy(storage, row["storage_key"]) as path:
            facts: ImageFacts = await analyse_stored(cpu, path)
    except ObjectNotFound:
        log.warning("image %s: object %s is missing", row["id"], row["storage_key"])
        report.skipped += 1
        return
    except ImageRejected as exc:
        log.error("image %s no longer decodes: %s", row["id"], exc)
        report.failed += 1
        return
    try:
        async with pool.acquire() as conn, conn.transaction():
            await queries.set_hash_version(
                conn, image_id=row["id"], version=HASH_VERSION, phash=facts.phash,
                dhash=facts.dhash, ahash=facts.ahash, whash=facts.whash,
                colorhash=facts.colorhash)
            await insert_signals(conn, queries, row["id"], facts.signals)
            await copies.insert(conn, queries, row["id"], facts.features)
    except asyncpg.ForeignKeyViolationError:
        report.skipped += 1  # deleted while it was being analysed
        return
    report.done += 1


async def rehash(pool: Pool, queries: Queries, storage: Storage, cpu: Executor, *,
                 workers: int = 2, progress: Progress | None = None) -> RehashReport:
    async with pool.acquire() as conn:
        total = await queries.count_to_rehash(conn, version=HASH_VERSION,
                                              features_version=FEATURES_VERSION)
    progress = progress or Progress(total, "rehash")
    report = RehashReport()
    slots = asyncio.Semaphore(workers)

    async def fetch(after: UUID | None, size: int) -> list[Record]:
        async with pool.acquire() as conn:
            return [r async for r in queries.images_to_rehash(
                conn, version=HASH_VERSION, features_version=FEATURES_VERSION, after_id=after,
                limit=size)]

    async def one(row: Record) -> None:
        async with slots:
            before = report.failed + report.skipped
            await _rehash_one(pool, queries, storage, cpu, row, report)
            progress.advance(failed=report.failed + report.skipped - before)

    async for rows in batches(fetch, lambda r: r["id"], BATCH):
        await all_of(one(row) for row in rows)
    progress.finish()
    return report
