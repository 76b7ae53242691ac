"""Albums: make, list, read, change, delete; add, move and remove their images."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import (
    docs,
    json_schema,
    match_info_schema,
    querystring_schema,
    response_schema,
)

from ..auth import Access, access, current_user_id, require_user
from ..errors import ValidationFailed
from ..keys import CURSORS, POOL, QUERIES
from ..schemas.albums import (
    AddedSchema,
    AddImagesSchema,
    AlbumChangesSchema,
    AlbumImagePageSchema,
    AlbumImagesQuerySchema,
    AlbumPageSchema,
    AlbumPathSchema,
    AlbumSchema,
    ListAlbumsQuerySchema,
    NewAlbumSchema,
    RemovedSchema,
    RemoveImagesSchema,
    album_json,
    ids_json,
)
from ..schemas.common import error_responses
from ..schemas.images import image_json
from ..scopes import READ, WRITE
from ..services import albums
from ..services.albums import MAX_DESCRIPTION_CHARS, MAX_IMAGES, MAX_TITLE_CHARS
from ..services.images import check_text

_NOT_OWN = "404 unless the album is yours (someone else's, public or not, is not found)."


def _title(value: str) -> str:
    title = check_text("title", value, MAX_TITLE_CHARS)
    if not title:
        raise ValidationFailed("title is empty", details={"title": ["Must not be blank."]})
    return title


def _changes(body: dict[str, Any]) -> dict[str, Any]:
    """The checked fields of a create or change request (text trimmed, NFC)."""
    changes: dict[str, Any] = {}
    if "title" in body:
        changes["title"] = _title(body["title"])
    if "description" in body:
        changes["description"] = check_text("description", body["description"],
                                            MAX_DESCRIPTION_CHARS, multiline=True)
    if "visibility" in body:
        changes["visibility"] = body["visibility"]
    return changes


@access(Access.KEY, scope=WRITE)
@docs(tags=["albums"], summary="Make an album (private unless asked otherwise)",
      responses=error_responses(400, 401, 403, 422))
@json_schema(NewAlbumSchema, required=True)
@response_schema(AlbumSchema, 201, description="The new album")
async def create_album(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        row = await albums.create_album(conn, request.app[QUERIES], caller.id,
                                        **_changes(request["json"]))
    return web.json_response(album_json(row), status=201)


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["albums"], summary="Visible albums: public ones and your own, newest first",
      responses=error_responses(401, 403, 422))
@querystring_schema(ListAlbumsQuerySchema)
@response_schema(AlbumPageSchema, 200, description="One page of albums")
async def list_albums(request: web.Request) -> web.Response:
    query = request["querystring"]
    async with request.app[POOL].acquire() as conn:
        rows, next_cursor = await albums.list_visible(
            conn, request.app[QUERIES], request.app[CURSORS], viewer_id=current_user_id(request),
            owner=query.get("owner"), cursor=query.get("cursor"), limit=query["limit"])
    return web.json_response({"albums": [album_json(r) for r in rows],
                              "next_cursor": next_cursor})


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["albums"], summary="One album",
      description="404 unless it is public or yours; `image_count` and `cover` count only "
                  "the images you may see.",
      responses=error_responses(401, 403, 404, 422))
@match_info_schema(AlbumPathSchema)
@response_schema(AlbumSchema, 200, description="The album")
async def get_album(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await albums.get_visible(conn, request.app[QUERIES], current_user_id(request),
                                       request["match_info"]["id"])
    return web.json_response(album_json(row))


@access(Access.KEY, scope=WRITE)
@docs(tags=["albums"], summary="Change an album's title, description or visibility",
      description=_NOT_OWN + " Making a public album private ends every share link made "
                             "for it before.",
      responses=error_responses(400, 401, 403, 404, 422))
@match_info_schema(AlbumPathSchema)
@json_schema(AlbumChangesSchema, required=True)
@response_schema(AlbumSchema, 200, description="The changed album")
async def update_album(request: web.Request) -> web.Response:
    caller = require_user(request)
    changes = _changes(request["json"])
    if not changes:
        raise ValidationFailed("Nothing to change",
                               details={"_schema": ["Give at least one field to change."]})
    async with request.app[POOL].acquire() as conn:
        row = await albums.update_album(conn, request.app[QUERIES], caller.id,
                                        request["match_info"]["id"], **changes)
    return web.json_response(album_json(row))


@access(Access.KEY, scope=WRITE)
@docs(tags=["albums"], summary="Delete an album (its images stay)", description=_NOT_OWN,
      responses={204: {"description": "Deleted"}, **error_responses(401, 403, 404, 422)})
@match_info_schema(AlbumPathSchema)
async def delete_album(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        await albums.delete_album(conn, request.app[QUERIES], caller.id,
                                  request["match_info"]["id"])
    return web.Response(status=204)


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["albums"], summary="An album's images, in album order",
      description="Only the images you may see (public ones, and yours): a public album "
                  "shows others only its public images. 404 unless the album is public or "
                  "yours.",
      responses=error_responses(401, 403, 404, 422))
@match_info_schema(AlbumPathSchema)
@querystring_schema(AlbumImagesQuerySchema)
@response_schema(AlbumImagePageSchema, 200, description="One page of the album's images")
async def list_album_images(request: web.Request) -> web.Response:
    viewer_id = current_user_id(request)
    query = request["querystring"]
    async with request.app[POOL].acquire() as conn:
        page, next_cursor = await albums.list_images(
            conn, request.app[QUERIES], request.app[CURSORS], viewer_id=viewer_id,
            album_id=request["match_info"]["id"], cursor=query.get("cursor"),
            limit=query["limit"])
    return web.json_response({
        "images": [{**image_json(row, viewer_id), "position": index} for index, row in page],
        "next_cursor": next_cursor})


@access(Access.KEY, scope=WRITE)
@docs(tags=["albums"], summary="Add your images to an album, or move them in it",
      description="The images go in the order given, before `before` or at the end; ones "
                  "already in the album move there (that is how to reorder). Only your own "
                  "images: any other id is `not_found`, never saying whether it exists. "
                  f"At most {MAX_IMAGES} images per album (409 `album_full`, nothing "
                  "changed). " + _NOT_OWN,
      responses=error_responses(400, 401, 403, 404, 409, 422))
@match_info_schema(AlbumPathSchema)
@json_schema(AddImagesSchema, required=True)
@response_schema(AddedSchema, 200, description="Which ids were added, moved, not found")
async def add_album_images(request: web.Request) -> web.Response:
    caller = require_user(request)
    body = request["json"]
    async with request.app[POOL].acquire() as conn:
        done = await albums.add_images(conn, request.app[QUERIES], caller.id,
                                       request["match_info"]["id"], body["image_ids"],
                                       body.get("before"))
    return web.json_response({"added": ids_json(done.added), "moved": ids_json(done.moved),
                              "not_found": ids_json(done.not_found)})


@access(Access.KEY, scope=WRITE)
@docs(tags=["albums"], summary="Take images out of an album (the images stay)",
      description=_NOT_OWN, responses=error_responses(400, 401, 403, 404, 422))
@match_info_schema(AlbumPathSchema)
@json_schema(RemoveImagesSchema, required=True)
@response_schema(RemovedSchema, 200, description="Which ids were removed, which not found")
async def remove_album_images(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        removed, not_found = await albums.remove_images(
            conn, request.app[QUERIES], caller.id, request["match_info"]["id"],
            request["json"]["image_ids"])
    return web.json_response({"removed": ids_json(removed), "not_found": ids_json(not_found)})
