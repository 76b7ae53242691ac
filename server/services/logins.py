"""Password logins with brute-force limits kept in PostgreSQL (so they hold across processes):
per username (a lockout) and per client address (a rate)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from uuid import UUID

from ..db.pool import Connection, Pool
from ..db.queries import Queries, Record
from ..errors import TooManyRequests, Unauthorized
from ..observability import metrics
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


async def _reserve(conn: Connection, queries: Queries, subject: str, window: float,
                   limit: int) -> Record:
    await queries.lock_attempts(conn, subject=subject)
    return await queries.reserve_attempt(conn, subject=subject, window_seconds=window,
                                         max_attempts=limit)


def _check_address(seat: Record) -> None:
    if not seat["allowed"]:
        metrics.login_refused("address_rate")
        raise _too_many("Too many password attempts from this address; try again later",
                        seat["retry_after"])


async def reserve_address_attempt(
    pool: Pool, queries: Queries, address: str, max_attempts: int
) -> None:
    """Count one password check for the client's address; 429 past `max_attempts` a minute."""
    async with pool.acquire() as conn, conn.transaction():
        seat = await _reserve(conn, queries, f"address:{address}", ADDRESS_WINDOW_SECONDS,
                              max_attempts)
    _check_address(seat)


def _wrong() -> Unauthorized:
    return Unauthorized("Wrong username or password",
                        headers={"WWW-Authenticate": BASIC_CHALLENGE})


async def log_in(
    pool: Pool, queries: Queries, hasher: PasswordHasher, username: str, password: str, *,
    address: str, max_address_attempts: int,
) -> LoggedIn:
    """The user whose password this is; 401 when wrong, 429 while the address or the name is
    over its limit. The attempt is counted (for both) before bcrypt runs and, for the name,
    forgiven after a success, so concurrent attempts cannot slip past the limit. No
    connection is held during bcrypt, which takes a quarter of a second."""
    key = username_key(username)
    if key is None:
        raise _wrong()  # no account can have this name: nothing to check
    name = f"name:{key}"
    async with pool.acquire() as conn:
        async with conn.transaction():  # address first, then name: one lock order
            by_address = await _reserve(conn, queries, f"address:{address}",
                                        ADDRESS_WINDOW_SECONDS, max_address_attempts)
            by_name = (await _reserve(conn, queries, name, WINDOW_SECONDS, MAX_FAILURES)
                       if by_address["allowed"] else None)
        _check_address(by_address)
        assert by_name is not None
        if not by_name["allowed"]:
            metrics.login_refused("name_locked")
            raise _too_many("Too many failed password attempts for this user; try again later",
                            by_name["retry_after"])
        login = await queries.get_login(conn, username_key=key)
    # Same cost whether or not the user exists: timing does not reveal accounts.
    ok = await hasher.check(password, login["password_hash"] if login else None)
    metrics.password_checked(ok and login is not None)
    if not ok or login is None:
        raise _wrong()
    async with pool.acquire() as conn:
        await queries.clear_attempts(conn, subject=name)
    return LoggedIn(login["id"], login["username"])
