"""GET /images/{id}/thumbnail: small upright pictures for grids and detail views."""

from __future__ import annotations

from pathlib import PurePosixPath

from aiohttp import web
from aiohttp_apigami import docs, match_info_schema, querystring_schema

from ..auth import Access, access, current_user_id
from ..cpu import run_cpu
from ..db.queries import Record
from ..imaging.thumbnails import THUMBNAIL_VERSION, as_jpeg
from ..keys import CONFIG, CPU_POOL, POOL, QUERIES, STORAGE
from ..schemas.common import error_responses
from ..schemas.images import (
    THUMBNAIL_PARAMETERS,
    THUMBNAIL_RESPONSES,
    ImagePathSchema,
    ThumbnailQuerySchema,
)
from ..scopes import READ
from ..services import images
from ..services.thumbnails import thumbnail_bytes
from .accept import quality
from .downloads import content_disposition, etag_matches, has_credentials, redirect_to_storage

YEAR = 365 * 24 * 3600


def accepts_webp(accept: str | None) -> bool:
    """Whether an Accept header admits image/webp (no header admits anything)."""
    return not accept or not accept.strip() or quality(accept, "image/webp") > 0


def _cache_control(request: web.Request, image: Record, public_seconds: int) -> str:
    """A URL carrying the current pipeline version never changes content, so the owner's
    browser may keep it for good. Anyone else keeps it `public_seconds` at most, as the
    original: a picture made private or deleted must not outlive that in their caches."""
    current = request.query.get("v") == str(THUMBNAIL_VERSION)
    if current_user_id(request) == image["owner_id"]:
        return f"private, max-age={YEAR}, immutable" if current else "private, max-age=0"
    if image["visibility"] != "public":  # not reached (404), but never cached if it were
        return "private, max-age=0"
    scope = "private" if has_credentials(request) else "public"
    return f"{scope}, max-age={public_seconds}"


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["images"], summary="A thumbnail: upright, no metadata, WebP or JPEG",
      description="The same visibility as the image. Thumbnails missing (images from before "
                  "thumbnails, or the large size before its first request) are made on "
                  "request. `thumbnail_url` and `preview_url` of an Image give the URLs.",
      parameters=THUMBNAIL_PARAMETERS,
      responses={**THUMBNAIL_RESPONSES, **error_responses(401, 404, 422, 503)})
@match_info_schema(ImagePathSchema)
@querystring_schema(ThumbnailQuerySchema)
async def thumbnail(request: web.Request) -> web.Response:
    app = request.app
    size: int = request["querystring"]["size"]
    async with app[POOL].acquire() as conn:
        image = await images.get_visible(conn, app[QUERIES], current_user_id(request),
                                         request["match_info"]["id"])
        known = await app[QUERIES].get_thumbnail(conn, image_id=image["id"], size=size)
    return await serve_thumbnail(
        request, image, size, known,
        cache_control=_cache_control(request, image, app[CONFIG].public_cache_seconds),
        vary="Accept, Authorization, X-API-Key", redirect=True)


async def serve_thumbnail(
    request: web.Request, image: Record, size: int, known: Record | None, *,
    cache_control: str, vary: str, redirect: bool,
) -> web.Response:
    """The thumbnail's bytes (made now if missing), or a 304, or (with `redirect`, where
    storage presigns) a 302 to the stored WebP. The caller has decided access."""
    app = request.app
    webp = accepts_webp(request.headers.get("Accept"))
    headers = {"Cache-Control": cache_control, "Vary": vary, "X-Content-Type-Options": "nosniff"}

    def etag(sha256: bytes) -> str:
        return f'"{sha256.hex()[:32]}{"" if webp else "-jpeg"}"'

    if known is not None and etag_matches(request.headers.get("If-None-Match", ""),
                                          etag(known["sha256"])):
        return web.Response(status=304, headers={**headers, "ETag": etag(known["sha256"])})
    name = f"{PurePosixPath(image['filename']).stem or 'image'}-{size}.{'webp' if webp else 'jpg'}"
    config = app[CONFIG]
    if redirect and config.downloads == "redirect" and webp and known is not None:
        redirected = await redirect_to_storage(
            request, app[STORAGE], known["storage_key"], content_type="image/webp",
            filename=name, cache=headers["Cache-Control"], seconds=config.download_url_seconds)
        if redirected is not None:
            return redirected
    stored, data = await thumbnail_bytes(app[POOL], app[QUERIES], app[STORAGE], app[CPU_POOL],
                                         image, size, known)
    if not webp:
        data = await run_cpu(app[CPU_POOL], as_jpeg, data)
    headers.update({"ETag": etag(stored.sha256), "Content-Disposition": content_disposition(name)})
    # aiohttp sends no body on HEAD, and keeps the Content-Length of the one it would send.
    return web.Response(body=data, headers=headers,
                        content_type="image/webp" if webp else "image/jpeg")
