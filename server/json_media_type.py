"""A JSON body must say it is JSON.

webargs reads a body as JSON only when its Content-Type says so, and treats any other body
as absent: `{"title": "x"}` sent as text/plain (or with no Content-Type) would answer
"Nothing to change" or "Missing data", which hides the client's real mistake. Operations
that take a JSON body answer 415 instead. A request with no body at all is left alone (an
optional body, POST /keys, may be left out).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp_apigami.constants import SCHEMAS_ATTR

from .errors import UnsupportedMediaType


def is_json_media_type(media_type: str) -> bool:
    """application/json, or a JSON-based type (application/problem+json); parameters such
    as charset are not part of `media_type` (aiohttp's `request.content_type`)."""
    media = media_type.strip().lower()
    kind, _, subtype = media.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def takes_json_body(request: web.Request) -> bool:
    """Whether the matched handler declares a JSON body (`@json_schema`)."""
    schemas = getattr(request.match_info.handler, SCHEMAS_ATTR, None) or []
    return any(schema.location == "json" for schema in schemas)


@web.middleware
async def json_media_type_middleware(request: web.Request,
                                     handler: Handler) -> web.StreamResponse:
    if (request.body_exists and takes_json_body(request)
            and not is_json_media_type(request.content_type)):
        raise UnsupportedMediaType(
            "The body must be JSON, sent with Content-Type: application/json",
            details={"content_type": request.headers.get("Content-Type")})
    return await handler(request)
