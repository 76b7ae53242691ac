"""The request being handled, as the logs, the error bodies and the metrics see it.

One ``RequestContext`` per request, set by the outermost middleware in a context variable
(so every log line emitted while handling the request can name it) and on the request (so
the access logger, which runs after the handler, finds it too).
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from uuid import UUID

from aiohttp import web

# What an id from a trusted front may look like: nginx's $request_id (32 hex digits), a
# UUID, AWS's "Root=1-..." trace ids. Anything else is replaced, never echoed.
_VALID_ID = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")


@dataclass(slots=True)
class RequestContext:
    request_id: str
    # The client's address (behind a trusted proxy: the one it forwarded).
    client: str | None = None
    user_id: UUID | None = None
    # With tracing on: the request span's trace and span ids (hex), for its log lines.
    trace: tuple[str, str] | None = None


CONTEXT = web.RequestKey("observed", RequestContext)
_current: ContextVar[RequestContext | None] = ContextVar("request_context", default=None)


def new_request_id() -> str:
    return secrets.token_hex(16)


def acceptable_request_id(value: str | None) -> str | None:
    """`value` if it can be echoed and logged as it is, else None."""
    if value is None or _VALID_ID.fullmatch(value) is None:
        return None
    return value


def begin(request: web.Request, request_id: str) -> RequestContext:
    context = RequestContext(request_id, client=request.remote)
    request[CONTEXT] = context
    _current.set(context)
    return context


def current() -> RequestContext | None:
    return _current.get()


def current_request_id() -> str | None:
    context = _current.get()
    return None if context is None else context.request_id


def note_user(user_id: UUID | None) -> None:
    """Who the request turned out to be from (for the logs)."""
    context = _current.get()
    if context is not None:
        context.user_id = user_id


def note_client(address: str | None) -> None:
    """The client's address as a trusted proxy forwarded it."""
    context = _current.get()
    if context is not None:
        context.client = address
