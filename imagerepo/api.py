"""The service's HTTP API, with retries: connection errors, 503 and 429 are tried again with
exponential back-off (honouring Retry-After). Requests that create something carry an
Idempotency-Key, so a retry after a lost answer never makes a duplicate."""

from __future__ import annotations

import asyncio
import json as jsonlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Self, TypeVar

import aiohttp

from .display import printable

RETRY_STATUSES = {429, 503}
MAX_DELAY = 30.0
MAX_JSON_BYTES = 32 * 1024 * 1024  # a JSON answer larger than this is not one the service sends
CHUNK_BYTES = 1024 * 1024
# A download may take long; it must not stall.
STREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120)
BROKEN = (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)
T = TypeVar("T")


class ApiError(Exception):
    """An answer the service gave (status, error code, message), or no answer at all."""

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        # The server's name for the request (X-Request-ID): what its operator's logs know.
        self.request_id = request_id

    def __str__(self) -> str:
        # The message may come from a hostile server: no terminal escapes reach the screen.
        text = printable(self.message, 500)
        if not self.status:
            return text
        said = "; ".join(printable(line, 200) for line in described_details(self.details)[:10])
        line = f"{text} ({self.status} {printable(self.code, 60)})" + (f": {said}" if said else "")
        if self.request_id:
            line += f" [request id {printable(self.request_id, 128)}]"
        return line


# Where webargs says a field came from: not part of the field's name for a person.
_LOCATIONS = {"json", "query", "querystring", "form", "files", "headers", "match_info",
              "cookies", "path"}


def described_details(details: Any, field: str = "") -> list[str]:
    """An error's details as lines a person reads: "password: Shorter than minimum length
    10." from {"json": {"password": ["Shorter than minimum length 10."]}}."""
    if isinstance(details, dict):
        lines = []
        for key, value in details.items():
            name = str(key)
            inner = field if name in _LOCATIONS or name == "_schema" else (
                f"{field}.{name}" if field else name)
            lines += described_details(value, inner)
        return lines
    if isinstance(details, list):
        return [line for item in details for line in described_details(item, field)]
    if details is None or details == "":
        return []
    return [f"{field}: {details}" if field else str(details)]


def _retry_after(headers: Any, attempt: int) -> float:
    value = str(headers.get("Retry-After", "")) if headers is not None else ""
    if value.isdigit():
        return min(float(value), MAX_DELAY)
    return min(MAX_DELAY, 0.5 * 2.0**attempt) * random.uniform(0.5, 1.0)


class Api:
    def __init__(self, url: str, key: str | None = None, *, attempts: int = 5,
                 timeout: float = 600, notice: Callable[[str], None] | None = None) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self.attempts = attempts
        # Told once when the service does not answer and the attempts go on (a person waits).
        self._notice = notice
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
                   params: dict[str, str] | None = None,
                   headers: dict[str, str] | None = None) -> Any:
        """The answer's JSON (None for 204). `form` makes a fresh body for each attempt (a
        multipart body with open files can be sent once). Raises ApiError."""
        return await self._attempts(method, path, _json, body_retried=True, json=json,
                                    data_maker=form, params=params, headers=headers)

    async def download(self, path: str,
                       consume: Callable[[AsyncIterator[bytes]], Awaitable[T]], *,
                       headers: dict[str, str] | None = None) -> T:
        """What `consume` makes of a GET's body, given in chunks of at most CHUNK_BYTES (never
        read whole). A body that breaks off raises ApiError and is not tried again: `consume`
        has had part of it."""

        async def chunks(resp: aiohttp.ClientResponse) -> T:
            return await consume(resp.content.iter_chunked(CHUNK_BYTES))

        return await self._attempts("GET", path, chunks, body_retried=False,
                                    headers=headers, timeout=STREAM_TIMEOUT)

    async def _attempts(self, method: str, path: str,
                        consume: Callable[[aiohttp.ClientResponse], Awaitable[T]], *,
                        body_retried: bool, json: Any = None,
                        data_maker: Callable[[], aiohttp.FormData] | None = None,
                        params: dict[str, str] | None = None,
                        headers: dict[str, str] | None = None,
                        timeout: aiohttp.ClientTimeout | None = None) -> T:
        """`consume` of a successful answer; errors raise ApiError, and what can be retried
        (no connection, 503, 429, 409 of an idempotent request) is, until the attempts are
        spent."""
        assert self._session is not None, "use Api as an async context manager"
        all_headers = {**self._auth(), **(headers or {})}
        options: dict[str, Any] = {"timeout": timeout} if timeout else {}
        for attempt in range(self.attempts):
            last = attempt == self.attempts - 1
            try:
                async with self._session.request(
                    method, self.url + path, json=json,
                    data=data_maker() if data_maker else None, params=params,
                    headers=all_headers, **options,
                ) as resp:
                    retryable = resp.status in RETRY_STATUSES or (
                        resp.status == 409 and "Idempotency-Key" in all_headers)
                    if retryable and not last:
                        await asyncio.sleep(_retry_after(resp.headers, attempt))
                        continue
                    if resp.status >= 400:
                        raise await _error(resp)
                    if body_retried:
                        return await consume(resp)
                    try:
                        return await consume(resp)
                    except BROKEN as exc:
                        raise ApiError(0, "broken", f"{self.url}: the download broke off: "
                                                    f"{exc.__class__.__name__}") from None
            except BROKEN as exc:
                if last:
                    raise ApiError(0, "unreachable", unreachable(self.url, exc)) from None
                if self._notice is not None:
                    self._notice(f"{self.url} does not answer ({_reason(exc)}); trying again "
                                 f"for a few seconds")
                    self._notice = None
                await asyncio.sleep(_retry_after(None, attempt))
        raise AssertionError("unreachable")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return exc.os_error.strerror or exc.__class__.__name__
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.__class__.__name__


def unreachable(url: str, exc: BaseException) -> str:
    """What to tell a person when the service cannot be reached at all."""
    return (f"cannot reach the service at {url} ({_reason(exc)}). Is it running? Start one "
            f"with `make run` (or `imagerepo serve`) in the project's folder, or point "
            f"IMAGEREPO_URL (or --url) at where it runs.")


async def _json(resp: aiohttp.ClientResponse) -> Any:
    """The body as JSON, read up to MAX_JSON_BYTES."""
    if resp.status == 204:
        return None
    body = bytearray()
    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise ApiError(0, "malformed", f"{resp.url.origin()}: an answer larger than "
                                           f"{MAX_JSON_BYTES} bytes")
    try:
        return jsonlib.loads(body)
    except ValueError:
        raise ApiError(0, "malformed", f"{resp.url.origin()}: an answer that is not JSON "
                                       f"({resp.status})") from None


async def _error(resp: aiohttp.ClientResponse) -> ApiError:
    request_id = resp.headers.get("X-Request-ID")
    try:
        error = (await _json(resp))["error"]
        return ApiError(resp.status, str(error.get("code", "")), str(error.get("message", "")),
                        error.get("details"), str(error.get("request_id") or request_id or "")
                        or None)
    except (ApiError, KeyError, TypeError, AttributeError):
        return ApiError(resp.status, "http_error", resp.reason or "HTTP error",
                        request_id=request_id)
