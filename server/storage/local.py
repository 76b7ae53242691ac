"""Object storage in a local folder: one file per key, written atomically."""

from __future__ import annotations

import asyncio
import os
import stat
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar
from urllib.parse import unquote, urlsplit

from .base import (
    CHUNK_SIZE,
    ClosingReader,
    ObjectInfo,
    ObjectNotFound,
    StorageUnavailable,
    resolve_range,
    validate_key,
)

# Temporary files live inside the root so os.replace() never crosses a file system.
TMP_DIR = ".tmp"
# Opening a key that is a directory, or under a file, means the object isn't there.
_MISSING = (FileNotFoundError, IsADirectoryError, NotADirectoryError)

P = ParamSpec("P")
T = TypeVar("T")


async def _off_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run blocking `fn` in a thread; if cancelled, still wait for the thread to finish.

    A thread can't be interrupted, so returning early would let the caller's cleanup
    race it (e.g. unlink a temp file that the thread is about to rename).
    """
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})
        if not task.cancelled():
            task.exception()  # mark as retrieved: the cancellation is what matters now
        raise


def root_from_url(url: str) -> Path:
    """`file:///abs/dir` (percent-encoded, as Path.as_uri() writes it) -> Path."""
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise ValueError(f"expected a file:///absolute/dir URL, got {url!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"file storage URL takes no query or fragment: {url!r}")
    path = Path(unquote(parts.path))
    if not path.is_absolute() or path == Path("/"):
        raise ValueError(f"file storage URL needs an absolute directory: {url!r}")
    return path


class LocalReader(ClosingReader):
    """Streams part of a file in CHUNK_SIZE pieces, reading off the event loop."""

    def __init__(self) -> None:
        self._file: BinaryIO | None = None
        self.size = self.start = self.length = 0

    def _open(self, path: Path, start: int, end: int | None) -> None:
        """Blocking. The file is kept at once, so close() finds it whatever fails next."""
        self._file = path.open("rb")
        st = os.fstat(self._file.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(path)
        self.size = st.st_size
        self.start, self.length = resolve_range(st.st_size, start, end)
        self._file.seek(self.start)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self.length
        while left > 0 and self._file is not None:
            chunk = await _off_loop(self._file.read, min(CHUNK_SIZE, left))
            if not chunk:  # the file shrank under us; serve what there is
                break
            left -= len(chunk)
            yield chunk

    async def close(self) -> None:
        if self._file is not None:
            await _off_loop(self._file.close)


class _TempFile:
    """A put in progress: a file under <root>/.tmp, renamed into place on commit.

    Its methods block (run them off the loop); the object exists before the file does,
    so discard() can clean up after a failure or cancellation at any step.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: BinaryIO | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)  # in case someone removed it
        self._file = self.path.open("xb")

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        self._file.write(chunk)

    def commit(self, dest: Path, durable: bool = True) -> os.stat_result:
        # fsync before the rename so a crash can't leave a complete-looking short file,
        # and fsync the directory so the rename itself survives a crash.
        assert self._file is not None
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())
        self._file.close()
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.path, dest)
        if durable:
            dir_fd = os.open(dest.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return dest.stat()

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
        self.path.unlink(missing_ok=True)


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / TMP_DIR

    @classmethod
    async def open(cls, url: str) -> LocalStorage:
        storage = cls(root_from_url(url))
        await _off_loop(storage._tmp.mkdir, parents=True, exist_ok=True)
        return storage

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def describe(self) -> str:
        return self.root.as_uri()

    def _path(self, key: str) -> Path:
        validate_key(key)
        if key.split("/", 1)[0] == TMP_DIR:
            raise ValueError(f"storage key must not start with {TMP_DIR}/: {key!r}")
        return self.root.joinpath(*key.split("/"))

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None,
        durable: bool = True,
    ) -> ObjectInfo:
        # content_type is not kept: the database records it, a file system can't.
        path = self._path(key)
        temp = _TempFile(self._tmp / f"{uuid.uuid4().hex}.part")
        try:
            await _off_loop(temp.open)
            async for chunk in chunks:
                if chunk:
                    await _off_loop(temp.write, chunk)
            st = await _off_loop(temp.commit, path, durable)
        except BaseException:  # includes CancelledError: never leave a temp file behind
            await _off_loop(temp.discard)
            raise
        return ObjectInfo(key=key, size=st.st_size, modified=_utc(st.st_mtime))

    async def download_url(self, key: str, *, content_type: str, disposition: str,
                           cache_control: str, expires: int) -> str | None:
        return None  # the bytes are on this machine: the server streams them itself

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> LocalReader:
        path = self._path(key)
        reader = LocalReader()
        try:
            await _off_loop(reader._open, path, start, end)
        except BaseException as exc:
            await reader.close()
            if isinstance(exc, _MISSING):
                raise ObjectNotFound(key) from None
            raise
        return reader

    async def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = await _off_loop(path.stat)
        except _MISSING:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        return ObjectInfo(key=key, size=st.st_size, modified=_utc(st.st_mtime))

    async def exists(self, key: str) -> bool:
        return await self.head(key) is not None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await _off_loop(path.unlink)
        except _MISSING:
            pass

    async def check(self) -> None:
        ok = await _off_loop(lambda: self._tmp.is_dir() and os.access(self._tmp, os.W_OK))
        if not ok:
            raise StorageUnavailable(f"{self.describe()} is not a writable storage folder")

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        # Depth-first, one scandir per directory off the loop; directories that can't
        # hold a matching key are skipped, and the temp folder is never entered.
        pending = [""]
        while pending:
            rel_dir = pending.pop()
            subdirs = []
            for name, is_dir, size, mtime in await _off_loop(_scan, self.root / rel_dir):
                key = f"{rel_dir}/{name}" if rel_dir else name
                if is_dir:
                    if key != TMP_DIR and _may_contain(key, prefix):
                        subdirs.append(key)
                elif key.startswith(prefix):
                    yield ObjectInfo(key=key, size=size, modified=_utc(mtime))
            pending.extend(reversed(subdirs))  # a stack: visit them in name order


def _may_contain(dir_key: str, prefix: str) -> bool:
    return (dir_key + "/").startswith(prefix) or prefix.startswith(dir_key + "/")


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


# Blocking: run in a worker thread.
def _scan(directory: Path) -> list[tuple[str, bool, int, float]]:
    """(name, is_dir, size, mtime) of each entry; a vanished directory is empty."""
    found: list[tuple[str, bool, int, float]] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        found.append((entry.name, True, 0, 0.0))
                    elif entry.is_file(follow_symlinks=False):
                        st = entry.stat(follow_symlinks=False)
                        found.append((entry.name, False, st.st_size, st.st_mtime))
                except FileNotFoundError:  # deleted while we looked
                    continue
    except _MISSING:
        return []
    found.sort()
    return found
