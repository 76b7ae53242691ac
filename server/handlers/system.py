"""Service endpoints: what this is, is it alive, can it serve."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from aiohttp_apigami import docs, response_schema

from .. import __version__
from ..errors import NotFound, Unauthorized
from ..keys import CONFIG, POOL, QUERIES, STORAGE
from ..observability import exposition
from ..openapi import METRICS_TOKEN
from ..schemas.common import ErrorSchema
from ..schemas.system import INDEX_RESPONSES, HealthSchema, ReadinessSchema
from .web import page_response, prefers_html

log = logging.getLogger(__name__)
READY_TIMEOUT = 3.0


@docs(tags=["service"], summary="Service name, version and where the docs are",
      responses=INDEX_RESPONSES)
async def index(request: web.Request) -> web.Response:
    # A browser gets the web page here too (it is also at /app for any client).
    if prefers_html(request):
        return await page_response(request, vary="Accept")
    return web.json_response(
        {"name": "imagerepo", "version": __version__, "docs": "/docs", "openapi": "/openapi.json"},
        headers={"Vary": "Accept"},
    )


@docs(tags=["service"], summary="Liveness: the process answers")
@response_schema(HealthSchema, 200, description="Alive")
async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _check_database(request: web.Request) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with request.app[POOL].acquire() as conn:
                await request.app[QUERIES].ping(conn)
    except Exception as exc:
        log.warning("readiness: database check failed: %r", exc)
        return "unavailable"  # the log says why; the answer names no internals
    return "ok"


async def _check_storage(request: web.Request) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            await request.app[STORAGE].check()
    except Exception as exc:
        log.warning("readiness: storage check failed: %r", exc)
        return "unavailable"
    return "ok"


@docs(tags=["service"], summary="Readiness: the database and the object storage answer")
@response_schema(ReadinessSchema, 200, description="Ready to serve")
@response_schema(ReadinessSchema, 503, description="A dependency is unavailable")
async def ready(request: web.Request) -> web.Response:
    database, storage = await asyncio.gather(_check_database(request), _check_storage(request))
    ok = database == "ok" and storage == "ok"
    body = {"status": "ready" if ok else "unavailable",
            "checks": {"database": database, "storage": storage}}
    return web.json_response(body, status=200 if ok else 503)


METRICS_CHALLENGE = 'Bearer realm="metrics"'


@docs(tags=["service"], summary="Metrics in Prometheus' text format (for the operator)",
      description="Every worker's values summed. Answers 404 unless METRICS_TOKEN is set, "
                  "then asks for it as a bearer token (not an API key). docs/operations.md "
                  "says what each metric means.",
      security=METRICS_TOKEN,
      responses={200: {"description": "The metrics",
                       "content": {"text/plain": {"schema": {"type": "string"}}}},
                 401: {"schema": ErrorSchema, "description": "No token, or the wrong one"},
                 404: {"schema": ErrorSchema, "description": "Metrics are not exposed (no "
                                                             "METRICS_TOKEN, or METRICS=off)"}})
async def metrics(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    if not config.metrics or config.metrics_token is None:
        raise NotFound("No such resource")
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    presented = token.strip() if scheme.lower() == "bearer" else None
    if not exposition.token_matches(presented, config.metrics_token):
        raise Unauthorized("The metrics token is required",
                           headers={"WWW-Authenticate": METRICS_CHALLENGE})
    # Under several workers this reads a file per worker and metric kind: off the loop.
    body = await asyncio.to_thread(exposition.render)
    return web.Response(body=body, headers={"Content-Type": exposition.CONTENT_TYPE,
                                            "Cache-Control": "no-store"})
