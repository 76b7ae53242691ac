"""The middleware that turns every failure into the JSON error envelope."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import ApiError, RequestTimeout
from .keys import IN_FLIGHT
from .observability import metrics
from .observability.context import current_request_id
from .storage import StorageUnavailable

log = logging.getLogger(__name__)

# Failures of the database rather than of the request: the client may retry. Not every
# OSError: a client that hangs up raises one too (ConnectionResetError). These are what
# asyncpg raises when it cannot reach the server (refused, unresolvable, timed out).
DATABASE_DOWN: tuple[type[BaseException], ...] = (
    ConnectionRefusedError,
    socket.gaierror,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The JSON error envelope; it names the request, as its X-Request-ID header does."""
    error = {"code": code, "message": message, "details": dict(details or {})}
    request_id = current_request_id()
    if request_id is not None:
        error["request_id"] = request_id
    metrics.error_answered(status, code)
    return web.json_response({"error": error}, status=status, headers=headers)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
    code = _HTTP_CODES.get(exc.status, "http_error")
    message = exc.reason
    if exc.status == 404:
        message = "No such resource"
    elif exc.status == 405:
        message = "Method not allowed here; see the Allow header"
    elif exc.status == 413:
        message = "Request body too large"
    details = _json_details(exc)
    if exc.status == 400 and details:
        message = "Request body is not valid JSON"
    return error_response(exc.status, code, message, details, headers=headers)


def _json_details(exc: web.HTTPException) -> Mapping[str, Any]:
    """webargs raises HTTP errors whose text is a JSON object of messages: keep them."""
    if exc.content_type != "application/json" or not exc.text:
        return {}
    try:
        parsed = json.loads(exc.text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
        if isinstance(exc, RequestTimeout):
            # The rest of the body is given up on: no next request can follow on this
            # connection (protocol.py closes it once the answer is sent).
            response.force_close()
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and 304 are answers, not errors
        return _from_http_exception(exc)
    except asyncpg.QueryCanceledError:
        # statement_timeout: the query would cost more than the service lets one request take.
        log.warning("statement timeout during %s %s", request.method, request.path)
        metrics.statement_timeout()
        return error_response(503, "query_timeout",
                              "The query took too long and was stopped; narrow it or retry later",
                              headers={"Retry-After": "5"})
    except ConnectionResetError:
        # The client went away (mid-download, say): nobody to answer, nothing to report.
        log.info("client went away during %s %s", request.method, request.path)
        raise
    except StorageUnavailable:
        log.warning("storage unavailable during %s %s", request.method, request.path)
        return error_response(503, "storage_unavailable",
                              "Object storage is unavailable; retry later",
                              headers={"Retry-After": "5"})
    except DATABASE_DOWN:
        log.warning("database unavailable during %s %s", request.method, request.path,
                    exc_info=True)
        return error_response(503, "database_unavailable",
                              "The database is unavailable; retry later",
                              headers={"Retry-After": "5"})
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Internal server error")


@web.middleware
async def in_flight_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    tracker = request.app[IN_FLIGHT]
    if tracker.draining:
        # Stopping: a request that arrives on a kept-alive connection starts no work (it
        # could outlast the grace period and be cut off half-done); the client retries on
        # a new connection, which another process (or this one, restarted) accepts.
        response = error_response(503, "shutting_down",
                                  "The server is stopping; retry on a new connection",
                                  headers={"Retry-After": "1"})
        response.force_close()
        return response
    tracker.enter()
    try:
        return await handler(request)
    finally:
        tracker.leave()


async def close_when_draining(request: web.Request, response: web.StreamResponse) -> None:
    """Once stopping, every answer (those of requests in flight too) closes its connection,
    so that no client sends another request into a server about to go."""
    if request.app[IN_FLIGHT].draining:
        response.force_close()  # the connection closes after this answer
        # aiohttp wrote its Connection header before this hook: say it here.
        response.headers["Connection"] = "close"
