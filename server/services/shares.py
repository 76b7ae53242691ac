"""Share links: make, list and revoke them (the owner); open one and read what it shows
(whoever holds its token, without an account).

What a link shows is decided by the database alone (migration 0014's live_share_links and
share_link_images), in the same statement that reads each image: no process keeps a link in
memory, so a revoke is seen by every process and host on their next request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import cast
from uuid import UUID

from ..credentials import SHARE_PREFIX, key_digest, looks_like_share_token, new_api_key
from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import NotFound
from .cursors import Cursors, Position, scope_of
from .keys import TOUCH_INTERVAL

MIN_EXPIRES_IN_SECONDS = 60
MAX_EXPIRES_IN_SECONDS = 10 * 366 * 24 * 3600
HEADER = "X-Share-Token"
# The page's address for a link: a fragment, which browsers never send to any server.
PAGE_PATH = "/#share="


@dataclass(frozen=True, slots=True)
class OpenLink:
    """A live link, as a request found it."""
    id: UUID
    digest: bytes
    owner_id: UUID
    owner: str
    image_id: UUID | None
    album_id: UUID | None
    allow_download: bool
    expires_at: datetime | None

    @property
    def kind(self) -> str:
        return "image" if self.image_id is not None else "album"


def gone() -> NotFound:
    # Unknown, revoked, expired, or its picture made private: one answer for all.
    return NotFound("No such share link: it may have been revoked or have expired")


async def create(
    conn: Connection, queries: Queries, owner_id: UUID, *, image_id: UUID | None,
    album_id: UUID | None, allow_download: bool, expires_in_seconds: int | None,
) -> dict[str, object]:
    """A new link to the owner's image or album; its token is in the answer, and nowhere
    else ever again (the database keeps its digest)."""
    token = new_api_key(SHARE_PREFIX)
    row = await queries.insert_share(
        conn, owner_id=owner_id, image_id=image_id, album_id=album_id, digest=token.digest,
        prefix=token.prefix, allow_download=allow_download,
        expires_in_seconds=expires_in_seconds)
    if row is None:  # not the caller's, or no such thing: the same answer
        raise NotFound("No such image" if image_id is not None else "No such album")
    return {**dict(row), "token": token.secret, "url": PAGE_PATH + token.secret}


async def list_links(
    conn: Connection, queries: Queries, owner_id: UUID, *, image_id: UUID | None = None,
    album_id: UUID | None = None,
) -> list[Record]:
    return [row async for row in queries.list_shares(conn, owner_id=owner_id,
                                                     image_id=image_id, album_id=album_id)]


async def revoke(conn: Connection, queries: Queries, owner_id: UUID, share_id: UUID) -> None:
    if await queries.delete_share(conn, owner_id=owner_id, share_id=share_id) is None:
        raise NotFound("No such share link")


def digest_of(token: str) -> bytes:
    """The digest a token is stored under; a string that cannot be a token is not found."""
    if not looks_like_share_token(token):
        raise gone()
    return key_digest(token)


async def open_link(conn: Connection, queries: Queries, token: str) -> OpenLink:
    """The live link this token opens (else 404), noting its use at most once a minute."""
    digest = digest_of(token)
    row = await queries.open_share(conn, digest=digest)
    if row is None:
        raise gone()
    last_used = row["last_used_at"]
    if last_used is None or datetime.now(UTC) - last_used >= TOUCH_INTERVAL:
        await queries.touch_share(conn, share_id=row["id"])
    return OpenLink(row["id"], digest, row["owner_id"], row["owner"], row["image_id"],
                    row["album_id"], row["allow_download"], row["expires_at"])


async def image(conn: Connection, queries: Queries, link: OpenLink, image_id: UUID) -> Record:
    """One image the link shows now (else 404: outside it, or the link ended meanwhile)."""
    row = await queries.shared_image(conn, digest=link.digest, image_id=image_id)
    if row is None:
        raise NotFound("No such image")
    return row


async def images(
    conn: Connection, queries: Queries, cursors: Cursors, link: OpenLink, *,
    cursor: str | None, limit: int,
) -> tuple[list[tuple[int, Record]], str | None]:
    """One page of the link's images, in the album's order, each with its 1-based place
    among them (the album's own positions would show where hidden images lie)."""
    scope = scope_of("shared", link.id)
    after_position, after_id, index = (cursors.decode(cursor, scope, Position, UUID, Position)
                                       if cursor else (None, None, 0))
    rows = [row async for row in queries.shared_images(
        conn, digest=link.digest, after_position=after_position,  # type: ignore[arg-type]
        after_id=after_id, limit=limit + 1)]  # type: ignore[arg-type]
    page = [(cast(int, index) + n, row) for n, row in enumerate(rows[:limit], start=1)]
    next_cursor = None
    if len(rows) > limit:
        last_index, last = page[-1]
        next_cursor = cursors.encode(scope, last["position"], last["id"], last_index)
    return page, next_cursor


async def image_ids(conn: Connection, queries: Queries, link: OpenLink) -> list[UUID]:
    """Every image the link shows: what a search inside the link is restricted to."""
    return [row["image_id"] async for row in queries.shared_image_ids(conn, digest=link.digest)]
