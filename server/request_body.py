"""Reading a request body against the clock, so that no client holds a connection (and, with
enough of them, every connection) by sending its body slowly. The rules, in one place:

- idle: nothing at all for ``idle_timeout`` seconds: 408;
- rate: once ``idle_timeout`` seconds were spent waiting for the body, the client must have
  averaged ``min_rate`` bytes a second; time the service spends on its own work (storing,
  hashing) does not count against it. Uploads follow these two (server/uploads.py), their
  size being up to gigabytes;
- deadline: a JSON body, at most 1 MiB, arrives whole within ``deadline`` seconds of its
  first read, whatever its rate: the bound on how long one such request holds a connection.

A 408 closes the connection at once (protocol.py): the rest of the body is not waited for.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import StreamReader

from .config import Config
from .errors import PayloadTooLarge, RequestTimeout


@dataclass(slots=True)
class Pace:
    """How fast one request's client sends: bytes over the time spent waiting for them."""

    received: int = 0
    waited: float = 0.0

    def check(self, min_rate: int, grace: float) -> None:
        owed = min_rate * (self.waited - grace)
        if min_rate and self.received < owed:
            raise RequestTimeout(
                f"The client sends slower than {min_rate} bytes/s",
                details={"min_rate": min_rate, "received": self.received,
                         "seconds": round(self.waited, 1)})


def stalled(idle_timeout: float) -> RequestTimeout:
    return RequestTimeout(f"No data from the client for {idle_timeout:g} s",
                          details={"read_timeout": idle_timeout})


@dataclass(frozen=True, slots=True)
class BodyLimits:
    max_bytes: int
    deadline: float
    idle_timeout: float
    min_rate: int

    @classmethod
    def from_config(cls, config: Config, max_bytes: int) -> BodyLimits:
        return cls(max_bytes, config.body_timeout, config.read_timeout, config.min_upload_rate)


def _too_large(limits: BodyLimits) -> PayloadTooLarge:
    return PayloadTooLarge("Request body too large", details={"max_bytes": limits.max_bytes})


async def read_body(content: StreamReader, declared: int | None, limits: BodyLimits) -> bytes:
    """The whole body, or 408 (too slow) / 413 (too large; at once when its Content-Length
    says so)."""
    if declared is not None and declared > limits.max_bytes:
        raise _too_large(limits)
    started = time.monotonic()
    pace = Pace()
    body = bytearray()
    while True:
        left = limits.deadline - (time.monotonic() - started)
        if left <= 0:
            raise RequestTimeout(f"The body did not arrive within {limits.deadline:g} s",
                                 details={"body_timeout": limits.deadline,
                                          "received": len(body)})
        waiting = time.monotonic()
        try:
            async with asyncio.timeout(min(left, limits.idle_timeout)):
                chunk = await content.readany()
        except TimeoutError:
            if limits.idle_timeout <= left:
                raise stalled(limits.idle_timeout) from None
            continue  # the deadline passed: said at the top of the loop
        pace.waited += time.monotonic() - waiting
        pace.received += len(chunk)
        pace.check(limits.min_rate, limits.idle_timeout)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limits.max_bytes:
            raise _too_large(limits)
