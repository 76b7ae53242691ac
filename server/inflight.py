"""Counting the requests being handled, for a graceful shutdown."""

from __future__ import annotations

import asyncio


class InFlight:
    """Counts the requests being handled; tells when there are none."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()
