"""Any storage back-end, each operation timed and its failures counted (metrics), and with
tracing on a span for each (`storage.get`, ...: opening a reader, not reading it)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..observability import metrics, tracing
from .base import InvalidRange, ObjectInfo, ObjectNotFound, ObjectReader, Storage

# Answers, not failures: the caller asked for something that is not there.
_EXPECTED = (ObjectNotFound, InvalidRange)


@contextmanager
def _measured(operation: str) -> Iterator[None]:
    started = time.perf_counter()
    failed = False
    answer: BaseException | None = None
    with tracing.span(f"storage.{operation}", **{"storage.operation": operation}):
        try:
            yield
        except _EXPECTED as exc:
            answer = exc  # raised below, once the span has ended as a success
        except BaseException:
            failed = True  # the span records it, and ends as an error
            raise
        finally:
            metrics.storage_operation(operation, time.perf_counter() - started, failed)
    if answer is not None:
        raise answer


class MeasuredStorage:
    """Delegates to `inner`; a reader's bytes are not timed (the download's pace is the
    client's), only opening it."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner

    def local_path(self, key: str) -> Path | None:
        return self.inner.local_path(key)

    def describe(self) -> str:
        return self.inner.describe()

    async def put(self, key: str, chunks: AsyncIterable[bytes], *,
                  content_type: str | None = None, durable: bool = True) -> ObjectInfo:
        with _measured("put"):
            return await self.inner.put(key, chunks, content_type=content_type,
                                        durable=durable)

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> ObjectReader:
        with _measured("get"):
            return await self.inner.get(key, start=start, end=end)

    async def head(self, key: str) -> ObjectInfo | None:
        with _measured("head"):
            return await self.inner.head(key)

    async def download_url(self, key: str, *, content_type: str, disposition: str,
                           cache_control: str, expires: int) -> str | None:
        with _measured("presign"):
            return await self.inner.download_url(key, content_type=content_type,
                                                 disposition=disposition,
                                                 cache_control=cache_control, expires=expires)

    async def exists(self, key: str) -> bool:
        with _measured("head"):
            return await self.inner.exists(key)

    async def delete(self, key: str) -> None:
        with _measured("delete"):
            await self.inner.delete(key)

    async def check(self) -> None:
        with _measured("check"):
            await self.inner.check()

    def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        return self.inner.list(prefix)
