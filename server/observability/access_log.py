"""One line (and the request metrics) per answer.

The metrics count every answer. The line can be switched off (ACCESS_LOG=off), kept for a
share of the successful answers only (ACCESS_LOG_SAMPLE), and left out for successful
answers on quiet paths such as /health and /metrics (ACCESS_LOG_QUIET_PATHS); an error
answer (4xx, 5xx) is always logged while access logging is on.
"""

from __future__ import annotations

import random

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from . import metrics
from .context import CONTEXT

# A request that matched no route (a 404, or one refused while parsing).
UNMATCHED = "(unmatched)"


def route_of(request: BaseRequest) -> str:
    """The route's template (`/images/{id}`), never the path itself: bounded."""
    match_info = getattr(request, "_match_info", None)
    route = getattr(match_info, "route", None)
    resource = getattr(route, "resource", None)
    return resource.canonical if resource is not None else UNMATCHED


class AccessPolicy:
    def __init__(self, enabled: bool = True, sample: float = 1.0,
                 quiet_paths: tuple[str, ...] = ()) -> None:
        self.enabled, self.sample, self.quiet_paths = enabled, sample, frozenset(quiet_paths)

    def logs(self, path: str, status: int) -> bool:
        if not self.enabled:
            return False
        if status >= 400:
            return True
        if path in self.quiet_paths:
            return False
        return self.sample >= 1.0 or random.random() < self.sample


# Set by the serving process before it serves (aiohttp builds the logger itself).
policy = AccessPolicy()


class AccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        route = route_of(request)
        status = response.status
        received = getattr(request.content, "total_bytes", 0)
        sent = response.body_length
        metrics.request_finished(route, request.method, status, time, received, sent)
        if not policy.logs(request.path, status):
            return
        context = request.get(CONTEXT)
        fields: dict[str, object] = {
            "method": request.method, "path": request.path, "route": route,
            "status": status, "duration_ms": round(time * 1000, 1), "bytes_sent": sent,
            "client": context.client if context else request.remote,
        }
        if context is not None:
            fields["request_id"] = context.request_id
            if context.user_id is not None:
                fields["user_id"] = str(context.user_id)
        self.logger.info("%s %s %d %.1fms", request.method, request.path, status,
                         time * 1000, extra=fields)
