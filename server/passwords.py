"""Password work (bcrypt) on threads of its own, bounded, so a flood of logins cannot slow
image work: decoding and hashing keep the CPU pool to themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .credentials import check_password, hash_password
from .errors import ServiceUnavailable

T = TypeVar("T")


class PasswordHasher:
    """bcrypt in `workers` threads; at most `max_waiting` checks queue behind them, and the
    next one is refused at once (503) rather than queued for seconds."""

    def __init__(self, cost: int, workers: int = 1, max_waiting: int = 32) -> None:
        self.cost = cost
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bcrypt")
        self._slots = asyncio.BoundedSemaphore(workers + max_waiting)

    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        if self._slots.locked():
            raise ServiceUnavailable("Too many password checks in progress; retry shortly",
                                     headers={"Retry-After": "1"})
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password, self.cost)

    async def check(self, password: str, password_hash: str | None) -> bool:
        return await self._run(check_password, password, password_hash, self.cost)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
