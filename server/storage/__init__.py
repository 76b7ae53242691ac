"""Object storage for image files: a local folder or an S3 bucket behind one protocol."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from .base import (
    CHUNK_SIZE,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    ObjectReader,
    Storage,
    StorageError,
    StorageUnavailable,
    new_key,
    validate_key,
)
from .local import LocalStorage, root_from_url
from .s3 import DEFAULT_PART_SIZE, MIN_PART_SIZE, S3Storage, parse_url

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "InvalidRange",
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectReader",
    "S3Storage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "new_key",
    "open_storage",
    "validate_key",
]


def open_storage(
    url: str, *, part_size: int = DEFAULT_PART_SIZE
) -> contextlib.AbstractAsyncContextManager[Storage]:
    """`file:///abs/dir` -> LocalStorage, `s3://bucket[/prefix]` -> S3Storage.

    The URL is checked now, so a bad setting fails before anything is opened; the
    returned context manager creates the folder or client (and bucket) on entry.
    """
    if url.startswith("file:"):
        root_from_url(url)
        return _open_local(url)
    if url.startswith("s3:"):
        bucket, prefix = parse_url(url)
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3 minimum)")
        return _open_s3(bucket, prefix, part_size)
    scheme = url.partition(":")[0] if ":" in url else ""  # not the URL: it may hold a secret
    raise ValueError(f"unsupported storage URL (scheme {scheme!r}); "
                     "expected file:///abs/dir or s3://bucket[/prefix]")


@contextlib.asynccontextmanager
async def _open_local(url: str) -> AsyncIterator[Storage]:
    yield await LocalStorage.open(url)


@contextlib.asynccontextmanager
async def _open_s3(bucket: str, prefix: str, part_size: int) -> AsyncIterator[Storage]:
    async with contextlib.AsyncExitStack() as stack:
        yield await S3Storage.open(stack, bucket, prefix, part_size=part_size)
