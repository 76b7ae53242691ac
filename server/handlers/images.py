"""Images: upload, list, read, download, change, delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import web
from aiohttp_apigami import (
    docs,
    json_schema,
    match_info_schema,
    querystring_schema,
    response_schema,
)

from ..auth import Access, access, current_user_id, require_user
from ..errors import UnsupportedMediaType, ValidationFailed
from ..ingest import Limits, ingest_upload, open_multipart, upload_fingerprint
from ..keys import CONFIG, CPU_POOL, CURSORS, POOL, QUERIES, STORAGE
from ..schemas.common import error_responses
from ..schemas.images import (
    FILE_PARAMETERS,
    FILE_RESPONSES,
    IDEMPOTENCY_PARAMETER,
    UPLOAD_BODY,
    UPLOAD_RESPONSES,
    BulkDeletedSchema,
    BulkDeleteSchema,
    ImageChangesSchema,
    ImagePageSchema,
    ImagePathSchema,
    ImageSchema,
    KnownQuerySchema,
    KnownSchema,
    ListImagesQuerySchema,
    image_json,
)
from ..scopes import READ, UPLOAD, WRITE
from ..services import idempotency, images, matching
from ..services.images import MAX_DESCRIPTION_CHARS, MAX_TITLE_CHARS
from .downloads import serve_image_file

R = TypeVar("R")
UPLOAD_ROUTE = "POST /images"


@access(Access.KEY, scope=UPLOAD)
@docs(tags=["images"], summary="Upload one or more images (all or nothing)",
      description="Multipart: one or more `file` parts, plus `title`, `description`, `tags`, "
                  "`visibility`, before or after the files. Optional `metadata` parts, JSON "
                  "objects one per `file` part in order (one part each, or one part holding "
                  "the array), set each file's own "
                  "`title`, `description`, `tags` or `visibility`; the other fields are the "
                  "defaults for the keys an object leaves out. If any part is bad, nothing "
                  "is stored and the error names the part. With an `Idempotency-Key`, the "
                  "same request again within 24 hours gets the first answer (with "
                  "`Idempotent-Replayed: true`) and stores nothing twice.",
      parameters=[IDEMPOTENCY_PARAMETER], requestBody=UPLOAD_BODY,
      responses={**error_responses(400, 401, 413, 415, 422, 503), **UPLOAD_RESPONSES})
async def upload(request: web.Request) -> web.Response:
    caller = require_user(request)
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("Uploads are multipart/form-data",
                                   details={"content_type": request.content_type})
    app = request.app
    config = app[CONFIG]
    limits = Limits(config.max_upload_bytes, config.max_files_per_request,
                    config.max_image_pixels, config.read_timeout, config.min_upload_rate,
                    thumbnails=config.upload_thumbnails)
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return web.json_response((await _store_upload(request, caller.id, limits))[0],
                                 status=201)
    held = await idempotency.claim(app[POOL], app[QUERIES], caller.id,
                                   idempotency.check_key(key), UPLOAD_ROUTE)
    if not held.taken:  # an answer exists: the same request gets it again, without the work
        fields, files = await upload_fingerprint(await open_multipart(request), limits)
        stored = held.replay(idempotency.fingerprint(UPLOAD_ROUTE, fields, files))
        return web.Response(status=stored.status, text=stored.body,
                            content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    async with idempotency.holding(app[POOL], app[QUERIES], held):
        body, request_fingerprint = await _store_upload(request, caller.id, limits)
        text = await idempotency.complete(app[POOL], app[QUERIES], held, request_fingerprint,
                                          201, body)
    return web.Response(status=201, text=text, content_type="application/json")


async def _store_upload(
    request: web.Request, owner_id: UUID, limits: Limits
) -> tuple[dict[str, Any], bytes]:
    """The upload's answer, and its fingerprint (for Idempotency-Key)."""
    app = request.app
    ingested = await ingest_upload(await open_multipart(request), app[STORAGE], app[CPU_POOL],
                                   app[POOL], app[QUERIES], owner_id, limits)
    rows, new_images = ingested.rows, ingested.images
    async with app[POOL].acquire() as conn:
        duplicates = [await matching.near_duplicates(
            conn, app[QUERIES], new.signals, row["phash"], owner_id, row["id"],
            None if new.features is None else matching.LocalQuery(
                new.features, (new.width, new.height), app[CPU_POOL], row["id"]))
            for row, new in zip(rows, new_images, strict=True)]
    body = {"images": [
        {**image_json(row, owner_id), "near_duplicates": [
            {"id": str(d.image_id), "distance": d.distance, "score": d.score,
             "matched_by": d.json()} for d in found]}
        for row, found in zip(rows, duplicates, strict=True)
    ]}
    return body, idempotency.fingerprint(UPLOAD_ROUTE, ingested.fields, ingested.files)


@access(Access.KEY, scope=UPLOAD)
@docs(tags=["images"], summary="Which of these SHA-256 digests your images have",
      description="For resumable imports: a client hashes its files and uploads only those "
                  "the service does not hold yet. Only your own images count.",
      responses=error_responses(400, 401, 422))
@json_schema(KnownQuerySchema, required=True)
@response_schema(KnownSchema, 200, description="Your images with these digests")
async def known_images(request: web.Request) -> web.Response:
    caller = require_user(request)
    digests = [bytes.fromhex(d) for d in dict.fromkeys(request["json"]["sha256"])]
    async with request.app[POOL].acquire() as conn:
        found = [{"sha256": r["sha256"], "id": str(r["id"])} async for r in
                 request.app[QUERIES].known_images(conn, owner_id=caller.id, digests=digests)]
    return web.json_response({"known": found})


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["images"], summary="Visible images: public ones and your own, newest first",
      responses=error_responses(401, 422))
@querystring_schema(ListImagesQuerySchema)
@response_schema(ImagePageSchema, 200, description="One page of images")
async def list_images(request: web.Request) -> web.Response:
    query = request["querystring"]
    async with request.app[POOL].acquire() as conn:
        rows, next_cursor = await images.list_visible(
            conn, request.app[QUERIES], request.app[CURSORS], viewer_id=current_user_id(request),
            owner=query.get("owner"), tag=query.get("tag", "").strip().lower() or None,
            visibility=query.get("visibility"), cursor=query.get("cursor"),
            limit=query["limit"],
        )
    viewer_id = current_user_id(request)
    return web.json_response({"images": [image_json(r, viewer_id) for r in rows],
                              "next_cursor": next_cursor})


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["images"], summary="One image's metadata", responses=error_responses(401, 404, 422))
@match_info_schema(ImagePathSchema)
@response_schema(ImageSchema, 200, description="The image")
async def get_image(request: web.Request) -> web.Response:
    async with request.app[POOL].acquire() as conn:
        row = await images.get_visible(conn, request.app[QUERIES], current_user_id(request),
                                       request["match_info"]["id"])
    return web.json_response(image_json(row, current_user_id(request)))


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["images"], summary="The original bytes (Range and If-None-Match supported)",
      parameters=FILE_PARAMETERS,
      responses={**FILE_RESPONSES, **error_responses(401, 404, 416, 422, 503)})
@match_info_schema(ImagePathSchema)
async def download(request: web.Request) -> web.StreamResponse:
    viewer_id = current_user_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await images.get_visible(conn, request.app[QUERIES], viewer_id,
                                       request["match_info"]["id"])
    served = images.as_served(row, viewer_id)
    config = request.app[CONFIG]
    return await serve_image_file(
        request, request.app[STORAGE], served, public_seconds=config.public_cache_seconds,
        redirect_seconds=config.download_url_seconds if config.downloads == "redirect" else None)


@access(Access.KEY, scope=WRITE)
@docs(tags=["images"], summary="Change title, description, tags or visibility (owner only)",
      responses=error_responses(400, 401, 403, 404, 422))
@match_info_schema(ImagePathSchema)
@json_schema(ImageChangesSchema, required=True)
@response_schema(ImageSchema, 200, description="The changed image")
async def update_image(request: web.Request) -> web.Response:
    caller = require_user(request)
    changes = request["json"]
    if not changes:
        raise ValidationFailed("Nothing to change",
                               details={"_schema": ["Give at least one field to change."]})
    async with request.app[POOL].acquire() as conn:
        row = await images.update_image(
            conn, request.app[QUERIES], caller.id, request["match_info"]["id"],
            title=_maybe(changes, "title", lambda v: images.check_text("title", v,
                                                                          MAX_TITLE_CHARS)),
            description=_maybe(changes, "description", lambda v: images.check_text(
                "description", v, MAX_DESCRIPTION_CHARS, multiline=True)),
            tags=_maybe(changes, "tags", images.normalize_tags),
            visibility=changes.get("visibility"),
        )
    return web.json_response(image_json(row, caller.id))


def _maybe(changes: dict[str, Any], name: str, check: Callable[[Any], R]) -> R | None:
    return check(changes[name]) if name in changes else None


@access(Access.KEY, scope=WRITE)
@docs(tags=["images"], summary="Delete one of your images: the row, then the object",
      responses={204: {"description": "Deleted"}, **error_responses(401, 403, 404, 422)})
@match_info_schema(ImagePathSchema)
async def delete_image(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        await images.delete_image(conn, request.app[QUERIES], request.app[STORAGE], caller.id,
                                  request["match_info"]["id"])
    return web.Response(status=204)


@access(Access.KEY, scope=WRITE)
@docs(tags=["images"], summary="Delete up to 100 of your images at once",
      responses=error_responses(400, 401, 422))
@json_schema(BulkDeleteSchema, required=True)
@response_schema(BulkDeletedSchema, 200, description="Which ids were deleted, which not found")
async def delete_images(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        deleted, not_found = await images.delete_many(
            conn, request.app[QUERIES], request.app[STORAGE], caller.id, request["json"]["ids"]
        )
    return web.json_response(BulkDeletedSchema().dump({"deleted": deleted,
                                                       "not_found": not_found}))
