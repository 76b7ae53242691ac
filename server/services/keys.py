"""API keys: issue, list, revoke, and resolve a presented key to its user."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from ..credentials import key_digest, new_api_key
from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import NotFound

TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class KeyOwner:
    user_id: UUID
    username: str
    key_id: UUID


async def issue_key(
    conn: Connection, queries: Queries, user_id: UUID, name: str
) -> dict[str, object]:
    key = new_api_key()
    # A key without a name still needs a label a person can tell apart in a list.
    name = name.strip() or f"key of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    row = await queries.insert_key(
        conn, user_id=user_id, name=name, prefix=key.prefix, digest=key.digest
    )
    return {**dict(row), "api_key": key.secret}


async def list_keys(conn: Connection, queries: Queries, user_id: UUID) -> list[Record]:
    return [row async for row in queries.list_keys(conn, user_id=user_id)]


async def revoke_key(conn: Connection, queries: Queries, user_id: UUID, key_id: UUID) -> None:
    if await queries.revoke_key(conn, user_id=user_id, key_id=key_id) is None:
        raise NotFound("No such key")


async def resolve_key(conn: Connection, queries: Queries, secret: str) -> KeyOwner | None:
    """The owner of an active key, or None. One indexed query, plus a write a minute."""
    row = await queries.authenticate_key(conn, digest=key_digest(secret))
    if row is None:
        return None
    last_used = row["last_used_at"]
    if last_used is None or datetime.now(UTC) - last_used >= TOUCH_INTERVAL:
        await queries.touch_key(conn, key_id=row["key_id"])
    return KeyOwner(row["user_id"], row["username"], row["key_id"])
