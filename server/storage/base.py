"""The object-storage contract shared by the local-folder and S3 back-ends."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

# Size of the chunks readers hand out; small enough to keep memory flat per download.
CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime  # tz-aware UTC


class StorageError(Exception):
    """Base of every error a storage back-end raises on purpose."""


class ObjectNotFound(StorageError):
    """The key does not exist."""


class StorageUnavailable(StorageError):
    """The back-end is unreachable or refuses service; the API answers 503."""


class InvalidRange(StorageError):
    """The requested range starts beyond the end of the object."""


class ClosingReader:
    """The context-manager half of a reader: ``async with`` closes it."""

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class ObjectReader(Protocol):
    """A download: an async iterator of chunks and an async context manager."""

    size: int  # full object size
    start: int  # first byte served
    length: int  # bytes that will be served

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def close(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Storage(Protocol):
    def local_path(self, key: str) -> Path | None:
        """Where a stored object is on this machine's disk, if the back-end is a folder:
        readers in threads can then use it directly instead of a copy."""
        ...

    def describe(self) -> str:
        """Where objects live, for logs; never includes credentials."""
        ...

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None,
        durable: bool = True,
    ) -> ObjectInfo:
        """Store the stream under `key` atomically; nothing is left behind on failure.
        `durable=False`: a crash of the machine may lose the object or cut it short (for
        derivatives that are checked when read and made again, such as thumbnails)."""
        ...

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> ObjectReader:
        """Open `key` for reading bytes start..end (inclusive, like HTTP Range)."""
        ...

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def download_url(self, key: str, *, content_type: str, disposition: str,
                           cache_control: str, expires: int) -> str | None:
        """A short-lived URL from which a client fetches the object directly, the response
        headers set as given; None when the back-end has no such thing (a local folder)."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None:
        """Remove `key`; a missing key is not an error."""
        ...

    async def check(self) -> None:
        """Readiness probe: raise StorageUnavailable when the back-end can't serve."""
        ...

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        """Every stored object whose key starts with `prefix` (in-progress puts excluded)."""
        ...


def new_key(suffix: str = "") -> str:
    """A fresh random key. Every object gets its own (a thumbnail's or a copy's key never
    starts with its original's): a presigned URL names its key, and must reveal no other."""
    return f"{uuid.uuid4()}{suffix}"


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative slash-separated key, else raise ValueError.

    Both back-ends use this so a key valid on one is valid on the other; the local
    back-end relies on it to keep every path inside its root.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("storage key must be a non-empty string")
    if "\\" in key or "\x00" in key:
        raise ValueError(f"storage key must not contain backslashes or NUL: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"storage key must be relative: {key!r}")
    # Empty and "." segments would alias another key on a file system ("a//b" is "a/b").
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"storage key has an empty, '.' or '..' segment: {key!r}")
    return key


def resolve_range(size: int, start: int, end: int | None) -> tuple[int, int]:
    """Turn (start, inclusive end) into (start, length) for an object of `size` bytes.

    `end` beyond the object is clamped; a start at or past the end raises InvalidRange,
    except that the whole of an empty object (start 0, no end) reads as nothing.
    """
    check_range(start, end)
    if start == 0 and end is None:
        return 0, size
    if start >= size:
        raise InvalidRange(f"range start {start} is beyond the object size {size}")
    last = size - 1 if end is None else min(end, size - 1)
    return start, last - start + 1


def check_range(start: int, end: int | None) -> None:
    """Reject ranges that are malformed whatever the object size."""
    if start < 0:
        raise ValueError(f"range start must be >= 0, got {start}")
    if end is not None and end < start:
        raise ValueError(f"range end {end} is before its start {start}")
