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


def etag_matches(header: str, etag: str) -> bool:
    candidates = [c.strip().removeprefix("W/") for c in header.split(",")]
    return "*" in candidates or etag in candidates


_RANGE = re.compile(r"bytes=(\d{1,18})?-(\d{1,18})?")


def _unsatisfiable(size: int, why: str) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(why, details={"size": size},
                               headers={"Content-Range": f"bytes */{size}"})


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single byte range (RFC 9110 §14.1); None for the whole
    file: no range, several ranges, or a malformed one (which RFC 9110 lets us ignore)."""
    match = _RANGE.fullmatch(header.replace(" ", ""))
    if match is None or match.group(1) is match.group(2) is None:
        return None
    first, last = match.group(1), match.group(2)
    if first is None:  # suffix: the last N bytes
        if int(last) == 0:
            raise _unsatisfiable(size, "A suffix range of zero bytes selects nothing")
        return max(0, size - int(last)), size - 1
    start = int(first)
    if last is not None and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise _unsatisfiable(size, "The range starts after the end of the file")
    return start, size - 1 if last is None else min(int(last), size - 1)


def _range_applies(request: web.Request, etag: str) -> bool:
    """If-Range: the range holds only if the client's validator is our (strong) ETag; a date
    never matches, as we send no Last-Modified. Otherwise the whole file is sent."""
    if_range = request.headers.get("If-Range")
    return if_range is None or if_range.strip() == etag


def has_credentials(request: web.Request) -> bool:
    return "Authorization" in request.headers or "X-API-Key" in request.headers


def cache_control(request: web.Request, visibility: str, public_seconds: int) -> dict[str, str]:
    """Only anonymous answers about public images may sit in a shared cache, and only for
    `public_seconds` (how long a copy may outlive a switch to private); an answer to
    credentials depends on who asks (the owner gets the original, GPS included)."""
    shared = visibility == "public" and not has_credentials(request)
    return {"Cache-Control": f"public, max-age={public_seconds}" if shared
            else "private, max-age=0",
            "Vary": "Authorization, X-API-Key"}


async def redirect_to_storage(
    request: web.Request, storage: Storage, key: str, *, content_type: str, filename: str,
    cache: str, seconds: int,
) -> web.Response | None:
    """302 to a presigned URL for the object (the caller has decided access), with the
    headers the object is to be served with; None where storage has no such URLs, and for
    HEAD (a presigned GET signs the method too)."""
    if request.method == "HEAD":
        return None
    url = await storage.download_url(key, content_type=content_type, cache_control=cache,
                                     disposition=content_disposition(filename), expires=seconds)
    if url is None:
        return None
    # The redirect itself may be reused only while its URL is valid, by this client alone.
    return web.Response(status=302, headers={
        "Location": url, "Cache-Control": f"private, max-age={max(0, seconds - 60)}",
        "Vary": "Authorization, X-API-Key"})


async def serve_image_file(
    request: web.Request, storage: Storage, row: Record | Mapping[str, Any], *,
    public_seconds: int, redirect_seconds: int | None = None,
    caching: dict[str, str] | None = None,
) -> web.StreamResponse:
    """The file's bytes (or a part, or a 304, or a redirect to storage). `caching` replaces
    the Cache-Control and Vary that the image's visibility and the credentials would give."""
    etag = f'"{row["sha256"].hex()}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff",
               **(caching or cache_control(request, row["visibility"], public_seconds))}
    if etag_matches(request.headers.get("If-None-Match", ""), etag):
        return web.Response(status=304, headers=headers)
    if redirect_seconds is not None:
        redirect = await redirect_to_storage(
            request, storage, row["storage_key"], content_type=row["content_type"],
            filename=row["filename"], cache=headers["Cache-Control"], seconds=redirect_seconds)
        if redirect is not None:
            return redirect
    size = row["size_bytes"]
    wanted = None
    if size and "Range" in request.headers and _range_applies(request, etag):
        wanted = parse_range(request.headers["Range"], size)
    start, end = wanted if wanted else (0, size - 1)
    response = web.StreamResponse(status=206 if wanted else 200, headers=headers)
    response.content_type = row["content_type"]
    response.content_length = end - start + 1 if size else 0
    response.headers["Content-Disposition"] = content_disposition(row["filename"])
    if wanted:
        response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if request.method == "HEAD":  # headers only: a body would be read as the next response
        await response.prepare(request)
        await response.write_eof()
        return response
    try:
        reader = await storage.get(row["storage_key"], start=start, end=end if wanted else None)
    except ObjectNotFound:
        log.error("image %s has a row but no object %s", row["id"], row["storage_key"])
        raise NotFound("The image's file is missing") from None
    async with reader:
        await response.prepare(request)
        async for chunk in reader:
            await response.write(chunk)
        await response.write_eof()
    return response
