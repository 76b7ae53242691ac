"""JSON request bodies parsed once, defensively, before any schema sees them.

webargs parses bodies with ``json.loads`` and turns only ``JSONDecodeError`` into a 4xx;
a body nested 100,000 deep (RecursionError) or an integer of thousands of digits
(ValueError from Python's digit limit) would reach the error middleware as a 500.
"""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.typedefs import Handler

from .errors import BadRequest

_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def check_json(body: bytes) -> None:
    """400 unless `body` is JSON that Python can hold."""
    try:
        json.loads(body)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        # JSONDecodeError is a ValueError; so is "exceeds the limit for integer string
        # conversion"; RecursionError: nested too deep.
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
        raise BadRequest("Request body is not valid JSON",
                         details={"_body": [f"Not valid JSON: {reason}."]}) from None


@web.middleware
async def json_body_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (request.method in _WITH_BODY and request.body_exists
            and request.content_type == "application/json"):
        # read() is bounded by client_max_size (413) and cached for the schema's own parse.
        check_json(await request.read())
    return await handler(request)
