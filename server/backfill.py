"""Backfills: work over every stored image that an older pipeline left behind, in id order,
a batch at a time, resumable (the rows themselves say what is done), with a progress line.

`python -m server rehash` is one; others (thumbnails, ...) reuse the same loop with a
different selection and step.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO, TypeVar
from uuid import UUID

R = TypeVar("R")

# On a terminal the line is redrawn this often; elsewhere (logs) a line is printed this often.
TTY_INTERVAL = 0.2
LOG_INTERVAL = 5.0


@dataclass
class Progress:
    """Counts, rate and ETA on one line: redrawn on a terminal, appended to a log."""

    total: int
    label: str
    out: TextIO = field(default_factory=lambda: sys.stderr)
    done: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        share = self.done / self.total if self.total else 1.0
        rate = self.rate
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = "--" if eta == float("inf") else f"{int(eta // 60)}m{int(eta % 60):02d}s"
        width = 30
        bar = "#" * round(share * width) + "-" * (width - round(share * width))
        return (f"{self.label} [{bar}] {self.done}/{self.total} ({share:.0%}) "
                f"{rate:.1f}/s ETA {eta_text}" + (f", {self.failed} failed" if self.failed else ""))

    def advance(self, done: int = 1, failed: int = 0) -> None:
        self.done += done
        self.failed += failed
        now = time.monotonic()
        tty = self.out.isatty()
        if now - self._last >= (TTY_INTERVAL if tty else LOG_INTERVAL):
            self._last = now
            self.out.write(("\r" + self.line()) if tty else self.line() + "\n")
            self.out.flush()

    def finish(self) -> None:
        self.out.write(("\r" if self.out.isatty() else "") + self.line() + "\n")
        self.out.flush()


async def batches(
    fetch: Callable[[UUID | None, int], Awaitable[list[R]]], key: Callable[[R], UUID],
    size: int,
) -> AsyncIterator[list[R]]:
    """Keyset batches of rows, each after the last id of the one before: a row that fails is
    not fetched again in this run (the caller counts it), and a rerun starts over from the
    rows still left behind."""
    after: UUID | None = None
    while rows := await fetch(after, size):
        yield rows
        after = key(rows[-1])


async def all_of(steps: Iterable[Awaitable[None]]) -> None:
    """Run a batch's steps together. Interrupted (Ctrl-C cancels the run), every step is
    cancelled and waited for: their clean-up (an object stored, a row being written) is over
    when the interruption reaches the caller, so what the rows say is what was done."""
    tasks = [asyncio.ensure_future(step) for step in steps]
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
