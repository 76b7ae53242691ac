"""Named queries from sql/queries/*.sql, loaded once with aiosql and typed here.

aiosql builds its methods at run time; the Protocol below states their real
signatures so that mypy checks every call site.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, cast
from uuid import UUID

import aiosql
import asyncpg

from .paths import queries_dir
from .pool import Connection

Record = asyncpg.Record


class Queries(Protocol):
    # system.sql
    async def ping(self, conn: Connection) -> int: ...

    # users.sql
    async def insert_user(
        self, conn: Connection, *, username: str, password_hash: str
    ) -> Record: ...
    async def get_user(self, conn: Connection, *, user_id: UUID) -> Record | None: ...
    async def get_login(self, conn: Connection, *, username: str) -> Record | None: ...
    async def delete_user(self, conn: Connection, *, user_id: UUID) -> Record | None: ...

    # keys.sql
    async def insert_key(
        self, conn: Connection, *, user_id: UUID, name: str, prefix: str, digest: bytes
    ) -> Record: ...
    async def authenticate_key(self, conn: Connection, *, digest: bytes) -> Record | None: ...
    async def touch_key(self, conn: Connection, *, key_id: UUID) -> str: ...
    def list_keys(self, conn: Connection, *, user_id: UUID) -> AsyncIterator[Record]: ...
    async def revoke_key(
        self, conn: Connection, *, user_id: UUID, key_id: UUID
    ) -> Record | None: ...

    # logins.sql
    async def login_lockout(
        self, conn: Connection, *, username_key: str, window_seconds: float, max_failures: int
    ) -> Record: ...
    async def record_login_failure(
        self, conn: Connection, *, username_key: str, window_seconds: float
    ) -> str: ...
    async def clear_login_failures(self, conn: Connection, *, username_key: str) -> str: ...


def load_queries() -> Queries:
    return cast(Queries, aiosql.from_path(queries_dir(), "asyncpg"))
