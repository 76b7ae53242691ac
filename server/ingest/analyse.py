"""Analysing a received file in the CPU pool: its SHA-256 and the image pipeline (format
check, pixel limit, hashes, region signals, local features, the small thumbnail). The same
steps serve uploads, search-by-image queries and the rehash backfill.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor
from pathlib import Path

from ..cpu import run_cpu
from ..errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from ..imaging import ImageFacts, ImageRejected, TooManyPixels, UnsupportedFormat, analyse

# Stored images passed the limit in force when they were uploaded.
STORED_MAX_PIXELS = 10**9


def sha256_of(path: Path) -> tuple[bytes, int]:
    """The file's SHA-256 and size, read a block at a time."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while block := file.read(1024 * 1024):
            digest.update(block)
            size += len(block)
    return digest.digest(), size


def digest_and_analyse(path: Path, max_pixels: int, fmt: str,
                       thumbnail: bool) -> tuple[ImageFacts, bytes]:
    """An upload's facts (with the small thumbnail when asked) and the SHA-256 of its bytes.
    Synchronous: the caller runs it in the CPU pool. Raises ImageRejected."""
    sha256, _ = sha256_of(path)
    return analyse(path, max_pixels=max_pixels, expected_format=fmt, thumbnail=thumbnail), sha256


async def analyse_stored(cpu: Executor, path: Path) -> ImageFacts:
    """A stored original's facts, as an upload today would get them (the rehash backfill)."""
    return await run_cpu(cpu, analyse, path, max_pixels=STORED_MAX_PIXELS)


async def analyse_query(cpu: Executor, path: str, fmt: str, label: str, max_pixels: int, *,
                        variants: bool, robust: bool) -> ImageFacts:
    """A search-by-image query's facts: with the rotations' and flips' pHashes when
    `variants`, and with the region variants and local features when `robust` (20 ms of work
    a query). A rejected image is the HTTP error naming the query's part."""
    try:
        return await run_cpu(cpu, analyse, path, max_pixels=max_pixels, expected_format=fmt,
                             variants=variants, query=robust, features=robust)
    except ImageRejected as exc:
        details = {"parts": {label: str(exc)}}
        if isinstance(exc, UnsupportedFormat):
            raise UnsupportedMediaType(f"{label}: {exc}", details=details) from None
        if isinstance(exc, TooManyPixels):
            raise PayloadTooLarge(f"{label}: {exc}", details=details) from None
        raise ValidationFailed(f"{label}: {exc}", details=details) from None
