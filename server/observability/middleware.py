"""The outermost middleware: the request's id and context, and the in-flight gauge.

(With tracing on, the aiohttp-server instrumentation's middleware runs before it: the request
span is the current one here, and gets the request id.)"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from . import metrics, tracing
from .context import CONTEXT, acceptable_request_id, begin, new_request_id
from .proxies import TrustedProxies

REQUEST_ID = "X-Request-ID"


def observe_middleware(trusted: TrustedProxies) -> Middleware:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        # A front's id is kept only from a trusted proxy: anyone else could make their
        # requests look like another's in the logs.
        presented = request.headers.get(REQUEST_ID) if trusted.trusts(request.remote) else None
        context = begin(request, acceptable_request_id(presented) or new_request_id())
        context.trace = tracing.request_started(context.request_id)
        metrics.request_started()
        try:
            return await handler(request)
        finally:
            metrics.request_ended()

    return observe


async def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer names its request, errors and streamed downloads alike."""
    context = request.get(CONTEXT)
    if context is not None:
        response.headers[REQUEST_ID] = context.request_id
