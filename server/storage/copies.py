"""Whole objects as local files or bytes, for work that needs them at once (a decoder)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from .base import ObjectNotFound, Storage


@contextlib.asynccontextmanager
async def local_copy(storage: Storage, key: str) -> AsyncIterator[Path]:
    """A path to the object's bytes: the folder back-end's own file, or a temporary copy."""
    local = storage.local_path(key)
    if local is not None:
        if not await asyncio.to_thread(local.exists):
            raise ObjectNotFound(key)
        yield local
        return
    fd, name = tempfile.mkstemp(prefix="imagerepo-copy-")
    try:
        with os.fdopen(fd, "wb") as out:
            async with await storage.get(key) as reader:
                async for chunk in reader:
                    await asyncio.to_thread(out.write, chunk)
        yield Path(name)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


async def read_all(storage: Storage, key: str) -> bytes:
    """A small object's bytes (a thumbnail): raises ObjectNotFound."""
    data = bytearray()
    async with await storage.get(key) as reader:
        async for chunk in reader:
            data += chunk
    return bytes(data)


async def put_bytes(storage: Storage, key: str, data: bytes, content_type: str,
                    durable: bool = True) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    await storage.put(key, chunks(), content_type=content_type, durable=durable)
