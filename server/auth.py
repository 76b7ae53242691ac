"""Authentication: each handler declares who may call it; one middleware enforces it.

Handlers never read credentials themselves: they find the caller with ``current_user`` or
``require_user``.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp_apigami import docs

from .credentials import looks_like_api_key
from .errors import Unauthorized
from .keys import CONFIG, PASSWORDS, POOL, QUERIES
from .observability.context import note_user
from .openapi import API_KEY, API_KEY_OPTIONAL, PASSWORD
from .services.keys import resolve_key
from .services.logins import BASIC_CHALLENGE, log_in

BEARER_CHALLENGE = 'Bearer realm="imagerepo"'
_ACCESS_ATTR = "__access__"
F = TypeVar("F", bound=Callable[..., Any])


class Access(enum.Enum):
    PUBLIC = "public"  # no credentials looked at
    OPTIONAL_KEY = "optional_key"  # anonymous allowed; a key, if sent, must be valid
    KEY = "key"  # an API key is required
    PASSWORD = "password"  # HTTP Basic username and password


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    username: str
    key_id: UUID | None = None  # the key used, when authenticated by key


USER = web.RequestKey("user", User)
_SECURITY = {Access.KEY: API_KEY, Access.OPTIONAL_KEY: API_KEY_OPTIONAL, Access.PASSWORD: PASSWORD}


def access(level: Access) -> Callable[[F], F]:
    """Declare who may call a handler; also documents its security in the OpenAPI spec."""

    def decorate(handler: F) -> F:
        setattr(handler, _ACCESS_ATTR, level)
        if level in _SECURITY:
            return docs(security=_SECURITY[level])(handler)
        return handler

    return decorate


def current_user(request: web.Request) -> User | None:
    return request.get(USER)


def current_user_id(request: web.Request) -> UUID | None:
    """The caller's id, or None for an anonymous caller (the SQL's visibility rule)."""
    user = current_user(request)
    return user.id if user else None


def require_user(request: web.Request) -> User:
    user = current_user(request)
    if user is None:
        raise Unauthorized("An API key is required", headers={"WWW-Authenticate": BEARER_CHALLENGE})
    return user


def _presented_key(request: web.Request) -> str | None:
    header = request.headers.get(hdrs.AUTHORIZATION, "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("X-API-Key", "").strip() or None


async def _key_user(request: web.Request, secret: str) -> User:
    owner = None
    if looks_like_api_key(secret):
        async with request.app[POOL].acquire() as conn:
            owner = await resolve_key(conn, request.app[QUERIES], secret)
    if owner is None:
        raise Unauthorized("Invalid or revoked API key",
                           headers={"WWW-Authenticate": BEARER_CHALLENGE})
    return User(owner.user_id, owner.username, owner.key_id)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or behind a trusted proxy the one it forwarded
    (observability/proxies.py has already put it in request.remote)."""
    return request.remote or "unknown"


def _basic_credentials(header: str) -> tuple[str, str]:
    """(username, password) from an ``Authorization: Basic`` header (RFC 7617, UTF-8)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        raise ValueError("not HTTP Basic")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("malformed HTTP Basic credentials") from None
    username, colon, password = decoded.partition(":")
    if not colon or not username:
        raise ValueError("malformed HTTP Basic credentials")
    return username, password


async def _password_user(request: web.Request) -> User:
    try:
        username, password = _basic_credentials(request.headers.get(hdrs.AUTHORIZATION, ""))
    except ValueError:
        raise Unauthorized("This route needs HTTP Basic username and password",
                           headers={"WWW-Authenticate": BASIC_CHALLENGE}) from None
    app = request.app
    login = await log_in(app[POOL], app[QUERIES], app[PASSWORDS], username, password,
                         address=client_address(request),
                         max_address_attempts=app[CONFIG].password_attempts)
    return User(login.id, login.username)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    level = getattr(request.match_info.handler, _ACCESS_ATTR, Access.PUBLIC)
    if level is Access.PASSWORD:
        request[USER] = await _password_user(request)
    elif level in (Access.KEY, Access.OPTIONAL_KEY):
        secret = _presented_key(request)
        if secret is not None:
            request[USER] = await _key_user(request, secret)
        elif level is Access.KEY:
            raise Unauthorized("An API key is required",
                               headers={"WWW-Authenticate": BEARER_CHALLENGE})
    note_user(current_user_id(request))
    return await handler(request)
