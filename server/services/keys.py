"""API keys: issue, list, revoke, and resolve a presented key to its user and scopes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from ..credentials import key_digest, new_api_key
from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import MissingScope, NotFound, Unauthorized
from ..scopes import ALL_SCOPES, ordered

TOUCH_INTERVAL = timedelta(minutes=1)
MAX_EXPIRES_IN_DAYS = 3650


@dataclass(frozen=True, slots=True)
class KeyOwner:
    user_id: UUID
    username: str
    key_id: UUID
    scopes: frozenset[str]
    expires_at: datetime | None
    expired: bool


async def issue_key(
    conn: Connection, queries: Queries, user_id: UUID, name: str, *,
    scopes: Iterable[str] | None = None, expires_in_days: int | None = None,
    granted: frozenset[str] = ALL_SCOPES, granted_until: datetime | None = None,
) -> dict[str, object]:
    """A new key with `scopes` (default: all the caller has), expiring after `expires_in_days`
    (default: never, or with the caller's own key). A key can hand out only what it has:
    no scope beyond `granted`, no life beyond `granted_until`."""
    wanted = ordered(granted if scopes is None else scopes)
    for scope in wanted:
        if scope not in granted:
            raise MissingScope(f"This API key lacks the `{scope}` scope, so it cannot give it "
                               "to a new key", details={"missing_scope": scope})
    expires_at = (None if expires_in_days is None
                  else datetime.now(UTC) + timedelta(days=expires_in_days))
    if granted_until is not None and (expires_at is None or expires_at > granted_until):
        expires_at = granted_until
    key = new_api_key()
    # A key without a name still needs a label a person can tell apart in a list.
    name = name.strip() or f"key of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    try:
        row = await queries.insert_key(
            conn, user_id=user_id, name=name, prefix=key.prefix, digest=key.digest,
            scopes=wanted, expires_at=expires_at,
        )
    except asyncpg.CheckViolationError:  # the maker's key expired since it was checked
        raise Unauthorized("This API key has expired") from None
    return {**dict(row), "api_key": key.secret}


async def list_keys(conn: Connection, queries: Queries, user_id: UUID) -> list[Record]:
    return [row async for row in queries.list_keys(conn, user_id=user_id)]


async def revoke_key(conn: Connection, queries: Queries, user_id: UUID, key_id: UUID) -> None:
    if await queries.revoke_key(conn, user_id=user_id, key_id=key_id) is None:
        raise NotFound("No such key")


async def resolve_key(conn: Connection, queries: Queries, secret: str) -> KeyOwner | None:
    """The owner of an unrevoked key, or None. One indexed query, plus a write a minute
    (never for an expired key, which the caller refuses)."""
    row = await queries.authenticate_key(conn, digest=key_digest(secret))
    if row is None:
        return None
    last_used = row["last_used_at"]
    if not row["expired"] and (
            last_used is None or datetime.now(UTC) - last_used >= TOUCH_INTERVAL):
        await queries.touch_key(conn, key_id=row["key_id"])
    return KeyOwner(row["user_id"], row["username"], row["key_id"], frozenset(row["scopes"]),
                    row["expires_at"], row["expired"])
