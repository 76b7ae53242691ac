"""Search by image: from a posted query image, or from a stored image."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp import web
from aiohttp_apigami import docs, match_info_schema, querystring_schema, response_schema
from marshmallow import ValidationError

from ..auth import Access, access, current_user_id
from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import UnsupportedMediaType, ValidationFailed
from ..imaging import to_hex
from ..keys import CONFIG, CPU_POOL, CURSORS, POOL, QUERIES
from ..schemas.common import error_responses
from ..schemas.images import ImagePathSchema, image_json
from ..schemas.similar import (
    IMAGE_SEARCH_BODY,
    ImageSearchParamsSchema,
    SimilarPageSchema,
    SimilarParamsSchema,
)
from ..services import similar
from ..services.cursors import Cursors
from ..services.images import resolve_owner
from ..uploads import Limits, open_multipart, read_query_image


def _hashes_json(phash: int, dhash: int | None = None, ahash: int | None = None,
                 whash: int | None = None, colorhash: str | None = None) -> dict[str, Any]:
    values = {"phash": phash, "dhash": dhash, "ahash": ahash, "whash": whash}
    out: dict[str, Any] = {k: to_hex(v) for k, v in values.items() if v is not None}
    if colorhash is not None:
        out["colorhash"] = colorhash
    return out


async def _page(
    conn: Connection, queries: Queries, cursors: Cursors, viewer_id: UUID | None,
    hashes: list[int], args: dict[str, Any], exclude_id: UUID | None = None,
) -> tuple[list[Record], str | None] | None:
    owner_id = await resolve_owner(conn, queries, viewer_id, args.get("owner"))
    if owner_id is False:
        return None
    filters = similar.SimilarFilters(
        q=args.get("q"), tag=(args.get("tag") or "").strip().lower() or None,
        owner_id=owner_id, exclude_id=exclude_id,
    )
    return await similar.within(
        conn, queries, cursors, hashes, viewer_id=viewer_id, max_distance=args["max_distance"],
        filters=filters, cursor=args.get("cursor"), limit=args["limit"],
    )


def _answer(query_hashes: dict[str, Any],
            page: tuple[list[Record], str | None] | None) -> web.Response:
    rows, next_cursor = page or ([], None)
    return web.json_response({
        "query": {"hashes": query_hashes},
        "results": [{**image_json(row), "distance": row["distance"]} for row in rows],
        "next_cursor": next_cursor,
    })


@access(Access.OPTIONAL_KEY)
@docs(tags=["search"], summary="Find images similar to a posted one (it is not stored)",
      description="Multipart: `file`, and optionally `max_distance`, `limit`, `cursor`, `q`, "
                  "`tag`, `owner`, `orientations`. Results by (distance, id); the query image "
                  "goes through the upload pipeline (limits, sniffing, EXIF orientation).",
      requestBody=IMAGE_SEARCH_BODY, responses=error_responses(400, 401, 413, 415, 422))
@response_schema(SimilarPageSchema, 200, description="Matches, nearest first")
async def search_by_image(request: web.Request) -> web.Response:
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("Send the query image as multipart/form-data",
                                   details={"content_type": request.content_type})
    app = request.app
    config = app[CONFIG]
    limits = Limits(config.max_upload_bytes, 1, config.max_image_pixels, config.read_timeout,
                    config.min_upload_rate)
    facts, fields = await read_query_image(await open_multipart(request), app[CPU_POOL], limits)
    try:
        args = ImageSearchParamsSchema().load(fields)
    except ValidationError as exc:
        raise ValidationFailed("Invalid search parameters", details=exc.messages_dict) from None
    hashes = [facts.phash]
    if args["orientations"] == "all":
        hashes += list(facts.variant_phashes)
    async with app[POOL].acquire() as conn:
        page = await _page(conn, app[QUERIES], app[CURSORS], current_user_id(request), hashes,
                           args)
    return _answer(_hashes_json(facts.phash, facts.dhash, facts.ahash, facts.whash,
                                facts.colorhash), page)


@access(Access.OPTIONAL_KEY)
@docs(tags=["search"], summary="Images similar to a stored one (the image itself left out)",
      responses=error_responses(401, 404, 422))
@match_info_schema(ImagePathSchema)
@querystring_schema(SimilarParamsSchema)
@response_schema(SimilarPageSchema, 200, description="Matches, nearest first")
async def similar_to_image(request: web.Request) -> web.Response:
    viewer_id = current_user_id(request)
    image_id = request["match_info"]["id"]
    async with request.app[POOL].acquire() as conn:
        queries = request.app[QUERIES]
        phash = await similar.stored_phash(conn, queries, viewer_id, image_id)
        page = await _page(conn, queries, request.app[CURSORS], viewer_id, [phash],
                           request["querystring"], exclude_id=image_id)
    return _answer(_hashes_json(phash), page)
