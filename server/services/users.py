"""Accounts: sign-up, profile, deletion."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from ..credentials import new_api_key
from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import Conflict, NotFound
from ..observability import metrics
from ..scopes import SCOPES
from ..storage import Storage
from .images import delete_objects, object_keys


async def sign_up(
    conn: Connection, queries: Queries, *, username: str, password_hash: str
) -> tuple[Record, str]:
    """Create the user and a first API key in one transaction; return the user and the key."""
    key = new_api_key()
    try:
        async with conn.transaction():
            user = await queries.insert_user(conn, username=username, password_hash=password_hash)
            await queries.insert_key(
                conn, user_id=user["id"], name="default", prefix=key.prefix, digest=key.digest,
                scopes=list(SCOPES), expires_at=None,
            )
    except asyncpg.UniqueViolationError:
        raise Conflict("This username is taken", details={"username": ["already taken"]}) from None
    return user, key.secret


async def get_profile(conn: Connection, queries: Queries, user_id: UUID) -> Record:
    user = await queries.get_user(conn, user_id=user_id)
    if user is None:
        raise NotFound("No such user")
    return user


async def delete_account(
    conn: Connection, queries: Queries, storage: Storage, user_id: UUID
) -> None:
    """Delete the user, its keys and its images: rows in one transaction, then the objects."""
    async with conn.transaction():
        rows = [row async for row in queries.delete_all_images(conn, owner_id=user_id)]
        if await queries.delete_user(conn, user_id=user_id) is None:
            raise NotFound("No such user")
    metrics.images_deleted(len(rows))
    await delete_objects(storage, object_keys(rows))
