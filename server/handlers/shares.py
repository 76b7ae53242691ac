"""Share links, the owner's side: make one to an image or album, list them, revoke one."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from aiohttp_apigami import (
    docs,
    json_schema,
    match_info_schema,
    querystring_schema,
    response_schema,
)

from ..auth import Access, access, require_scope, require_user
from ..keys import POOL, QUERIES
from ..schemas.albums import AlbumPathSchema
from ..schemas.common import error_responses
from ..schemas.images import ImagePathSchema
from ..schemas.shares import (
    NewShareRequestSchema,
    NewShareSchema,
    ShareListQuerySchema,
    ShareListSchema,
    SharePathSchema,
    share_json,
)
from ..scopes import READ, SHARE
from ..services import shares

_MADE = ("Whoever holds the link sees {what} without an account: metadata, previews and "
         "thumbnails, and the file only with `allow_download` (the copy without location, "
         "never a GPS original). The token is in this answer only. Revoking the link, "
         "deleting the {target}, or making it private again ends access at once. The key "
         "needs the `read` scope too (else 403 `missing_scope`): a link shows what the key "
         "could see.")


@access(Access.KEY, scope=SHARE)
@docs(tags=["shares"], summary="Make a share link to one of your images",
      description=_MADE.format(what="the image", target="image"),
      responses=error_responses(400, 401, 404, 422))
@match_info_schema(ImagePathSchema)
@json_schema(NewShareRequestSchema, required=True)
@response_schema(NewShareSchema, 201, description="The link, with its token shown this once")
async def share_image(request: web.Request) -> web.Response:
    return await _make(request, image_id=request["match_info"]["id"])


@access(Access.KEY, scope=SHARE)
@docs(tags=["shares"], summary="Make a share link to one of your albums",
      description=_MADE.format(what="the album and its images", target="album"),
      responses=error_responses(400, 401, 404, 422))
@match_info_schema(AlbumPathSchema)
@json_schema(NewShareRequestSchema, required=True)
@response_schema(NewShareSchema, 201, description="The link, with its token shown this once")
async def share_album(request: web.Request) -> web.Response:
    return await _make(request, album_id=request["match_info"]["id"])


async def _make(request: web.Request, *, image_id: UUID | None = None,
                album_id: UUID | None = None) -> web.Response:
    caller = require_user(request)
    require_scope(caller, READ)
    body = request["json"]
    async with request.app[POOL].acquire() as conn:
        link = await shares.create(
            conn, request.app[QUERIES], caller.id, image_id=image_id, album_id=album_id,
            allow_download=body["allow_download"], expires_in_seconds=body["expires_in_seconds"])
    return web.json_response(share_json(link), status=201)


@access(Access.KEY, scope=SHARE)
@docs(tags=["shares"], summary="Your share links, newest first, never their tokens",
      description="Expired links are listed (`expired`) until revoked; `active` is false for "
                  "a link that shows nothing now.",
      responses=error_responses(401, 422))
@querystring_schema(ShareListQuerySchema)
@response_schema(ShareListSchema, 200, description="The links")
async def list_shares(request: web.Request) -> web.Response:
    caller = require_user(request)
    query = request["querystring"]
    async with request.app[POOL].acquire() as conn:
        rows = await shares.list_links(conn, request.app[QUERIES], caller.id,
                                       image_id=query.get("image_id"),
                                       album_id=query.get("album_id"))
    return web.json_response({"shares": [share_json(r) for r in rows]})


@access(Access.KEY, scope=SHARE)
@docs(tags=["shares"], summary="Revoke one of your share links",
      description="From the moment this answers, the link's token is refused (404) by every "
                  "process and host.",
      responses={204: {"description": "Revoked"}, **error_responses(401, 404, 422)})
@match_info_schema(SharePathSchema)
async def revoke_share(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        await shares.revoke(conn, request.app[QUERIES], caller.id, request["match_info"]["id"])
    return web.Response(status=204)
