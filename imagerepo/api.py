"""The service's HTTP API, with retries: connection errors, 503 and 429 are tried again with
exponential back-off (honouring Retry-After). Requests that create something carry an
Idempotency-Key, so a retry after a lost answer never makes a duplicate."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import aiohttp

RETRY_STATUSES = {429, 503}
MAX_DELAY = 30.0


class ApiError(Exception):
    """An answer the service gave (status, error code, message), or no answer at all."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def __str__(self) -> str:
        return f"{self.message} ({self.status} {self.code})" if self.status else self.message


def _retry_after(headers: Any, attempt: int) -> float:
    value = str(headers.get("Retry-After", "")) if headers is not None else ""
    if value.isdigit():
        return min(float(value), MAX_DELAY)
    return min(MAX_DELAY, 0.5 * 2.0**attempt) * random.uniform(0.5, 1.0)


class Api:
    def __init__(self, url: str, key: str | None = None, *, attempts: int = 5,
                 timeout: float = 600) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.attempts = attempts
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=10)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(
            timeout=self._timeout, headers={"User-Agent": "imagerepo-cli"})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    async def call(self, method: str, path: str, *, json: Any = None,
                   form: Callable[[], aiohttp.FormData] | None = None,
                   params: dict[str, str] | None = None, headers: dict[str, str] | None = None,
                   raw: bool = False) -> Any:
        """The answer's JSON (or bytes when raw; None for 204). `form` makes a fresh body for
        each attempt (a multipart body with open files can be sent once). Raises ApiError."""
        assert self._session is not None, "use Api as an async context manager"
        all_headers = {**self._auth(), **(headers or {})}
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                async with self._session.request(
                    method, self.url + path, json=json, data=form() if form else None,
                    params=params, headers=all_headers,
                ) as resp:
                    retryable = resp.status in RETRY_STATUSES or (
                        resp.status == 409 and "Idempotency-Key" in all_headers)
                    if retryable and not last:
                        await asyncio.sleep(_retry_after(resp.headers, attempt))
                        continue
                    if resp.status >= 400:
                        raise await _error(resp)
                    if resp.status == 204:
                        return None
                    return await resp.read() if raw else await resp.json()
            except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
                if last:
                    raise ApiError(0, "unreachable",
                                   f"{self.url}: {exc.__class__.__name__}: {exc}") from None
                await asyncio.sleep(_retry_after(None, attempt))
        raise AssertionError("unreachable")


async def _error(resp: aiohttp.ClientResponse) -> ApiError:
    try:
        body = await resp.json(content_type=None)
        error = body["error"]
        return ApiError(resp.status, error.get("code", ""), error.get("message", ""),
                        error.get("details"))
    except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
        return ApiError(resp.status, "http_error", resp.reason or "HTTP error")
