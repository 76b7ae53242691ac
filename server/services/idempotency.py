"""Idempotency-Key (draft-ietf-httpapi-idempotency-key-header): a creating request sent again
with the same key by the same user within 24 hours gets the first answer again, without the
work being done twice. State lives in PostgreSQL, so it holds across processes and hosts.

- The first request takes the key (a row with its token and a lease it renews while it runs),
  does the work, and stores its answer with the request's fingerprint; a failure releases
  the key, so a retry may do the work.
- The same key while the first still runs: 409 with Retry-After (the client waits and retries).
- The same key with the same request afterwards: the stored answer, `Idempotent-Replayed: true`.
- The same key with a different request: 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ..db.pool import Pool
from ..db.queries import Queries
from ..errors import BadRequest, Conflict, ValidationFailed

HEADER = "Idempotency-Key"
# Visible ASCII: the key is echoed in errors and logs, and compared byte for byte.
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# A request in flight renews its lease this often; a process that died frees the key when
# its lease runs out.
LEASE_SECONDS = 60.0


class KeyInUse(Conflict):
    status, code = 409, "idempotency_key_in_use"


def check_key(value: str) -> str:
    if not _VALID_KEY.fullmatch(value):
        raise BadRequest(f"{HEADER} must be 1 to 255 visible ASCII characters",
                         details={HEADER: ["1 to 255 visible ASCII characters."]})
    return value


def fingerprint(route: str, fields: dict[str, list[str]], files: list[tuple[str, str]]) -> bytes:
    """What makes two requests the same: the route, the form fields, and each file's name and
    SHA-256 in order (not the multipart boundary, which a client may draw anew per attempt)."""
    material = json.dumps({"route": route, "fields": {k: fields[k] for k in sorted(fields)},
                           "files": files}, ensure_ascii=False)
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class Stored:
    status: int
    body: str


@dataclass(slots=True)
class Claim:
    """The outcome of presenting a key: `taken` (do the work, then `complete`) or `stored`
    (an earlier answer, to be checked against this request's fingerprint)."""

    user_id: UUID
    key: str
    token: UUID
    taken: bool
    stored_fingerprint: bytes | None = None
    stored: Stored | None = None

    def replay(self, request_fingerprint: bytes) -> Stored:
        assert self.stored is not None
        if request_fingerprint != self.stored_fingerprint:
            raise ValidationFailed(
                f"This {HEADER} was used for a different request in the last 24 hours",
                details={HEADER: ["Used for a different request."]})
        return self.stored


async def claim(pool: Pool, queries: Queries, user_id: UUID, key: str, route: str) -> Claim:
    token = uuid.uuid4()
    async with pool.acquire() as conn:
        await queries.prune_idempotency_keys(conn, user_id=user_id)
        taken = await queries.claim_idempotency_key(conn, user_id=user_id, key=key, route=route,
                                                    token=token, lease_seconds=LEASE_SECONDS)
        if taken is not None:
            return Claim(user_id, key, token, taken=True)
        row = await queries.get_idempotency_key(conn, user_id=user_id, key=key)
    if row is None or row["status"] is None:  # (None: it expired between the two statements)
        raise KeyInUse(f"A request with this {HEADER} is still being processed",
                       headers={"Retry-After": "1"})
    if row["route"] != route:
        raise ValidationFailed(f"This {HEADER} was used for another operation",
                               details={HEADER: ["Used for another operation."]})
    return Claim(user_id, key, token, taken=False, stored_fingerprint=row["fingerprint"],
                 stored=Stored(row["status"], row["response"]))


@contextlib.asynccontextmanager
async def holding(pool: Pool, queries: Queries, held: Claim) -> AsyncIterator[None]:
    """Renew the lease while the work runs; release the key if the work fails."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            async with pool.acquire() as conn:
                await queries.renew_idempotency_lease(
                    conn, user_id=held.user_id, key=held.key, token=held.token,
                    lease_seconds=LEASE_SECONDS)

    renewing = asyncio.ensure_future(renew())
    try:
        yield
    except BaseException:
        renewing.cancel()

        async def release() -> None:
            async with pool.acquire() as conn:
                await queries.release_idempotency_key(conn, user_id=held.user_id, key=held.key,
                                                      token=held.token)

        await asyncio.shield(asyncio.ensure_future(release()))
        raise
    finally:
        renewing.cancel()


async def complete(pool: Pool, queries: Queries, held: Claim, request_fingerprint: bytes,
                   status: int, body: Any) -> str:
    """Keep the answer for replays; the JSON text it returns is what the client gets."""
    text = json.dumps(body)
    async with pool.acquire() as conn:
        await queries.complete_idempotency_key(
            conn, user_id=held.user_id, key=held.key, token=held.token,
            fingerprint=request_fingerprint, status=status, response=text)
    return text
