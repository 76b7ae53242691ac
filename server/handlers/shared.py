"""What a share link shows, to whoever holds its token: no account, no API key.

The token travels only in the `X-Share-Token` header, never in a URL (URLs end up in logs,
histories and Referer headers). Every answer under /shared is private to its recipient and
never stored (`Cache-Control: private, no-store`): a shared cache must not hand a link's
picture to someone without the token, nor keep serving it once the link is revoked.
"""

from __future__ import annotations

from typing import Any

from aiohttp import hdrs, web
from aiohttp_apigami import docs, match_info_schema, querystring_schema, response_schema

from ..auth import SHARED_LINK, Access, access
from ..db.pool import Connection
from ..errors import DownloadNotAllowed
from ..keys import CONFIG, CURSORS, POOL, QUERIES, STORAGE
from ..schemas.common import error_responses
from ..schemas.images import (
    FILE_PARAMETERS,
    FILE_RESPONSES,
    THUMBNAIL_PARAMETERS,
    THUMBNAIL_RESPONSES,
    ImagePathSchema,
    ThumbnailQuerySchema,
)
from ..schemas.search import SearchPageSchema
from ..schemas.shares import (
    SHARED_IMAGE_SEARCH_BODY,
    SHARED_IMAGE_SEARCH_PARAMS,
    SHARED_PREFIX,
    SharedAlbumSchema,
    SharedImagePageSchema,
    SharedImageSchema,
    SharedImagesQuerySchema,
    SharedSchema,
    SharedSearchQuerySchema,
    shared_image_json,
)
from ..schemas.similar import SimilarPageSchema
from ..services import images, search, shares, similar
from ..services.shares import HEADER, OpenLink
from ..services.within import Within
from .downloads import serve_image_file
from .similar import answer_image_search
from .thumbnails import serve_thumbnail

NOT_STORED = {"Cache-Control": "private, no-store"}
_TOKEN_ERRORS = error_responses(401, 404)


def is_shared_path(path: str) -> bool:
    return path == SHARED_PREFIX or path.startswith(SHARED_PREFIX + "/")


async def keep_shared_answers_private(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer under /shared, errors and streamed files included: never stored by any
    cache, and varying by the token."""
    if is_shared_path(request.path):
        response.headers.update(NOT_STORED)
        if HEADER not in response.headers.get(hdrs.VARY, ""):
            response.headers.add(hdrs.VARY, HEADER)


@access(Access.SHARE_LINK)
@docs(tags=["shared"], summary="What a share link shows: an image, or an album",
      description="No account needed: send the link's token as `X-Share-Token`. An unknown, "
                  "revoked or expired token, or one whose image or album was made private "
                  "since, is 404.",
      responses=_TOKEN_ERRORS)
@response_schema(SharedSchema, 200, description="The link's image or album")
async def get_shared(request: web.Request) -> web.Response:
    link = request[SHARED_LINK]
    body: dict[str, Any] = SharedSchema().dump(
        {"kind": link.kind, "owner": link.owner, "allow_download": link.allow_download,
         "expires_at": link.expires_at, "image": None, "album": None})
    async with request.app[POOL].acquire() as conn:
        if link.image_id is not None:
            body["image"] = shared_image_json(
                await shares.image(conn, request.app[QUERIES], link, link.image_id))
        else:
            album = await request.app[QUERIES].shared_album(conn, digest=link.digest)
            if album is None:  # ended between the two reads
                raise shares.gone()
            body["album"] = SharedAlbumSchema().dump(album)
    return web.json_response(body)


@access(Access.SHARE_LINK)
@docs(tags=["shared"], summary="A share link's images, in the album's order",
      description="An image link's one image; an album link's images.",
      responses={**_TOKEN_ERRORS, **error_responses(422)})
@querystring_schema(SharedImagesQuerySchema)
@response_schema(SharedImagePageSchema, 200, description="One page of the link's images")
async def list_shared_images(request: web.Request) -> web.Response:
    link = request[SHARED_LINK]
    query = request["querystring"]
    async with request.app[POOL].acquire() as conn:
        page, next_cursor = await shares.images(conn, request.app[QUERIES],
                                                request.app[CURSORS], link,
                                                cursor=query.get("cursor"), limit=query["limit"])
    return web.json_response({
        "images": [{**shared_image_json(row), "position": index} for index, row in page],
        "next_cursor": next_cursor})


@access(Access.SHARE_LINK)
@docs(tags=["shared"], summary="One of a share link's images",
      responses={**_TOKEN_ERRORS, **error_responses(422)})
@match_info_schema(ImagePathSchema)
@response_schema(SharedImageSchema, 200, description="The image, as the link shows it")
async def get_shared_image(request: web.Request) -> web.Response:
    link = request[SHARED_LINK]
    async with request.app[POOL].acquire() as conn:
        row = await shares.image(conn, request.app[QUERIES], link, request["match_info"]["id"])
    return web.json_response(shared_image_json(row))


@access(Access.SHARE_LINK)
@docs(tags=["shared"], summary="A thumbnail of one of a share link's images",
      description="As `GET /images/{id}/thumbnail`, but never cached by anyone but the "
                  "recipient, and never a redirect to storage (whose URL would outlive a "
                  "revoke).",
      parameters=THUMBNAIL_PARAMETERS,
      responses={**THUMBNAIL_RESPONSES, **_TOKEN_ERRORS, **error_responses(422, 503)})
@match_info_schema(ImagePathSchema)
@querystring_schema(ThumbnailQuerySchema)
async def shared_thumbnail(request: web.Request) -> web.Response:
    link = request[SHARED_LINK]
    app = request.app
    size: int = request["querystring"]["size"]
    async with app[POOL].acquire() as conn:
        image = await shares.image(conn, app[QUERIES], link, request["match_info"]["id"])
        known = await app[QUERIES].get_thumbnail(conn, image_id=image["id"], size=size)
    return await serve_thumbnail(request, image, size, known,
                                 cache_control=NOT_STORED["Cache-Control"],
                                 vary=f"Accept, {HEADER}", redirect=False)


@access(Access.SHARE_LINK)
@docs(tags=["shared"], summary="The file of one of a share link's images, if the link allows",
      description="The copy without location (never an original with a GPS position), only "
                  "for a link made with `allow_download`; else 403 `download_not_allowed`. "
                  "Range and If-None-Match as `GET /images/{id}/file`; always streamed by the "
                  "server, never a redirect to storage.",
      parameters=FILE_PARAMETERS,
      responses={**FILE_RESPONSES, **error_responses(401, 403, 404, 416, 422, 503)})
@match_info_schema(ImagePathSchema)
async def shared_file(request: web.Request) -> web.StreamResponse:
    link = request[SHARED_LINK]
    if not link.allow_download:
        raise DownloadNotAllowed("This share link shows the picture but does not give its file")
    app = request.app
    async with app[POOL].acquire() as conn:
        row = await shares.image(conn, app[QUERIES], link, request["match_info"]["id"])
    served = images.as_served(row, None)  # as to anyone but the owner: without location
    return await serve_image_file(
        request, app[STORAGE], served, public_seconds=app[CONFIG].public_cache_seconds,
        caching={**NOT_STORED, "Vary": HEADER})


async def _within(conn: Connection, request: web.Request, link: OpenLink) -> Within:
    return Within(f"share:{link.id}",
                  tuple(await shares.image_ids(conn, request.app[QUERIES], link)))


@access(Access.SHARE_LINK)
@docs(tags=["shared"], summary="Full-text search among a share link's images",
      description="As `GET /search`, among the images the link shows and no others.",
      responses={**_TOKEN_ERRORS, **error_responses(422, 503)})
@querystring_schema(SharedSearchQuerySchema)
@response_schema(SearchPageSchema, 200, description="One page of results, best first")
async def shared_text_search(request: web.Request) -> web.Response:
    link = request[SHARED_LINK]
    args = request["querystring"]
    app = request.app
    async with app[POOL].acquire() as conn:
        filters = search.SearchFilters(within=await _within(conn, request, link))
        # The owner's view of the owner's images, narrowed to the link's: `within` is the rule.
        rows, next_cursor = await search.search(
            conn, app[QUERIES], app[CURSORS], viewer_id=link.owner_id, q=args["q"],
            filters=filters, cursor=args.get("cursor"), limit=args["limit"],
            timeout=app[CONFIG].search_timeout)
    results = [{**shared_image_json(row), "score": row["score"], "headline": row["headline"]}
               for row in rows]
    return web.json_response({"results": results, "next_cursor": next_cursor})


@access(Access.SHARE_LINK)
@docs(tags=["shared"], summary="Search by image among a share link's images",
      description="As `POST /search/image` (without `owner` and `album`), among the images "
                  "the link shows and no others. The query image is not stored.",
      requestBody=SHARED_IMAGE_SEARCH_BODY,
      responses={**_TOKEN_ERRORS, **error_responses(400, 413, 415, 422)})
@response_schema(SimilarPageSchema, 200, description="Matches, nearest first")
async def shared_image_search(request: web.Request) -> web.Response:
    link = request[SHARED_LINK]

    async def filters_for(conn: Connection, args: dict[str, Any]) -> similar.SimilarFilters:
        return similar.SimilarFilters(q=args.get("q"),
                                      tag=(args.get("tag") or "").strip().lower() or None,
                                      within=await _within(conn, request, link))

    return await answer_image_search(request, SHARED_IMAGE_SEARCH_PARAMS, link.owner_id,
                                     filters_for, shared_image_json)
