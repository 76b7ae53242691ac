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
from datetime import datetime
from typing import Any, TypeVar
from uuid import UUID

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp_apigami import docs
from aiohttp_apigami.constants import API_SPEC_ATTR

from .credentials import looks_like_api_key
from .errors import MissingScope, Unauthorized
from .keys import CONFIG, PASSWORDS, POOL, QUERIES
from .observability.context import note_user
from .openapi import API_KEY, API_KEY_OPTIONAL, PASSWORD, SHARE_TOKEN
from .schemas.common import error_responses
from .scopes import ALL_SCOPES, SCOPES
from .services.keys import resolve_key
from .services.logins import BASIC_CHALLENGE, log_in
from .services.shares import HEADER as SHARE_HEADER
from .services.shares import OpenLink, open_link

BEARER_CHALLENGE = 'Bearer realm="imagerepo"'
_ACCESS_ATTR = "__access__"
F = TypeVar("F", bound=Callable[..., Any])


class Access(enum.Enum):
    PUBLIC = "public"  # no credentials looked at
    OPTIONAL_KEY = "optional_key"  # anonymous allowed; a key, if sent, must be valid
    KEY = "key"  # an API key is required
    PASSWORD = "password"  # HTTP Basic username and password
    KEY_OR_PASSWORD = "key_or_password"  # HTTP Basic, or an API key (with the scope)
    SHARE_LINK = "share_link"  # a live share link's token (X-Share-Token), no account


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    username: str
    key_id: UUID | None = None  # the key used, when authenticated by key
    # What the caller may do: a key's scopes; everything with a password.
    scopes: frozenset[str] = ALL_SCOPES
    key_expires_at: datetime | None = None  # the key's expiry, if it has one


USER = web.RequestKey("user", User)
SHARED_LINK = web.RequestKey("shared_link", OpenLink)
_SECURITY = {Access.KEY: API_KEY, Access.OPTIONAL_KEY: API_KEY_OPTIONAL, Access.PASSWORD: PASSWORD,
             Access.KEY_OR_PASSWORD: [*PASSWORD, *API_KEY], Access.SHARE_LINK: SHARE_TOKEN}
_KEYED = (Access.KEY, Access.OPTIONAL_KEY, Access.KEY_OR_PASSWORD)


def access(level: Access, scope: str | None = None) -> Callable[[F], F]:
    """Declare who may call a handler and, for a key, the scope it needs; also documents
    both in the OpenAPI spec (security, a sentence naming the scope, the 403 answer)."""
    if (level in _KEYED) != (scope is not None) or (scope is not None and scope not in SCOPES):
        raise ValueError(f"{level}: a route taking an API key names one scope of {SCOPES}; "
                         "others name none")

    def decorate(handler: F) -> F:
        setattr(handler, _ACCESS_ATTR, (level, scope))
        if level not in _SECURITY:
            return handler
        if scope is None:
            return docs(security=_SECURITY[level])(handler)
        said = f"An API key needs the `{scope}` scope (else 403, code `missing_scope`)."
        if level is Access.OPTIONAL_KEY:
            said = (f"Anonymous callers are served; a key, if sent, needs the `{scope}` scope "
                    "(else 403, code `missing_scope`).")
        elif level is Access.KEY_OR_PASSWORD:
            said = (f"HTTP Basic (username and password), or an API key with the `{scope}` "
                    "scope (else 403, code `missing_scope`).")
        earlier = getattr(handler, API_SPEC_ATTR, {}).get("description")
        description = f"{earlier}\n\n{said}" if earlier else said
        extension: dict[str, Any] = {"x-scope": scope}  # for tools (and tests) reading the spec
        return docs(security=_SECURITY[level], description=description,
                    responses=error_responses(403), **extension)(handler)

    return decorate


def scope_of(handler: object) -> str | None:
    """The scope a handler declares (None: it takes no API key)."""
    declared: tuple[Access, str | None] = getattr(handler, _ACCESS_ATTR, (Access.PUBLIC, None))
    return declared[1]


def require_scope(user: User, scope: str) -> None:
    if scope not in user.scopes:
        raise MissingScope(f"This API key lacks the `{scope}` scope",
                           details={"missing_scope": scope})


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
    if owner.expired:
        assert owner.expires_at is not None
        raise Unauthorized(f"This API key expired at {owner.expires_at.isoformat()}",
                           headers={"WWW-Authenticate": BEARER_CHALLENGE})
    return User(owner.user_id, owner.username, owner.key_id, owner.scopes, owner.expires_at)


async def _shared_link(request: web.Request) -> OpenLink:
    """The live share link whose token the request carries: 401 without one, 404 for one that
    is unknown, revoked or expired. Checked before the request is read, as a key is."""
    token = request.headers.get(SHARE_HEADER, "").strip()
    if not token:
        raise Unauthorized(f"A share link's token is required, in the {SHARE_HEADER} header")
    async with request.app[POOL].acquire() as conn:
        return await open_link(conn, request.app[QUERIES], token)


def client_address(request: web.Request) -> str:
    """The client's address: the peer's, or behind a trusted proxy the one it forwarded
    (observability/proxies.py has already put it in request.remote)."""
    return request.remote or "unknown"


def _sends_basic(request: web.Request) -> bool:
    return request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")[0].lower() == "basic"


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
    level, scope = getattr(request.match_info.handler, _ACCESS_ATTR, (Access.PUBLIC, None))
    if level is Access.SHARE_LINK:
        request[SHARED_LINK] = await _shared_link(request)
    elif level is Access.PASSWORD or (level is Access.KEY_OR_PASSWORD and _sends_basic(request)):
        request[USER] = await _password_user(request)
    elif level in _KEYED:
        secret = _presented_key(request)
        if secret is not None:
            request[USER] = await _key_user(request, secret)
        elif level is not Access.OPTIONAL_KEY:
            message, challenge = "An API key is required", BEARER_CHALLENGE
            if level is Access.KEY_OR_PASSWORD:
                message = "HTTP Basic username and password, or an API key, is required"
                challenge = f"{BASIC_CHALLENGE}, {BEARER_CHALLENGE}"
            raise Unauthorized(message, headers={"WWW-Authenticate": challenge})
    note_user(current_user_id(request))  # every line about the request names its caller
    user = current_user(request)
    if user is not None and scope is not None:
        # A key without the scope is refused, never served as if anonymous (a password
        # grants every scope).
        require_scope(user, scope)
    return await handler(request)
