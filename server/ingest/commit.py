"""One upload, all or nothing: what the request has written so far (so that any failure
removes every object of it), every file's analysis awaited with the bad parts named in one
error, and the rows written in one transaction.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from uuid import UUID

from ..db.pool import Pool
from ..db.queries import Queries, Record
from ..errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from ..imaging import HASH_VERSION, ImageFacts, ImageRejected, TooManyPixels, UnsupportedFormat
from ..observability import metrics
from ..services import images
from ..services.images import NewImage
from ..services.thumbnails import StoredThumbnail
from ..storage import Storage
from .derive import PublicCopy
from .metadata import per_file
from .read import ReceivedFile


@dataclass(frozen=True, slots=True)
class Analysis:
    facts: ImageFacts
    sha256: bytes
    public_copy: PublicCopy | None = None
    thumbnail: StoredThumbnail | None = None


@dataclass(slots=True)
class StoredFile:
    received: ReceivedFile
    analysis: asyncio.Future[Analysis]

    @property
    def label(self) -> str:
        return self.received.label

    @property
    def filename(self) -> str:
        return self.received.filename


@dataclass(slots=True)
class UploadBatch:
    """What one request has written so far, so that a failure can remove all of it."""

    storage: Storage
    files: list[StoredFile] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)
    written_keys: list[str] = field(default_factory=list)

    async def discard(self) -> None:
        for stored in self.files:
            stored.analysis.cancel()
        # Wait for the analyses to stop before deleting: one cancelled mid-put may still
        # write its object (a thumbnail, a copy) after an early delete.
        await asyncio.gather(*(f.analysis for f in self.files), return_exceptions=True)
        await asyncio.gather(*(self.storage.delete(k) for k in self.written_keys),
                             return_exceptions=True)


async def analyses(batch: UploadBatch) -> list[Analysis]:
    """Every file's analysis; the bad parts are named together in one error."""
    results = await asyncio.gather(*(f.analysis for f in batch.files), return_exceptions=True)
    problems: dict[str, str] = {}
    kinds: set[type[ImageRejected]] = set()
    for stored, result in zip(batch.files, results, strict=True):
        if isinstance(result, ImageRejected):
            problems[stored.label] = str(result)
            kinds.add(type(result))
        elif isinstance(result, BaseException):
            raise result
    if problems:
        details = {"parts": problems}
        message = "; ".join(f"{label}: {text}" for label, text in problems.items())
        if UnsupportedFormat in kinds:
            raise UnsupportedMediaType(message, details=details)
        if TooManyPixels in kinds:
            raise PayloadTooLarge(message, details=details)
        raise ValidationFailed(message, details=details)
    return [r for r in results if isinstance(r, Analysis)]


def new_images(batch: UploadBatch, results: list[Analysis]) -> list[NewImage]:
    """The rows to write: each file's analysis with its metadata (422 for bad metadata)."""
    if not batch.files:
        raise ValidationFailed("No file in the upload",
                               details={"file": ["At least one file part is required."]})
    metadata = per_file(batch.fields, batch.files)
    return [
        NewImage(
            title=meta.title, description=meta.description, tags=meta.tags,
            visibility=meta.visibility,
            filename=stored.filename, content_type=fact.content_type, width=fact.width,
            height=fact.height, size_bytes=stored.received.size, sha256=result.sha256,
            phash=fact.phash, dhash=fact.dhash, ahash=fact.ahash, whash=fact.whash,
            colorhash=fact.colorhash, hash_version=HASH_VERSION, signals=fact.signals,
            features=fact.features,
            storage_key=stored.received.storage_key,
            public_storage_key=result.public_copy.storage_key if result.public_copy else None,
            public_size_bytes=result.public_copy.size if result.public_copy else None,
            public_sha256=result.public_copy.sha256 if result.public_copy else None,
            thumbnails=(result.thumbnail,) if result.thumbnail else (),
        )
        for stored, result, meta in zip(batch.files, results, metadata, strict=True)
        for fact in (result.facts,)
    ]


async def commit(pool: Pool, queries: Queries, owner_id: UUID,
                 new: list[NewImage]) -> list[Record]:
    """Write the batch's rows in one transaction (services.images.create_images)."""
    async with pool.acquire() as conn:
        rows = await images.create_images(conn, queries, owner_id, new)
    metrics.images_stored(len(rows))
    return rows
