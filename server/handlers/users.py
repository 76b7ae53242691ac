"""Sign-up and the caller's own account."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, json_schema, response_schema

from ..auth import Access, access, client_address, require_user
from ..keys import CONFIG, PASSWORDS, POOL, QUERIES, STORAGE
from ..schemas.accounts import SignedUpSchema, SignUpSchema, UserSchema, dump
from ..schemas.common import error_responses
from ..scopes import READ
from ..services import users
from ..services.logins import reserve_address_attempt


@access(Access.PUBLIC)
@docs(tags=["accounts"], summary="Sign up; the answer holds your first API key",
      responses=error_responses(400, 409, 413, 422, 429, 503))
@json_schema(SignUpSchema, required=True)
@response_schema(SignedUpSchema, 201, description="The new user, with its first API key")
async def sign_up(request: web.Request) -> web.Response:
    data = request["json"]
    app = request.app
    await reserve_address_attempt(app[POOL], app[QUERIES], client_address(request),
                                  app[CONFIG].password_attempts)
    password_hash = await app[PASSWORDS].hash(data["password"])
    async with app[POOL].acquire() as conn:
        user, api_key = await users.sign_up(
            conn, app[QUERIES], username=data["username"], password_hash=password_hash
        )
    return web.json_response({**dump(UserSchema(), user), "api_key": api_key}, status=201)


@access(Access.KEY, scope=READ)
@docs(tags=["accounts"], summary="Your own profile", responses=error_responses(401))
@response_schema(UserSchema, 200, description="The caller")
async def me(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        user = await users.get_profile(conn, request.app[QUERIES], caller.id)
    return web.json_response(dump(UserSchema(), user))


@access(Access.PASSWORD)
@docs(tags=["accounts"], summary="Delete your account, its keys and its images",
      description="Needs HTTP Basic with your username and password: no API key, whatever "
                  "its scopes, can delete the account (it is more than every scope together).",
      responses={204: {"description": "Deleted"}, **error_responses(401, 429)})
async def delete_me(request: web.Request) -> web.Response:
    caller = require_user(request)
    async with request.app[POOL].acquire() as conn:
        await users.delete_account(conn, request.app[QUERIES], request.app[STORAGE], caller.id)
    return web.Response(status=204)
