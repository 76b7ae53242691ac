"""Streaming an image's bytes: ETag, conditional requests, ranges, safe headers."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..db.queries import Record
from ..errors import NotFound, RangeNotSatisfiable
from ..storage import ObjectNotFound, Storage

log = logging.getLogger(__name__)
_UNSAFE_ASCII = re.compile(r'[^A-Za-z0-9 !#$&+,.:;=@^_`{}~()\[\]-]')


def content_disposition(filename: str) -> str:
    """``inline`` with an ASCII fallback and the UTF-8 name (RFC 6266 / 5987): quotes,
    CR/LF and non-ASCII can never break the header."""
    fallback = _UNSAFE_ASCII.sub("_", filename) or "image"
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


def _byte_range(request: web.Request, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single satisfiable range; None for the whole file.
    A malformed Range header is ignored, as RFC 9110 allows."""
    if "Range" not in request.headers:
        return None
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None:
        return None
    if start < 0:  # suffix: the last -start bytes
        start = max(0, size + start)
    if start >= size:
        raise RangeNotSatisfiable("The range starts after the end of the file",
                                  details={"size": size},
                                  headers={"Content-Range": f"bytes */{size}"})
    end = size - 1 if stop is None else min(stop - 1, size - 1)
    return start, end


async def serve_image_file(
    request: web.Request, storage: Storage, row: Record | Mapping[str, Any]
) -> web.StreamResponse:
    etag = f'"{row["sha256"].hex()}"'
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "public, max-age=3600" if row["visibility"] == "public"
        else "private, max-age=0",
    }
    if _etag_matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    size = row["size_bytes"]
    wanted = _byte_range(request, size) if size else None
    start, end = wanted if wanted else (0, None)
    try:
        reader = await storage.get(row["storage_key"], start=start, end=end)
    except ObjectNotFound:
        log.error("image %s has a row but no object %s", row["id"], row["storage_key"])
        raise NotFound("The image's file is missing") from None
    async with reader:
        response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
        response.content_type = row["content_type"]
        response.content_length = reader.length
        response.headers["Content-Disposition"] = content_disposition(row["filename"])
        if wanted:
            response.headers["Content-Range"] = f"bytes {start}-{start + reader.length - 1}/{size}"
        await response.prepare(request)
        async for chunk in reader:
            await response.write(chunk)
        await response.write_eof()
    return response
