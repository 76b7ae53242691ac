"""Password logins with brute-force limits kept in PostgreSQL (so they hold across processes):
per username (a lockout) and per client address (a rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from uuid import UUID

from ..db.pool import Pool
from ..db.queries import Queries
from ..errors import TooManyRequests, Unauthorized
from ..passwords import PasswordHasher
from ..usernames import username_key

MAX_FAILURES = 10
WINDOW_SECONDS = 15 * 60.0
ADDRESS_WINDOW_SECONDS = 60.0
BASIC_CHALLENGE = 'Basic realm="imagerepo", charset="UTF-8"'


@dataclass(frozen=True, slots=True)
class LoggedIn:
    id: UUID
    username: str


def _too_many(message: str, retry_after: float) -> TooManyRequests:
    seconds = max(1, math.ceil(retry_after))
    return TooManyRequests(message, details={"retry_after": seconds},
                           headers={"Retry-After": str(seconds)})


async def reserve_address_attempt(
    pool: Pool, queries: Queries, address: str, max_attempts: int
) -> None:
    """Count one password check for the client's address; 429 past `max_attempts` a minute."""
    async with pool.acquire() as conn, conn.transaction():
        await queries.lock_attempts(conn, key=f"address:{address}")
        seat = await queries.reserve_password_attempt(
            conn, address=address, window_seconds=ADDRESS_WINDOW_SECONDS,
            max_attempts=max_attempts)
    if not seat["allowed"]:
        raise _too_many("Too many password attempts from this address; try again later",
                        seat["retry_after"])


def _wrong() -> Unauthorized:
    return Unauthorized("Wrong username or password",
                        headers={"WWW-Authenticate": BASIC_CHALLENGE})


async def log_in(
    pool: Pool, queries: Queries, hasher: PasswordHasher, username: str, password: str, *,
    address: str, max_address_attempts: int,
) -> LoggedIn:
    """The user whose password this is; 401 when wrong, 429 while the name (or the address)
    is over its limit. The attempt is counted as a failure before bcrypt runs and forgiven
    after a success, so concurrent attempts cannot slip past the limit. No connection is
    held during bcrypt, which takes a quarter of a second."""
    key = username_key(username)
    if key is None:
        raise _wrong()  # no account can have this name: nothing to check
    await reserve_address_attempt(pool, queries, address, max_address_attempts)
    async with pool.acquire() as conn:
        async with conn.transaction():
            await queries.lock_attempts(conn, key=f"login:{key}")
            seat = await queries.reserve_login_attempt(
                conn, username_key=key, window_seconds=WINDOW_SECONDS, max_failures=MAX_FAILURES)
        if not seat["allowed"]:
            raise _too_many("Too many failed password attempts for this user; try again later",
                            seat["retry_after"])
        login = await queries.get_login(conn, username_key=key)
    # Same cost whether or not the user exists: timing does not reveal accounts.
    ok = await hasher.check(password, login["password_hash"] if login else None)
    if not ok or login is None:
        raise _wrong()
    async with pool.acquire() as conn:
        await queries.clear_login_failures(conn, username_key=key)
    return LoggedIn(login["id"], login["username"])
