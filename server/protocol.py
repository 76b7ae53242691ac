"""The HTTP connection layer: how many connections, how long for headers, what a
malformed request is told, and what the server calls itself.

- Connections beyond a cap (derived from the process's file limit) get a canned 503 at
  once and are closed, instead of the process running out of file descriptors (which
  breaks every request, /health included, and floods the log).
- aiohttp's own answer to a request it cannot parse is plain text that echoes the offending
  header back (an API key included) and logs a traceback; here it is the JSON envelope,
  a generic message, and one short log line.
- A 408 (a body too slow, request_body.py) closes the connection as soon as it is sent.
- The deadline for a request's headers is aiohttp's keep-alive timeout: it runs from the
  connection's start and from the end of each response, and only a complete set of
  headers stops it (see ``serve`` in lifecycle.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import Callable

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from .observability import metrics
from .observability.context import CONTEXT, new_request_id

log = logging.getLogger(__name__)
SERVER_NAME = "imagerepo"
# File descriptors a connection may hold: its socket, an upload's spool file, a storage
# connection; and some for the pool, the logs and the listening socket.
FDS_PER_CONNECTION = 3
FDS_RESERVED = 100
MAX_DEFAULT_CONNECTIONS = 4096


def _envelope(status: int, code: str, message: str, request_id: str | None = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message, "details": {}}
    if request_id is not None:
        error["request_id"] = request_id
    return json.dumps({"error": error}).encode()


async def name_the_server(request: web.Request, response: web.StreamResponse) -> None:
    """No version of Python or aiohttp in the answers: it only helps an attacker."""
    response.headers["Server"] = SERVER_NAME


class ApiRequestHandler(RequestHandler):
    """aiohttp's connection handler, with errors it answers itself in our envelope."""

    __slots__ = ()  # same layout as RequestHandler, so that an instance can become one

    def handle_error(
        self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Part of the answer is sent: the client hung up mid-response (the handler's
            # write failed). aiohttp ignores a ConnectionError from here quietly.
            log.debug("connection to %s broken mid-response", request.remote, exc_info=exc)
            raise ConnectionError("the response is sent already; the client went away")
        # A request the parser refused never reached the middlewares: it gets its id here.
        context = request.get(CONTEXT)
        request_id = context.request_id if context is not None else new_request_id()
        ids = {"request_id": request_id}
        if status >= 500:
            log.error("error handling a request from %s", request.remote, exc_info=exc,
                      extra=ids)
            code, text = "internal_error", "Internal server error"
        else:
            # The parser's message quotes the offending line (an API key, say) on the lines
            # after its first: log only the first, and echo nothing.
            reason = (message or "").strip().split("\n", 1)[0][:100]
            log.info("malformed request from %s: %s", request.remote, reason, extra=ids)
            code, text = "bad_request", "Malformed HTTP request"
        metrics.error_answered(status, code)
        response = web.Response(body=_envelope(status, code, text, request_id), status=status,
                                content_type="application/json",
                                headers={"Server": SERVER_NAME, "X-Request-ID": request_id})
        response.force_close()
        return response

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        sent, reset = await super().finish_response(request, resp, start_time)
        if sent.status == 408 and not reset:
            # A body given up on for slowness: close once the answer is out (asyncio sends
            # what is written first) instead of lingering up to 10 s for the rest of it.
            self.force_close()
        return sent, reset


class _Refuse(asyncio.Protocol):
    """Answers a connection over the cap with a 503 and closes it, reading nothing."""

    _BODY = _envelope(503, "too_many_connections", "Too many connections; retry shortly")
    RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nServer: " + SERVER_NAME.encode()
                + b"\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
                + b"Connection: close\r\nContent-Length: " + str(len(_BODY)).encode()
                + b"\r\n\r\n" + _BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self.RESPONSE)
        transport.close()


def default_max_connections() -> int:
    """Raise the soft file limit to the hard one, and leave room under it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
        if target > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
    return max(8, min(MAX_DEFAULT_CONNECTIONS, (soft - FDS_RESERVED) // FDS_PER_CONNECTION))


def protocol_factory(server: web.Server, max_connections: int) -> Callable[[], asyncio.Protocol]:
    """For ``loop.create_server``: aiohttp's handler, or a refusal over the cap."""
    refused = 0

    def make() -> asyncio.Protocol:
        nonlocal refused
        if len(server.connections) >= max_connections:
            refused += 1
            metrics.error_answered(503, "too_many_connections")
            if refused == 1 or refused % 1000 == 0:  # a line now and then, not a flood
                log.warning("connection cap (%d) reached: %d refused so far", max_connections,
                            refused)
            return _Refuse()
        handler = server()
        handler.__class__ = ApiRequestHandler  # aiohttp builds the handler; we add behaviour
        return handler

    return make
