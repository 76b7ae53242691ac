"""Password logins with a brute-force lockout kept in PostgreSQL (so it holds across processes)."""

from __future__ import annotations

import math
from concurrent.futures import Executor
from dataclasses import dataclass
from uuid import UUID

from ..cpu import run_cpu
from ..credentials import check_password
from ..db.pool import Pool
from ..db.queries import Queries
from ..errors import TooManyRequests, Unauthorized

MAX_FAILURES = 10
WINDOW_SECONDS = 15 * 60.0
BASIC_CHALLENGE = 'Basic realm="imagerepo", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class LoggedIn:
    id: UUID
    username: str


async def log_in(
    pool: Pool, queries: Queries, cpu: Executor, username: str, password: str, cost: int
) -> LoggedIn:
    """The user whose password this is; 401 when wrong, 429 while the name is locked out.

    No connection is held during bcrypt, which takes a quarter of a second.
    """
    key = username.lower()
    async with pool.acquire() as conn:
        lockout = await queries.login_lockout(
            conn, username_key=key, window_seconds=WINDOW_SECONDS, max_failures=MAX_FAILURES
        )
        if lockout["failures"] >= MAX_FAILURES:
            retry_after = max(1, math.ceil(lockout["retry_after"]))
            raise TooManyRequests(
                "Too many failed password attempts for this user; try again later",
                details={"retry_after": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        login = await queries.get_login(conn, username=username)
    password_hash = login["password_hash"] if login else None
    # Same cost whether or not the user exists: timing does not reveal accounts.
    ok = await run_cpu(cpu, check_password, password, password_hash, cost)
    async with pool.acquire() as conn:
        if not ok or login is None:
            await queries.record_login_failure(
                conn, username_key=key, window_seconds=WINDOW_SECONDS
            )
            raise Unauthorized("Wrong username or password",
                               headers={"WWW-Authenticate": BASIC_CHALLENGE})
        await queries.clear_login_failures(conn, username_key=key)
    return LoggedIn(login["id"], login["username"])
