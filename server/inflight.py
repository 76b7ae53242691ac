"""Counting the requests being handled, for a graceful shutdown."""

from __future__ import annotations

import asyncio


class InFlight:
    """Counts the requests being handled; tells when there are none. Once draining (the
    server is stopping), no new request is taken: see ``in_flight_middleware``."""

    def __init__(self) -> None:
        self.count = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False

    def enter(self) -> None:
        self.count += 1
        self.idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self.idle.set()

    def drain(self) -> None:
        self.draining = True
