"""Thumbnails: storing them beside the original, finding them, making a missing one on
request, and the backfill (`python -m server thumbnails`).

Each stored thumbnail is one object under a key made of the original's random key and a
random suffix (never guessable from the image id, never shared by two makers) and one row in
image_thumbnails. Rows go with their image (cascade); deletion and the sweep name the objects.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from concurrent.futures import Executor
from dataclasses import dataclass
from uuid import UUID

import asyncpg

from ..backfill import Progress, all_of, batches
from ..cpu import run_cpu
from ..db.pool import Connection, Pool
from ..db.queries import Queries, Record
from ..errors import NotFound
from ..imaging import ACCEPTED, ImageRejected
from ..imaging.thumbnails import SMALL, THUMBNAIL_VERSION, Thumbnail, render
from ..storage import ObjectNotFound, Storage, new_key
from ..storage.copies import local_copy, put_bytes, read_all

log = logging.getLogger(__name__)
WEBP = "image/webp"
FORMAT_OF = {content_type: fmt for fmt, content_type in ACCEPTED.items()}
BATCH = 64


@dataclass(frozen=True, slots=True)
class StoredThumbnail:
    size: int
    storage_key: str
    width: int
    height: int
    size_bytes: int
    sha256: bytes

    @classmethod
    def of(cls, thumbnail: Thumbnail, storage_key: str) -> StoredThumbnail:
        return cls(thumbnail.size, storage_key, thumbnail.width, thumbnail.height,
                   len(thumbnail.data), thumbnail.sha256)

    @classmethod
    def from_row(cls, size: int, row: Record) -> StoredThumbnail:
        return cls(size, row["storage_key"], row["width"], row["height"], row["size_bytes"],
                   row["sha256"])


async def store(storage: Storage, thumbnail: Thumbnail,
                written: list[str] | None = None) -> StoredThumbnail:
    """Put the thumbnail's object; its key goes into `written` first (a cancelled put may
    still land, and the caller's clean-up must know it)."""
    key = new_key(f"-{thumbnail.size}.webp")
    if written is not None:
        written.append(key)
    # Not fsynced: a thumbnail that a crash lost or cut short fails its digest check when
    # read, and is made again (thumbnail_bytes).
    await put_bytes(storage, key, thumbnail.data, WEBP, durable=False)
    return StoredThumbnail.of(thumbnail, key)


async def insert_thumbnail(conn: Connection, queries: Queries, image_id: UUID,
                           thumbnail: StoredThumbnail) -> bool:
    """Record a stored thumbnail; False when one of that size was recorded first."""
    inserted = await queries.insert_thumbnail(
        conn, image_id=image_id, size=thumbnail.size, storage_key=thumbnail.storage_key,
        width=thumbnail.width, height=thumbnail.height, size_bytes=thumbnail.size_bytes,
        sha256=thumbnail.sha256, version=THUMBNAIL_VERSION)
    return inserted is not None


async def _make(storage: Storage, cpu: Executor, image: Record, size: int) -> Thumbnail:
    async with local_copy(storage, image["storage_key"]) as path:
        return await run_cpu(cpu, render, path, FORMAT_OF[image["content_type"]], size)


async def _add(pool: Pool, queries: Queries, storage: Storage, cpu: Executor, image: Record,
               size: int) -> tuple[StoredThumbnail, bytes] | None:
    """Make, store and record one thumbnail; None when another maker recorded one first.
    Raises ObjectNotFound (no original), ImageRejected, NotFound (image deleted)."""
    made = await _make(storage, cpu, image, size)
    written: list[str] = []
    try:
        stored = await store(storage, made, written)
        async with pool.acquire() as conn:
            recorded = await insert_thumbnail(conn, queries, image["id"], stored)
    except BaseException as exc:
        # Also when cancelled mid-put: the object may land anyway, so its key goes too.
        await asyncio.shield(asyncio.gather(*(storage.delete(k) for k in written),
                                            return_exceptions=True))
        if isinstance(exc, asyncpg.ForeignKeyViolationError):
            raise NotFound("No such image") from None
        raise
    if not recorded:
        await storage.delete(stored.storage_key)
        return None
    return stored, made.data


async def thumbnail_bytes(pool: Pool, queries: Queries, storage: Storage, cpu: Executor,
                          image: Record, size: int,
                          known: Record | None) -> tuple[StoredThumbnail, bytes]:
    """The image's thumbnail of this size and its WebP bytes, made now if it is missing (or
    its object was lost or damaged). `known` is its get_thumbnail row as the caller read it;
    the row is read again only after a lost race or a remade object."""
    row = known
    for attempt in range(3):
        if attempt:
            async with pool.acquire() as conn:
                row = await queries.get_thumbnail(conn, image_id=image["id"], size=size)
        if row is not None:
            stored = StoredThumbnail.from_row(size, row)
            try:
                data = await read_all(storage, stored.storage_key)
                if hashlib.sha256(data).digest() == stored.sha256:
                    return stored, data
                log.error("thumbnail %s of image %s is damaged: making it again",
                          stored.storage_key, image["id"])
            except ObjectNotFound:
                log.error("thumbnail %s of image %s is missing: making it again",
                          stored.storage_key, image["id"])
            async with pool.acquire() as conn:
                await queries.delete_thumbnail(conn, image_id=image["id"], size=size,
                                               storage_key=stored.storage_key)
            await storage.delete(stored.storage_key)
            continue
        try:
            added = await _add(pool, queries, storage, cpu, image, size)
        except ObjectNotFound:
            log.error("image %s has a row but no object %s", image["id"], image["storage_key"])
            raise NotFound("The image's file is missing") from None
        except ImageRejected as exc:
            log.error("image %s cannot be thumbnailed: %s", image["id"], exc)
            raise NotFound("The image's file cannot be decoded") from None
        if added is not None:
            return added
    raise NotFound("The thumbnail could not be made")  # three lost races in a row


@dataclass
class BackfillReport:
    done: int = 0
    skipped: int = 0  # deleted meanwhile, made by a request meanwhile, or no original
    failed: int = 0  # the stored bytes no longer decode


async def backfill(pool: Pool, queries: Queries, storage: Storage, cpu: Executor, *,
                   size: int = SMALL, workers: int = 2,
                   progress: Progress | None = None) -> BackfillReport:
    """Thumbnails of this size for every image without one: resumable (the rows say what is
    done), safe while the service runs (a race with a request keeps one of the two)."""
    async with pool.acquire() as conn:
        total = await queries.count_without_thumbnail(conn, size=size)
    progress = progress or Progress(total, f"thumbnails {size}px")
    report = BackfillReport()
    slots = asyncio.Semaphore(workers)

    async def fetch(after: UUID | None, limit: int) -> list[Record]:
        async with pool.acquire() as conn:
            return [r async for r in queries.images_without_thumbnail(
                conn, size=size, after_id=after, limit=limit)]

    async def one(image: Record) -> None:
        async with slots:
            try:
                added = await _add(pool, queries, storage, cpu, image, size)
            except (ObjectNotFound, NotFound):
                log.warning("image %s: deleted, or its original is missing", image["id"])
                report.skipped += 1
                progress.advance(failed=1)
                return
            except ImageRejected as exc:
                log.error("image %s no longer decodes: %s", image["id"], exc)
                report.failed += 1
                progress.advance(failed=1)
                return
            if added is None:
                report.skipped += 1
            else:
                report.done += 1
            progress.advance()

    async for rows in batches(fetch, lambda r: r["id"], BATCH):
        await all_of(one(row) for row in rows)
    progress.finish()
    return report
