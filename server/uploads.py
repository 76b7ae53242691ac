"""Reading an upload request: multipart parts streamed to storage, each file analysed in
the CPU pool while the next one arrives. All or nothing: ``UploadBatch.discard`` removes
every object the request wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import struct
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

from .cpu import run_cpu
from .errors import (
    BadRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)
from .imaging import (
    ACCEPTED,
    CorruptImage,
    ImageFacts,
    ImageRejected,
    TooManyPixels,
    UnsupportedFormat,
    analyse,
    header_dimensions,
    sniff_format,
)
from .imaging.privacy import strip_location
from .request_body import Pace, stalled
from .services import thumbnails
from .services.thumbnails import StoredThumbnail
from .storage import Storage, new_key

CHUNK = 256 * 1024  # fewer, larger reads: each one costs a trip through the event loop
SNIFF_BYTES = 64 * 1024  # enough for the magic bytes and, nearly always, the dimensions
FIELD_MAX_BYTES = 64 * 1024
# Per-file metadata as JSON: room for 100 files with long descriptions.
FIELD_MAX_BYTES_OF = {"metadata": 1024 * 1024}
EXTRA_PARTS = 50  # fields allowed beside the files, repeated tags included
FIELDS = ("title", "description", "tags", "visibility", "metadata")


@dataclass(frozen=True, slots=True)
class Analysis:
    facts: ImageFacts
    sha256: bytes
    public_copy: PublicCopy | None = None
    thumbnail: StoredThumbnail | None = None


@dataclass(frozen=True, slots=True)
class PublicCopy:
    """The stored copy without GPS position, served to everyone but the owner."""

    storage_key: str
    size: int
    sha256: bytes


@dataclass(slots=True)
class StoredFile:
    label: str  # names the part in errors: 'file 2 ("cat.png")'
    filename: str
    storage_key: str
    size: int
    analysis: asyncio.Future[Analysis]


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


@dataclass(frozen=True, slots=True)
class Limits:
    """One request's limits (and its pace: make one Limits per request)."""

    max_file_bytes: int
    max_files: int
    max_pixels: int
    # A client that sends nothing for this long is cut off (408) and its upload undone.
    read_timeout: float = 30.0
    # After read_timeout seconds of waiting, the client must have kept up this many bytes a
    # second on average, or it is cut off (408): trickling a few bytes just often enough
    # would otherwise hold a connection, a spool file and a multipart upload for hours.
    min_rate: int = 0
    # Make and store the small thumbnail with each file (part of the all or nothing).
    thumbnails: bool = True
    pace: Pace = field(default_factory=Pace)

    def check_pace(self) -> None:
        self.pace.check(self.min_rate, self.read_timeout)


def _malformed(exc: BaseException) -> BadRequest:
    return BadRequest("Malformed multipart body", details={"_body": [str(exc).strip()[:200]]})


def _boundary(request: web.Request) -> str:
    return parse_mimetype(request.headers.get("Content-Type", "")).parameters.get("boundary", "")


async def open_multipart(request: web.Request) -> MultipartReader:
    """The request's multipart reader; 400 when its Content-Type has no usable boundary."""
    try:
        if not request.content_type.startswith("multipart/") or not _boundary(request):
            raise ValueError("no boundary")
        return await request.multipart()
    except (KeyError, ValueError, AssertionError) as exc:
        raise BadRequest("Malformed multipart body",
                         details={"content_type": ["multipart/form-data needs a boundary."]}
                         ) from exc


async def _chunk(part: BodyPartReader, limits: Limits) -> bytes:
    started = time.monotonic()
    try:
        async with asyncio.timeout(limits.read_timeout):
            data = await part.read_chunk(CHUNK)
    except TimeoutError:
        raise stalled(limits.read_timeout) from None
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        # aiohttp's reader on a body that ends without its closing boundary.
        raise _malformed(exc) from None
    limits.pace.waited += time.monotonic() - started
    limits.pace.received += len(data)
    limits.check_pace()
    return data


def safe_filename(raw: str | None, fallback: str) -> str:
    """The client's file name without directories or control characters (for display only)."""
    name = (raw or "").replace("\\", "/")
    name = PurePosixPath(name).name
    try:  # aiohttp keeps undecodable bytes as surrogate escapes
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        name = name.encode("utf-8", "replace").decode("utf-8")
    name = "".join(ch for ch in unicodedata.normalize("NFC", name)
                   if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    return name.strip()[:255] or fallback


async def _read_field(part: BodyPartReader, limits: Limits,
                      max_bytes: int = FIELD_MAX_BYTES, used: int = 0) -> str:
    """A field's text; `used`: bytes its earlier parts of the same name hold."""
    data = bytearray()
    while chunk := await _chunk(part, limits):
        data += chunk
        if used + len(data) > max_bytes:
            raise PayloadTooLarge(f"Field {part.name!r} is larger than {max_bytes} bytes",
                                  details={str(part.name): ["Too large."]})
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed(f"Field {part.name!r} is not UTF-8",
                               details={str(part.name): ["Not valid UTF-8."]}) from None


async def _read_field_part(part: BodyPartReader, limits: Limits,
                           fields: Mapping[str, list[str]]) -> str:
    """One part of an upload's field. A field with a limit of its own (`metadata`, which may
    come as one part per file) is bounded by it in all its parts together: fifty parts
    cannot hold fifty times the limit."""
    name = str(part.name)
    if name not in FIELD_MAX_BYTES_OF:
        return await _read_field(part, limits)
    used = sum(len(text.encode("utf-8")) for text in fields.get(name, []))
    return await _read_field(part, limits, FIELD_MAX_BYTES_OF[name], used)


async def _read_prefix(part: BodyPartReader, limits: Limits) -> bytes:
    prefix = bytearray()
    while len(prefix) < SNIFF_BYTES and (chunk := await _chunk(part, limits)):
        prefix += chunk
    return bytes(prefix)


def _check_header(label: str, prefix: bytes, limits: Limits) -> str:
    """The format from the bytes, and the pixel count from the header, before any decoding."""
    fmt = sniff_format(prefix)
    if fmt is None:
        raise UnsupportedMediaType(
            f"{label} is not an image of an accepted format",
            details={"part": label, "accepted": sorted(ACCEPTED.values())},
        )
    dimensions = header_dimensions(prefix)
    if dimensions is not None and dimensions[0] * dimensions[1] > limits.max_pixels:
        raise PayloadTooLarge(
            f"{label} has {dimensions[0]}x{dimensions[1]} pixels, more than {limits.max_pixels}",
            details={"part": label, "max_pixels": limits.max_pixels},
        )
    return fmt


@dataclass(frozen=True, slots=True)
class Spool:
    """A temporary file holding one upload's bytes until the analysis has read them."""

    path: str
    file: BinaryIO

    @classmethod
    def create(cls) -> Spool:
        fd, path = tempfile.mkstemp(prefix="imagerepo-upload-")
        return cls(path, os.fdopen(fd, "wb"))

    def remove(self) -> None:
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


async def _receive_file(
    part: BodyPartReader, index: int, batch: UploadBatch, cpu: Executor, limits: Limits
) -> StoredFile:
    filename = safe_filename(part.filename, fallback=f"image-{index}")
    label = f'file {index} ("{filename}")'
    prefix = await _read_prefix(part, limits)
    fmt = _check_header(label, prefix, limits)
    key = new_key()
    # A folder back-end's file can be analysed in place; otherwise keep a spool copy.
    local_path = batch.storage.local_path(key)
    spool = None if local_path else await asyncio.to_thread(Spool.create)
    size = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal size
        data = prefix
        while data:
            size += len(data)
            if size > limits.max_file_bytes:
                raise PayloadTooLarge(
                    f"{label} is larger than {limits.max_file_bytes} bytes",
                    details={"part": label, "max_bytes": limits.max_file_bytes},
                )
            if spool is not None:
                await asyncio.to_thread(spool.file.write, data)
            yield data
            data = await _chunk(part, limits)

    try:
        batch.written_keys.append(key)  # before put: a cancelled put may still land
        await batch.storage.put(key, chunks(), content_type=ACCEPTED[fmt])
        if spool is not None:
            await asyncio.to_thread(spool.file.close)
    except BaseException:
        if spool is not None:
            await asyncio.to_thread(spool.remove)
        raise
    path = local_path if spool is None else Path(spool.path)
    assert path is not None
    analysis = asyncio.ensure_future(_analyse(path, spool, fmt, cpu, limits, batch))
    return StoredFile(label, filename, key, size, analysis)


def _sha256_of(path: Path) -> tuple[bytes, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while block := file.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return digest.digest(), size


def _digest_and_analyse(
    path: Path, max_pixels: int, fmt: str, thumbnail: bool
) -> tuple[ImageFacts, bytes, Path | None]:
    """Runs in the CPU pool: the SHA-256 of the bytes, the image pipeline (with the small
    thumbnail when asked), and a copy without GPS position when the image has one (its path;
    the caller stores and removes it)."""
    sha256, _ = _sha256_of(path)
    facts = analyse(path, max_pixels=max_pixels, expected_format=fmt, thumbnail=thumbnail)
    fd, copy_name = tempfile.mkstemp(prefix="imagerepo-nogps-")
    os.close(fd)
    copy = Path(copy_name)
    try:
        if strip_location(path, copy, fmt):
            return facts, sha256, copy
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        copy.unlink(missing_ok=True)
        raise CorruptImage(f"its metadata cannot be rewritten: {exc}") from exc
    copy.unlink(missing_ok=True)
    return facts, sha256, None


async def _store_copy(batch: UploadBatch, copy: Path) -> PublicCopy:
    async def chunks() -> AsyncIterator[bytes]:
        with copy.open("rb") as file:
            while block := await asyncio.to_thread(file.read, CHUNK):
                yield block

    sha256, size = await asyncio.to_thread(_sha256_of, copy)
    public_key = new_key("-nogps")
    batch.written_keys.append(public_key)
    await batch.storage.put(public_key, chunks())
    return PublicCopy(public_key, size, sha256)


async def _analyse(
    path: Path, spool: Spool | None, fmt: str, cpu: Executor, limits: Limits,
    batch: UploadBatch,
) -> Analysis:
    copy: Path | None = None
    try:
        facts, sha256, copy = await run_cpu(cpu, _digest_and_analyse, path, limits.max_pixels,
                                            fmt, limits.thumbnails)
        public = await _store_copy(batch, copy) if copy is not None else None
        thumbnail = (await thumbnails.store(batch.storage, facts.thumbnail,
                                            batch.written_keys)
                     if facts.thumbnail is not None else None)
        return Analysis(facts, sha256, public, thumbnail)
    finally:
        if spool is not None:
            await asyncio.to_thread(spool.remove)
        if copy is not None:
            await asyncio.to_thread(copy.unlink, True)


async def _next_part(reader: MultipartReader, limits: Limits) -> object:
    try:
        async with asyncio.timeout(limits.read_timeout):
            part = await reader.next()
        if isinstance(part, BodyPartReader) and part.name is None:
            # Every form-data part has a name (RFC 7578); a nameless one is what aiohttp
            # makes of a body cut off right after a boundary line.
            raise ValueError("a part without a name (or a body cut off after a boundary)")
        return part
    except TimeoutError:
        raise stalled(limits.read_timeout) from None
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        # aiohttp's parser refuses malformed framing and headers (control characters, ...).
        raise _malformed(exc) from None


async def _upload_parts(reader: MultipartReader, limits: Limits) -> AsyncIterator[BodyPartReader]:
    """An upload's parts in order: flat (no nested multipart), and not too many."""
    parts = 0
    while (part := await _next_part(reader, limits)) is not None:
        if not isinstance(part, BodyPartReader):
            raise ValidationFailed("Nested multipart bodies are not supported",
                                   details={"_body": ["Nested multipart."]})
        parts += 1
        if parts > limits.max_files + EXTRA_PARTS:
            raise PayloadTooLarge("Too many parts in one request",
                                  details={"max_files": limits.max_files})
        yield part


async def read_upload(
    reader: MultipartReader, batch: UploadBatch, cpu: Executor, limits: Limits
) -> None:
    """Stream every part into ``batch``: files to storage (and analysis), fields to text."""
    async for part in _upload_parts(reader, limits):
        if part.name == "file":
            if len(batch.files) >= limits.max_files:
                raise PayloadTooLarge(f"At most {limits.max_files} files per request",
                                      details={"max_files": limits.max_files})
            batch.files.append(await _receive_file(part, len(batch.files) + 1, batch, cpu, limits))
        elif part.name in FIELDS:
            batch.fields.setdefault(part.name, []).append(
                await _read_field_part(part, limits, batch.fields))
        else:
            raise ValidationFailed(f"Unknown field {part.name!r}",
                                   details={str(part.name): ["Unknown field."]})


async def upload_fingerprint(
    reader: MultipartReader, limits: Limits
) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """An upload's fields and its files' (name, SHA-256), read under the same limits as an
    upload but stored nowhere: what a replayed Idempotency-Key request is compared by."""
    fields: dict[str, list[str]] = {}
    files: list[tuple[str, str]] = []
    async for part in _upload_parts(reader, limits):
        if part.name == "file":
            label = f'file {len(files) + 1}'
            digest, size = hashlib.sha256(), 0
            while data := await _chunk(part, limits):
                size += len(data)
                if size > limits.max_file_bytes:
                    raise PayloadTooLarge(f"{label} is larger than {limits.max_file_bytes} bytes",
                                          details={"part": label,
                                                   "max_bytes": limits.max_file_bytes})
                digest.update(data)
            files.append((safe_filename(part.filename, f"image-{len(files) + 1}"),
                          digest.hexdigest()))
        else:
            fields.setdefault(str(part.name), []).append(
                await _read_field_part(part, limits, fields))
    return fields, files


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


async def read_query_image(
    reader: MultipartReader, cpu: Executor, limits: Limits
) -> tuple[ImageFacts, dict[str, str]]:
    """A search-by-image request: one `file` part, analysed exactly as an upload (limits,
    sniffing, orientation, hashes) but never stored; and its other fields as text. The
    rotations' and flips' pHashes are computed when `orientations` is `all`."""
    fields: dict[str, str] = {}
    spooled: tuple[Spool, str, str] | None = None
    parts = 0
    try:
        while (part := await _next_part(reader, limits)) is not None:
            if not isinstance(part, BodyPartReader):
                raise ValidationFailed("Nested multipart bodies are not supported",
                                       details={"_body": ["Nested multipart."]})
            parts += 1
            if parts > EXTRA_PARTS:
                raise PayloadTooLarge("Too many parts in one request",
                                      details={"max_parts": EXTRA_PARTS})
            if part.name == "file":
                if spooled is not None:
                    raise ValidationFailed("One query image at a time",
                                           details={"file": ["Only one file part is allowed."]})
                spooled = await _spool_query_file(part, limits)
            elif part.name:
                if part.name in fields:
                    raise ValidationFailed(f"{part.name} given more than once",
                                           details={part.name: ["Given twice."]})
                fields[part.name] = await _read_field(part, limits)
        if spooled is None:
            raise ValidationFailed("No query image",
                                   details={"file": ["A file part is required."]})
        spool, fmt, label = spooled
        variants = fields.get("orientations") == "all"
        # The region variants only serve robust matching (20 ms of work a query).
        robust = fields.get("match", "robust") != "exact"
        return await _analyse_query(spool, fmt, label, cpu, limits, variants, robust), fields
    finally:
        if spooled is not None:
            await asyncio.to_thread(spooled[0].remove)


async def _spool_query_file(part: BodyPartReader, limits: Limits) -> tuple[Spool, str, str]:
    label = f'the query image ("{safe_filename(part.filename, fallback="image")}")'
    prefix = await _read_prefix(part, limits)
    fmt = _check_header(label, prefix, limits)
    spool = await asyncio.to_thread(Spool.create)
    try:
        size, data = 0, prefix
        while data:
            size += len(data)
            if size > limits.max_file_bytes:
                raise PayloadTooLarge(f"{label} is larger than {limits.max_file_bytes} bytes",
                                      details={"part": label, "max_bytes": limits.max_file_bytes})
            await asyncio.to_thread(spool.file.write, data)
            data = await _chunk(part, limits)
        await asyncio.to_thread(spool.file.close)
    except BaseException:
        await asyncio.to_thread(spool.remove)
        raise
    return spool, fmt, label


async def _analyse_query(
    spool: Spool, fmt: str, label: str, cpu: Executor, limits: Limits, variants: bool,
    robust: bool,
) -> ImageFacts:
    try:
        return await run_cpu(cpu, analyse, spool.path, max_pixels=limits.max_pixels,
                             expected_format=fmt, variants=variants, query=robust,
                             features=robust)
    except ImageRejected as exc:
        details = {"parts": {label: str(exc)}}
        if isinstance(exc, UnsupportedFormat):
            raise UnsupportedMediaType(f"{label}: {exc}", details=details) from None
        if isinstance(exc, TooManyPixels):
            raise PayloadTooLarge(f"{label}: {exc}", details=details) from None
        raise ValidationFailed(f"{label}: {exc}", details=details) from None
