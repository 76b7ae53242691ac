"""Ingest: what turns a request's bytes into stored images, in four steps with a module
each.

- `read`: the multipart stream under the request's limits; each file sniffed from its first
  bytes and streamed to storage.
- `analyse`: each file's SHA-256 and the image pipeline (`imaging.analyse`), started as soon
  as the file is stored, while the next one arrives.
- `derive`: what is stored beside the original: the copy without location (made in the
  same CPU job as the analysis), the thumbnail.
- `commit`: all or nothing: the bad parts named in one error, the rows in one transaction,
  every object the request wrote removed on any failure.

Handlers call `ingest_upload` and `query_facts`; the rehash backfill calls
`analyse.analyse_stored`, the same pipeline as an upload.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from aiohttp import MultipartReader

from ..cpu import run_cpu
from ..db.pool import Pool
from ..db.queries import Queries, Record
from ..imaging import ImageFacts
from ..observability import metrics
from ..services.images import NewImage
from ..storage import Storage
from . import derive
from .analyse import analyse_query, digest_and_analyse
from .commit import Analysis, StoredFile, UploadBatch, analyses, commit, new_images
from .read import (
    Limits,
    ReceivedFile,
    open_multipart,
    read_query_image,
    read_upload,
    upload_fingerprint,
)

__all__ = ["Ingested", "Limits", "ingest_upload", "open_multipart", "query_facts",
           "upload_fingerprint"]


@dataclass(frozen=True, slots=True)
class Ingested:
    """A committed upload: its rows and what they were made from, in upload order."""

    rows: list[Record]
    images: list[NewImage]
    fields: dict[str, list[str]]
    files: list[tuple[str, str]]  # (file name, SHA-256 hex): what Idempotency-Key compares


def _analyse_and_clean(path: Path, fmt: str, max_pixels: int,
                       thumbnail: bool) -> tuple[ImageFacts, bytes, Path | None]:
    """One CPU job per file: its facts, digest and copy without location (a second job
    would wait again in the pool's queue, behind every other file's analysis)."""
    facts, sha256 = digest_and_analyse(path, max_pixels, fmt, thumbnail)
    return facts, sha256, derive.clean_copy(path, fmt)


async def _process(received: ReceivedFile, batch: UploadBatch, cpu: Executor,
                   limits: Limits) -> Analysis:
    """Analyse one stored file, then store its copy without location and its thumbnail."""
    job = asyncio.ensure_future(run_cpu(cpu, _analyse_and_clean, received.path,
                                        received.format, limits.max_pixels, limits.thumbnails))
    try:
        facts, sha256, clean = await asyncio.shield(job)
    except asyncio.CancelledError:
        # The pool's thread finishes the job anyway: its temporary copy is removed then.
        job.add_done_callback(_remove_copy)
        raise
    finally:
        await received.release()
    copy = await derive.public_copy(batch.storage, batch.written_keys, clean)
    thumbnail = await derive.small_thumbnail(batch.storage, batch.written_keys,
                                             facts.thumbnail)
    return Analysis(facts, sha256, copy, thumbnail)


def _remove_copy(job: asyncio.Future[tuple[ImageFacts, bytes, Path | None]]) -> None:
    if not job.cancelled() and job.exception() is None and (copy := job.result()[2]):
        copy.unlink(missing_ok=True)


async def ingest_upload(reader: MultipartReader, storage: Storage, cpu: Executor, pool: Pool,
                        queries: Queries, owner_id: UUID, limits: Limits) -> Ingested:
    """Read, analyse, derive and commit one upload request, all or nothing."""
    batch = UploadBatch(storage)
    try:
        async for received in read_upload(reader, storage, batch.written_keys, batch.fields,
                                          limits):
            batch.files.append(StoredFile(received, asyncio.ensure_future(
                _process(received, batch, cpu, limits))))
        results = await analyses(batch)
        new = new_images(batch, results)  # inside the try: a 422 here still discards all
        rows = await commit(pool, queries, owner_id, new)
    except BaseException:
        # Also on cancellation (a client that went away): shielded, so the clean-up finishes.
        await asyncio.shield(asyncio.ensure_future(batch.discard()))
        raise
    files = [(stored.filename, result.sha256.hex())
             for stored, result in zip(batch.files, results, strict=True)]
    return Ingested(rows, new, batch.fields, files)


async def query_facts(reader: MultipartReader, cpu: Executor,
                      limits: Limits) -> tuple[ImageFacts, dict[str, str]]:
    """A search-by-image request's image, analysed exactly as an upload (limits, sniffing,
    orientation, hashes) but never stored, and its other fields. The rotations' and flips'
    pHashes are computed when `orientations` is `all`; the region variants and local
    features unless `match` is `exact`."""
    query = await read_query_image(reader, limits)
    try:
        with metrics.image_search_stage("analysis"):
            facts = await analyse_query(
                cpu, query.spool.path, query.format, query.label, limits.max_pixels,
                variants=query.fields.get("orientations") == "all",
                robust=query.fields.get("match", "robust") != "exact")
    finally:
        await asyncio.to_thread(query.spool.remove)
    return facts, query.fields
