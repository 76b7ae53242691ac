"""Search by image: from a posted query image, or from a stored image."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from aiohttp import web
from aiohttp_apigami import docs, match_info_schema, querystring_schema, response_schema
from marshmallow import Schema, ValidationError

from ..auth import Access, access, current_user_id
from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import UnsupportedMediaType, ValidationFailed
from ..imaging import to_hex
from ..imaging.signals import Signal
from ..ingest import Limits, open_multipart, query_facts
from ..keys import CONFIG, CPU_POOL, CURSORS, POOL, QUERIES
from ..schemas.common import error_responses
from ..schemas.images import ImagePathSchema, image_json
from ..schemas.similar import (
    IMAGE_SEARCH_BODY,
    ImageSearchParamsSchema,
    SimilarPageSchema,
    SimilarParamsSchema,
)
from ..scopes import READ
from ..services import albums, copies, matching, similar
from ..services.images import resolve_owner


def _hashes_json(phash: int, dhash: int, ahash: int, whash: int,
                 colorhash: str) -> dict[str, Any]:
    """A query's hashes as the API shows them."""
    return {"phash": to_hex(phash), "dhash": to_hex(dhash), "ahash": to_hex(ahash),
            "whash": to_hex(whash), "colorhash": colorhash}


Results = tuple[list[dict[str, Any]], str | None]  # the page's results and next cursor
_WHOLE = {"signal": "whole", "region": "whole", "variant": "whole", "query_part": "whole"}


async def _filters(
    conn: Connection, queries: Queries, viewer_id: UUID | None, args: dict[str, Any],
    exclude_id: UUID | None,
) -> similar.SimilarFilters | None:
    """The filters the arguments ask for; None when they can match nothing (no such owner);
    404 for an album the viewer may not see."""
    album = args.get("album")
    within = None if album is None else await albums.within(conn, queries, viewer_id, album)
    owner_id = await resolve_owner(conn, queries, viewer_id, args.get("owner"))
    if owner_id is False:
        return None
    return similar.SimilarFilters(
        q=args.get("q"), tag=(args.get("tag") or "").strip().lower() or None,
        owner_id=owner_id, exclude_id=exclude_id, within=within)


ToJson = Callable[[Record], dict[str, Any]]  # a result's image, as this caller sees it
FiltersFor = Callable[[Connection, dict[str, Any]], Awaitable[similar.SimilarFilters | None]]


async def _exact(conn: Connection, request: web.Request, hashes: list[int],
                 args: dict[str, Any], filters: similar.SimilarFilters,
                 viewer_id: UUID | None, to_json: ToJson) -> Results:
    rows, next_cursor = await similar.within(
        conn, request.app[QUERIES], request.app[CURSORS], hashes,
        viewer_id=viewer_id, max_distance=args["max_distance"],
        filters=filters, cursor=args.get("cursor"), limit=args["limit"])
    return [{**to_json(row), "distance": row["distance"],
             "score": 1 - row["distance"] / 64, "matched_by": _WHOLE} for row in rows], next_cursor


async def _robust(conn: Connection, request: web.Request, variants: list[Signal],
                  whole: list[int], args: dict[str, Any], filters: similar.SimilarFilters,
                  local: matching.LocalQuery | None, viewer_id: UUID | None,
                  to_json: ToJson) -> Results:
    found, next_cursor = await matching.page(
        conn, request.app[QUERIES], request.app[CURSORS], variants,
        viewer_id=viewer_id, filters=filters, cursor=args.get("cursor"),
        limit=args["limit"], whole=whole, max_distance=args["max_distance"], local=local)
    return [{**to_json(row), "distance": match.distance, "score": match.score,
             "matched_by": match.json()} for row, match in found], next_cursor


def _answer(query_hashes: dict[str, Any], results: Results | None) -> web.Response:
    items, next_cursor = results or ([], None)
    return web.json_response({"query": {"hashes": query_hashes}, "results": items,
                              "next_cursor": next_cursor})


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["search"], summary="Find images similar to a posted one (it is not stored)",
      description="Multipart: `file`, and optionally `match`, `max_distance`, `limit`, "
                  "`cursor`, `q`, `tag`, `owner`, `album`, `orientations`. The query image "
                  "goes through the upload pipeline (limits, sniffing, EXIF orientation). "
                  "`match=robust` (default): verified matches through crops, caption bands, "
                  "borders and small rotations, best score first; `match=exact`: "
                  "whole-picture pHash within `max_distance`, by (distance, id).",
      requestBody=IMAGE_SEARCH_BODY,
      responses=error_responses(400, 401, 403, 404, 413, 415, 422))
@response_schema(SimilarPageSchema, 200, description="Matches, nearest first")
async def search_by_image(request: web.Request) -> web.Response:
    viewer_id = current_user_id(request)

    async def filters_for(conn: Connection, args: dict[str, Any]) -> similar.SimilarFilters | None:
        return await _filters(conn, request.app[QUERIES], viewer_id, args, None)

    return await answer_image_search(request, ImageSearchParamsSchema(), viewer_id, filters_for,
                                     lambda row: image_json(row, viewer_id))


async def answer_image_search(
    request: web.Request, params: Schema, viewer_id: UUID | None, filters_for: FiltersFor,
    to_json: ToJson,
) -> web.Response:
    """A posted query image's matches among the images `viewer_id` may see, narrowed by
    `filters_for` (None: nothing can match), shown by `to_json`."""
    if request.content_type != "multipart/form-data":
        raise UnsupportedMediaType("Send the query image as multipart/form-data",
                                   details={"content_type": request.content_type})
    app = request.app
    config = app[CONFIG]
    limits = Limits(config.max_upload_bytes, 1, config.max_image_pixels, config.read_timeout,
                    config.min_upload_rate)
    facts, fields = await query_facts(await open_multipart(request), app[CPU_POOL], limits)
    try:
        args = params.load(fields)
    except ValidationError as exc:
        raise ValidationFailed("Invalid search parameters", details=exc.messages_dict) from None
    hashes = [facts.phash]
    if args["orientations"] == "all":
        hashes += list(facts.variant_phashes)
    async with app[POOL].acquire() as conn:
        filters = await filters_for(conn, args)
        results = None
        if filters is not None and args["match"] == "exact":
            results = await _exact(conn, request, hashes, args, filters, viewer_id, to_json)
        elif filters is not None:
            local = None if facts.features is None else matching.LocalQuery(
                facts.features, (facts.width, facts.height), app[CPU_POOL],
                mirrored=facts.mirrored_features)
            results = await _robust(conn, request, list(facts.query_variants), hashes, args,
                                    filters, local, viewer_id, to_json)
    return _answer(_hashes_json(facts.phash, facts.dhash, facts.ahash, facts.whash,
                                facts.colorhash), results)


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["search"], summary="Images similar to a stored one (the image itself left out)",
      description="With `album`, only that album's images you may see (404 unless the "
                  "album is public or yours); the stored image itself need not be in it.",
      responses=error_responses(401, 403, 404, 422))
@match_info_schema(ImagePathSchema)
@querystring_schema(SimilarParamsSchema)
@response_schema(SimilarPageSchema, 200, description="Matches, nearest first")
async def similar_to_image(request: web.Request) -> web.Response:
    viewer_id = current_user_id(request)
    image_id = request["match_info"]["id"]
    args = request["querystring"]

    def to_json(row: Record) -> dict[str, Any]:
        return image_json(row, viewer_id)

    async with request.app[POOL].acquire() as conn:
        queries = request.app[QUERIES]
        stored = await similar.stored_hashes(conn, queries, viewer_id, image_id)
        phash = stored["phash"]
        filters = await _filters(conn, queries, viewer_id, args, image_id)
        results = None
        if filters is not None and args["match"] == "exact":
            results = await _exact(conn, request, [phash], args, filters, viewer_id, to_json)
        elif filters is not None:
            # The image's own regions are the query's variants: the same probes and checks.
            variants = await matching.stored_variants(conn, queries, viewer_id, image_id)
            own = await copies.stored(conn, queries, viewer_id, image_id)
            local = None if own is None else matching.LocalQuery(
                own, (stored["width"], stored["height"]), request.app[CPU_POOL], image_id)
            results = await _robust(conn, request, variants, [phash], args, filters, local,
                                    viewer_id, to_json)
    return _answer(_hashes_json(phash, stored["dhash"], stored["ahash"], stored["whash"],
                                stored["colorhash"]), results)
