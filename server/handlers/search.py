"""Text search over the visible images."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, querystring_schema, response_schema

from ..auth import Access, access, current_user_id
from ..errors import ValidationFailed
from ..keys import CONFIG, CURSORS, POOL, QUERIES
from ..schemas.common import error_responses
from ..schemas.images import image_json
from ..schemas.search import SearchPageSchema, SearchQuerySchema
from ..scopes import READ
from ..services import albums, search
from ..services.images import resolve_owner


@access(Access.OPTIONAL_KEY, scope=READ)
@docs(tags=["search"], summary="Full-text search of titles, tags and descriptions",
      description="With `album`, only that album's images you may see (404 unless the "
                  "album is public or yours).",
      responses=error_responses(401, 403, 404, 422, 503))
@querystring_schema(SearchQuerySchema)
@response_schema(SearchPageSchema, 200, description="One page of results, best first")
async def text_search(request: web.Request) -> web.Response:
    viewer_id = current_user_id(request)
    args = request["querystring"]
    after, before = args.get("created_after"), args.get("created_before")
    if after and before and after >= before:
        raise ValidationFailed("Empty date range",
                               details={"created_before": ["Must be after created_after."]})
    async with request.app[POOL].acquire() as conn:
        queries = request.app[QUERIES]
        owner_id = await resolve_owner(conn, queries, viewer_id, args.get("owner"))
        if owner_id is False:
            return web.json_response({"results": [], "next_cursor": None})
        album = args.get("album")
        filters = search.SearchFilters(
            owner_id=owner_id or None, tag=args.get("tag", "").strip().lower() or None,
            visibility=args.get("visibility"), created_after=after, created_before=before,
            within=None if album is None else await albums.within(conn, queries, viewer_id,
                                                                  album),
        )
        rows, next_cursor = await search.search(
            conn, queries, request.app[CURSORS], viewer_id=viewer_id, q=args["q"],
            filters=filters, cursor=args.get("cursor"), limit=args["limit"],
            timeout=request.app[CONFIG].search_timeout,
        )
    results = [{**image_json(row, viewer_id), "score": row["score"], "headline": row["headline"]}
               for row in rows]
    return web.json_response({"results": results, "next_cursor": next_cursor})
