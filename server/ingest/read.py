"""Reading an upload request: multipart parts under the request's limits, each file
sniffed from its first bytes and streamed to storage (with a spool copy to analyse when the
storage is not a local folder), fields as text.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import time
import unicodedata
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.helpers import parse_mimetype
from aiohttp.http_exceptions import HttpProcessingError

from ..errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from ..imaging import ACCEPTED, header_dimensions, missing_decoder, sniff_format
from ..request_body import Pace, stalled
from ..storage import Storage, new_key

CHUNK = 256 * 1024  # fewer, larger reads: each one costs a trip through the event loop
SNIFF_BYTES = 64 * 1024  # enough for the magic bytes and, nearly always, the dimensions
FIELD_MAX_BYTES = 64 * 1024
# Per-file metadata as JSON: room for 100 files with long descriptions.
FIELD_MAX_BYTES_OF = {"metadata": 1024 * 1024}
EXTRA_PARTS = 50  # fields allowed beside the files, repeated tags included
FIELDS = ("title", "description", "tags", "visibility", "metadata")


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
    if (missing := missing_decoder(fmt)) is not None:
        raise UnsupportedMediaType(f"{label}: {missing}",
                                   details={"part": label, "format": fmt, "reason": missing})
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


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    """One file part, stored under `storage_key` and readable at `path` for its analysis."""

    label: str  # names the part in errors: 'file 2 ("cat.png")'
    filename: str
    storage_key: str
    size: int
    format: str  # as sniffed from its first bytes
    path: Path  # the stored file itself (folder back-end) or its spool copy
    spool: Spool | None

    async def release(self) -> None:
        """Remove the spool copy, once the analysis has read it."""
        if self.spool is not None:
            await asyncio.to_thread(self.spool.remove)


async def _receive_file(
    part: BodyPartReader, index: int, storage: Storage, written_keys: list[str], limits: Limits
) -> ReceivedFile:
    filename = safe_filename(part.filename, fallback=f"image-{index}")
    label = f'file {index} ("{filename}")'
    prefix = await _read_prefix(part, limits)
    fmt = _check_header(label, prefix, limits)
    key = new_key()
    # A folder back-end's file can be analysed in place; otherwise keep a spool copy.
    local_path = storage.local_path(key)
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
        written_keys.append(key)  # before put: a cancelled put may still land
        await storage.put(key, chunks(), content_type=ACCEPTED[fmt])
        if spool is not None:
            await asyncio.to_thread(spool.file.close)
    except BaseException:
        if spool is not None:
            await asyncio.to_thread(spool.remove)
        raise
    path = local_path if spool is None else Path(spool.path)
    assert path is not None
    return ReceivedFile(label, filename, key, size, fmt, path, spool)


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
    reader: MultipartReader, storage: Storage, written_keys: list[str],
    fields: dict[str, list[str]], limits: Limits,
) -> AsyncIterator[ReceivedFile]:
    """Stream every part: each file to storage (its key added to `written_keys` before it
    is written), yielded as soon as it is stored so that its analysis can start while the
    next one arrives; fields to text, into `fields`."""
    files = 0
    async for part in _upload_parts(reader, limits):
        if part.name == "file":
            if files >= limits.max_files:
                raise PayloadTooLarge(f"At most {limits.max_files} files per request",
                                      details={"max_files": limits.max_files})
            files += 1
            yield await _receive_file(part, files, storage, written_keys, limits)
        elif part.name in FIELDS:
            fields.setdefault(part.name, []).append(await _read_field_part(part, limits, fields))
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


@dataclass(frozen=True, slots=True)
class QueryImage:
    """A search-by-image request's file, spooled (the caller removes it), and its fields."""

    spool: Spool
    format: str
    label: str
    fields: dict[str, str]


async def read_query_image(reader: MultipartReader, limits: Limits) -> QueryImage:
    """A search-by-image request: one `file` part, under the same limits and sniffing as an
    upload but never stored, and its other fields as text."""
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
    except BaseException:
        if spooled is not None:
            await asyncio.to_thread(spooled[0].remove)
        raise
    spool, fmt, label = spooled
    return QueryImage(spool, fmt, label, fields)


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


