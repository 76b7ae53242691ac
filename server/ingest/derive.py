"""What an upload's analysis derives and stores beside the original: the copy without
location served to everyone but the owner (when the original holds a location or metadata
that might), and the small thumbnail. Every key is added to the batch's written keys before
its object is written, so that an upload that fails removes it too.
"""

from __future__ import annotations

import asyncio
import os
import struct
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from ..imaging import CorruptImage
from ..imaging.privacy import strip_location
from ..imaging.thumbnails import Thumbnail
from ..services import thumbnails
from ..services.thumbnails import StoredThumbnail
from ..storage import Storage, new_key
from .analyse import sha256_of

CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class PublicCopy:
    """The stored copy without GPS position, served to everyone but the owner."""

    storage_key: str
    size: int
    sha256: bytes


def clean_copy(path: Path, fmt: str) -> Path | None:
    """Runs in the CPU pool: a temporary file holding the copy without location (the caller
    stores and removes it), or None when the original holds nothing to remove."""
    fd, copy_name = tempfile.mkstemp(prefix="imagerepo-nogps-")
    os.close(fd)
    copy = Path(copy_name)
    try:
        if strip_location(path, copy, fmt):
            return copy
    except (OSError, ValueError, SyntaxError, struct.error) as exc:
        copy.unlink(missing_ok=True)
        raise CorruptImage(f"its metadata cannot be rewritten: {exc}") from exc
    copy.unlink(missing_ok=True)
    return None


async def _store_copy(storage: Storage, written_keys: list[str], copy: Path) -> PublicCopy:
    async def chunks() -> AsyncIterator[bytes]:
        with copy.open("rb") as file:
            while block := await asyncio.to_thread(file.read, CHUNK):
                yield block

    sha256, size = await asyncio.to_thread(sha256_of, copy)
    public_key = new_key("-nogps")
    written_keys.append(public_key)
    await storage.put(public_key, chunks())
    return PublicCopy(public_key, size, sha256)


async def public_copy(storage: Storage, written_keys: list[str],
                      copy: Path | None) -> PublicCopy | None:
    """Store the copy without location `clean_copy` made, and remove its temporary file;
    None when there is none (the original can be shown to all)."""
    if copy is None:
        return None
    try:
        return await _store_copy(storage, written_keys, copy)
    finally:
        await asyncio.to_thread(copy.unlink, True)


async def small_thumbnail(storage: Storage, written_keys: list[str],
                          thumbnail: Thumbnail | None) -> StoredThumbnail | None:
    """The small thumbnail the analysis made, stored (None when none was asked for)."""
    if thumbnail is None:
        return None
    return await thumbnails.store(storage, thumbnail, written_keys)
