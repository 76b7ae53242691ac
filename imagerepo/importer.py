"""`imagerepo upload`: a folder of photos into the service, resumably.

The service is the source of truth: every image's SHA-256 is asked of it first, and what it
already holds is skipped, so running the same command again uploads only what is missing.
Small files travel together in multi-file requests, large ones alone; each request carries an
Idempotency-Key made from its files' digests, so a retry (or a rerun after Ctrl-C) of a request
whose answer was lost replays that answer instead of storing the files twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import signal
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from .api import Api, ApiError
from .display import Progress, human_bytes
from .files import Found, Problem, examine, sha256_of, walk

BATCH_FILES = 20
BATCH_BYTES = 8 * 1000 * 1000  # files above this go alone
LOOKUP_BATCH = 1000
# Errors that say something about the files themselves: retried one file at a time.
FILE_ERRORS = {413, 415, 422}


@dataclass(frozen=True, slots=True)
class Item:
    path: Path
    size: int
    sha256: str


LISTED = 20  # of each kind of file named in the text summary (--json lists all)


@dataclass
class Summary:
    uploaded: int = 0
    uploaded_bytes: int = 0
    already_there: int = 0
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)
    not_images: list[str] = field(default_factory=list)
    skipped_folders: list[str] = field(default_factory=list)  # not entered: no --recursive
    failed: list[dict[str, str]] = field(default_factory=list)
    interrupted: bool = False

    def json(self) -> dict[str, Any]:
        return {"uploaded": self.uploaded, "uploaded_bytes": self.uploaded_bytes,
                "already_there": self.already_there, "not_images": len(self.not_images),
                "not_image_paths": self.not_images, "skipped_folders": self.skipped_folders,
                "near_duplicates": self.near_duplicates, "failed": self.failed,
                "interrupted": self.interrupted}

    def text(self) -> str:
        lines = [f"uploaded {self.uploaded} ({human_bytes(self.uploaded_bytes)}); "
                 f"already there {self.already_there}; near-duplicates "
                 f"{len(self.near_duplicates)}; not images {len(self.not_images)}; "
                 f"failed {len(self.failed)}" + ("; interrupted" if self.interrupted else "")]
        lines += _listed([f"near-duplicate: {near['path']} looks like image {near['of']} "
                          f"(distance {near['distance']})" for near in self.near_duplicates])
        lines += _listed([f"not an image: {path}" for path in self.not_images])
        lines += _listed([f"failed: {failure['path']}: {failure['reason']}"
                          for failure in self.failed])
        if self.skipped_folders:
            count = len(self.skipped_folders)
            lines.append(f"  skipped {count} subfolder{'s' * (count != 1)} (--recursive "
                         f"takes them):")
            lines += _listed([str(path) for path in self.skipped_folders], indent="    ")
        if self.interrupted:
            lines.append("  the same command again uploads what is missing")
        return "\n".join(lines)


def _listed(lines: Sequence[str], indent: str = "  ") -> list[str]:
    more = [f"{indent}... and {len(lines) - LISTED} more (--json lists all)"]
    return [indent + line for line in lines[:LISTED]] + (more if len(lines) > LISTED else [])


@dataclass(frozen=True, slots=True)
class Options:
    visibility: str | None = None
    tags: tuple[str, ...] = ()
    concurrency: int = 4


def batches(items: Sequence[Item]) -> list[list[Item]]:
    """Consecutive small files together (at most BATCH_FILES, about BATCH_BYTES), large alone."""
    out: list[list[Item]] = []
    current: list[Item] = []
    size = 0
    for item in items:
        if item.size > BATCH_BYTES:
            out.append([item])
            continue
        if current and (len(current) >= BATCH_FILES or size + item.size > BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        out.append(current)
    return out


def idempotency_key(batch: Sequence[Item], options: Options) -> str:
    """The same files with the same options: the same key (a rerun replays, never repeats)."""
    material = json.dumps([[i.sha256 for i in batch], options.visibility, list(options.tags)])
    return "imagerepo-cli-" + hashlib.sha256(material.encode()).hexdigest()[:40]


def _form(batch: Sequence[Item], options: Options) -> Callable[[], aiohttp.FormData]:
    def make() -> aiohttp.FormData:
        form = aiohttp.FormData(default_to_multipart=True)
        if options.visibility:
            form.add_field("visibility", options.visibility)
        for tag in options.tags:
            form.add_field("tags", tag)
        for item in batch:
            # An open file: aiohttp streams it in chunks, never reading it whole.
            form.add_field("file", item.path.open("rb"), filename=item.path.name,
                           content_type="application/octet-stream")
        return form

    return make


class Importer:
    def __init__(self, api: Api, options: Options, progress_out: Any, quiet: bool) -> None:
        self.api = api
        self.options = options
        self.summary = Summary()
        self.progress_out = progress_out
        self.quiet = quiet

    async def run(self, paths: Sequence[Path], recursive: bool) -> Summary:
        """Upload what the service lacks. The first Ctrl-C stops starting requests and lets
        those in flight finish (the service completes them anyway, so the summary counts
        them); a second one stops at once."""
        stopping = asyncio.Event()
        progress: Progress | None = None
        with _first_interrupt(stopping, self._say):
            try:
                items = await self._scan(paths, recursive)
                todo = await self._missing(items)
                progress = Progress(len(todo), sum(i.size for i in todo),
                                    out=self.progress_out)
                queue: asyncio.Queue[list[Item]] = asyncio.Queue()
                for batch in batches(todo):
                    queue.put_nowait(batch)

                async def worker() -> None:
                    while not queue.empty() and not stopping.is_set():
                        batch = queue.get_nowait()
                        await self._send(batch)
                        if not self.quiet and progress is not None:
                            progress.advance(len(batch), sum(i.size for i in batch))

                await asyncio.gather(*(worker()
                                       for _ in range(max(1, self.options.concurrency))))
            except asyncio.CancelledError:
                stopping.set()
            finally:
                if not self.quiet and progress is not None and progress.files:
                    progress.finish()  # the summary starts on a line of its own
        self.summary.interrupted = stopping.is_set()
        return self.summary

    def _say(self, text: str) -> None:
        if not self.quiet:
            self.progress_out.write(("\n" if self.progress_out.isatty() else "") + text + "\n")
            self.progress_out.flush()

    async def _scan(self, paths: Sequence[Path], recursive: bool) -> list[Item]:
        """Images among the files (by their bytes), with their digests; the same bytes twice
        count once (the second as already there)."""
        loop = asyncio.get_running_loop()
        skipped: list[Path] = []
        candidates = list(walk(paths, recursive, skipped))
        self.summary.skipped_folders = [str(path) for path in skipped]
        with ThreadPoolExecutor(4) as pool:
            examined = await asyncio.gather(*(loop.run_in_executor(pool, examine, p)
                                              for p in candidates))
            found = [e for e in examined if isinstance(e, Found)]
            for problem in (e for e in examined if isinstance(e, Problem)):
                self.summary.failed.append({"path": str(problem.path), "reason": problem.reason})
            self.summary.not_images = [str(path) for path, e in zip(candidates, examined,
                                                                    strict=True) if e is None]
            digests = await asyncio.gather(*(loop.run_in_executor(pool, _digest, f)
                                             for f in found))
        items: dict[str, Item] = {}
        for entry, digest in zip(found, digests, strict=True):
            if isinstance(digest, Problem):
                self.summary.failed.append({"path": str(digest.path), "reason": digest.reason})
            elif digest in items:
                self.summary.already_there += 1
            else:
                items[digest] = Item(entry.path, entry.size, digest)
        return list(items.values())

    async def _missing(self, items: list[Item]) -> list[Item]:
        known: set[str] = set()
        for start in range(0, len(items), LOOKUP_BATCH):
            chunk = [i.sha256 for i in items[start:start + LOOKUP_BATCH]]
            body = await self.api.call("POST", "/images/known", json={"sha256": chunk})
            known.update(entry["sha256"] for entry in body["known"])
        self.summary.already_there += sum(1 for i in items if i.sha256 in known)
        return [i for i in items if i.sha256 not in known]

    async def _send(self, batch: list[Item]) -> None:
        try:
            body = await self.api.call("POST", "/images", form=_form(batch, self.options),
                                       headers={"Idempotency-Key": idempotency_key(
                                           batch, self.options)})
        except ApiError as exc:
            if exc.status in FILE_ERRORS and len(batch) > 1:
                for item in batch:  # all or nothing refused them all: find the bad ones
                    await self._send([item])
                return
            for item in batch:
                self.summary.failed.append({"path": str(item.path), "reason": str(exc)})
            return
        except OSError as exc:  # the file went away or became unreadable meanwhile
            for item in batch:
                self.summary.failed.append({"path": str(item.path),
                                            "reason": exc.strerror or str(exc)})
            return
        for item, image in zip(batch, body["images"], strict=True):
            self.summary.uploaded += 1
            self.summary.uploaded_bytes += item.size
            for near in image.get("near_duplicates", [])[:1]:
                self.summary.near_duplicates.append(
                    {"path": str(item.path), "id": image["id"], "of": near["id"],
                     "distance": near["distance"]})


@contextlib.contextmanager
def _first_interrupt(stopping: asyncio.Event, say: Callable[[str], None]) -> Iterator[None]:
    """While in the block, the first SIGINT sets `stopping` (and says so); the next one
    cancels the running task as asyncio.run's own handler would. Where signal handlers
    cannot be set (Windows, a thread), Ctrl-C keeps asyncio.run's behaviour."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()

    def interrupted() -> None:
        if stopping.is_set() and task is not None:
            task.cancel()
            return
        stopping.set()
        say("imagerepo: stopping once the requests in flight are answered (Ctrl-C again to "
            "stop now)")

    previous = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (NotImplementedError, RuntimeError, ValueError):
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, previous)  # asyncio.run's own, again


def _digest(found: Found) -> str | Problem:
    try:
        return sha256_of(found.path)
    except OSError as exc:
        return Problem(found.path, exc.strerror or str(exc))
