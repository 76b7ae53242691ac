"""API keys of the caller."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, json_schema, match_info_schema, response_schema

from ..auth import Access, access, require_user
from ..keys import POOL, QUERIES
from ..schemas.accounts import KeyListSchema, KeyPathSchema, NewKeyRequestSchema, NewKeySchema, dump
from ..schemas.common import error_responses
from ..scopes import KEYS
from ..services import keys


@access(Access.KEY_OR_PASSWORD, scope=KEYS)
@docs(tags=["keys"], summary="Issue another API key, with scopes and an expiry",
      description="With HTTP Basic (username and password) any scopes may be asked for "
                  "(default: all). With an API key, the new key gets no scope the key lacks "
                  "(403 `missing_scope` naming it) and expires no later than it. A key's "
                  "scopes are fixed when it is made: no operation changes them.",
      responses=error_responses(400, 401, 422, 429))
@json_schema(NewKeyRequestSchema, required=False)  # without a body: a key named by the time
@response_schema(NewKeySchema, 201, description="The new key, shown only this once")
async def create_key(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        body = request["json"]
        key = await keys.issue_key(conn, request.app[QUERIES], caller.id, body["name"],
                                   scopes=body.get("scopes"),
                                   expires_in_days=body["expires_in_days"],
                                   granted=caller.scopes, granted_until=caller.key_expires_at)
    return web.json_response(dump(NewKeySchema(), key), status=201)


@access(Access.KEY, scope=KEYS)
@docs(tags=["keys"], summary="Your API keys, never their secrets", responses=error_responses(401))
@response_schema(KeyListSchema, 200, description="Every key, revoked ones included")
async def list_keys(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        rows = await keys.list_keys(conn, request.app[QUERIES], caller.id)
    return web.json_response(dump(KeyListSchema(), {"keys": rows}))


@access(Access.KEY, scope=KEYS)
@docs(tags=["keys"], summary="Revoke one of your API keys",
      responses={204: {"description": "Revoked"}, **error_responses(401, 404, 422)})
@match_info_schema(KeyPathSchema)
async def revoke_key(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        await keys.revoke_key(conn, request.app[QUERIES], caller.id, request["match_info"]["id"])
    return web.Response(status=204)
