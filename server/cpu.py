"""Running CPU-bound work in the app's thread pool, off the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import ParamSpec, TypeVar, cast

from .observability.metrics import CpuJob

P = ParamSpec("P")
T = TypeVar("T")


async def run_cpu(executor: Executor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`fn(*args, **kwargs)` on a thread of the pool. It runs in a copy of the caller's
    context (its log lines name the request, its spans join the request's trace) and is
    counted as waiting until a thread takes it."""
    loop = asyncio.get_running_loop()
    job = CpuJob(functools.partial(fn, *args, **kwargs))
    try:
        return cast(T, await loop.run_in_executor(executor, contextvars.copy_context().run,
                                                  job))
    finally:
        job.given_up()  # nothing, unless it was cancelled while still queued
