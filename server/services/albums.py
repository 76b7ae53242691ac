"""Albums: an owner's own images in an order, the rules of making, changing and filling them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast
from uuid import UUID

from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import AlbumFull, NotFound, ValidationFailed
from .cursors import Cursors, Position, scope_of
from .images import resolve_owner
from .within import Within

MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 5000
MAX_IMAGES = 10_000  # per album
MAX_IDS = 100  # per add or remove request
# Appending never renumbers; past this position the album is renumbered 1..n first, so
# positions stay far from what an integer holds.
MAX_POSITION = 2_000_000_000


@dataclass(frozen=True, slots=True)
class Added:
    added: list[UUID]
    moved: list[UUID]
    not_found: list[UUID]


async def create_album(
    conn: Connection, queries: Queries, owner_id: UUID, *, title: str, description: str,
    visibility: str,
) -> Record:
    album_id = await queries.insert_album(conn, owner_id=owner_id, title=title,
                                          description=description, visibility=visibility)
    return await get_visible(conn, queries, owner_id, album_id)


async def get_visible(
    conn: Connection, queries: Queries, viewer_id: UUID | None, album_id: UUID
) -> Record:
    row = await queries.get_album(conn, viewer_id=viewer_id, album_id=album_id)
    if row is None:  # missing, or someone else's private album: the same answer
        raise NotFound("No such album")
    return row


async def list_visible(
    conn: Connection, queries: Queries, cursors: Cursors, *, viewer_id: UUID | None,
    owner: str | None, cursor: str | None, limit: int,
) -> tuple[list[Record], str | None]:
    owner_id = await resolve_owner(conn, queries, viewer_id, owner)
    if owner_id is False:
        return [], None
    scope = scope_of("albums", viewer_id, owner_id)
    after_created, after_id = (cursors.decode(cursor, scope, datetime, UUID) if cursor
                               else (None, None))
    rows = [row async for row in queries.list_albums(
        conn, viewer_id=viewer_id, owner_id=owner_id, after_created=after_created,  # type: ignore[arg-type]
        after_id=after_id, limit=limit + 1)]  # type: ignore[arg-type]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(scope, rows[-1]["created_at"], rows[-1]["id"])
    return rows, next_cursor


async def update_album(
    conn: Connection, queries: Queries, owner_id: UUID, album_id: UUID, *,
    title: str | None = None, description: str | None = None, visibility: str | None = None,
) -> Record:
    updated = await queries.update_album(conn, owner_id=owner_id, album_id=album_id,
                                         title=title, description=description,
                                         visibility=visibility)
    if updated is None:  # missing or not the caller's: never says which
        raise NotFound("No such album")
    return await get_visible(conn, queries, owner_id, album_id)


async def delete_album(conn: Connection, queries: Queries, owner_id: UUID,
                       album_id: UUID) -> None:
    if await queries.delete_album(conn, owner_id=owner_id, album_id=album_id) is None:
        raise NotFound("No such album")


async def list_images(
    conn: Connection, queries: Queries, cursors: Cursors, *, viewer_id: UUID | None,
    album_id: UUID, cursor: str | None, limit: int,
) -> tuple[list[tuple[int, Record]], str | None]:
    """One page of the album's images the viewer may see, in album order, each with its
    1-based index among them; and the next page's cursor (which carries the last position
    and index)."""
    await get_visible(conn, queries, viewer_id, album_id)
    scope = scope_of("album_images", viewer_id, album_id)
    after_position, index = (cursors.decode(cursor, scope, Position, Position) if cursor
                             else (None, 0))
    rows = [row async for row in queries.list_album_images(
        conn, viewer_id=viewer_id, album_id=album_id,
        after_position=after_position, limit=limit + 1)]  # type: ignore[arg-type]
    page = [(cast(int, index) + n, row) for n, row in enumerate(rows[:limit], start=1)]
    next_cursor = None
    if len(rows) > limit:
        last_index, last = page[-1]
        next_cursor = cursors.encode(scope, last["album_position"], last_index)
    return page, next_cursor


async def add_images(
    conn: Connection, queries: Queries, owner_id: UUID, album_id: UUID,
    image_ids: Sequence[UUID], before: UUID | None = None,
) -> Added:
    """Put the caller's own images among `image_ids` into the album, in that order, before
    `before` or at the end; those already in it move there. One transaction, holding the
    album's row: concurrent changes of the same album wait their turn."""
    wanted = list(dict.fromkeys(image_ids))
    async with conn.transaction():
        if await queries.lock_album(conn, owner_id=owner_id, album_id=album_id) is None:
            raise NotFound("No such album")
        album = await queries.album_size(conn, album_id=album_id)
        own = {r["id"] async for r in queries.own_images(conn, owner_id=owner_id, ids=wanted)}
        members = {r["image_id"] async for r in queries.album_members(
            conn, album_id=album_id, ids=wanted)}
        added = [i for i in wanted if i in own and i not in members]
        moved = [i for i in wanted if i in members]
        if album["image_count"] + len(added) > MAX_IMAGES:
            raise AlbumFull(f"An album holds at most {MAX_IMAGES} images",
                            details={"image_count": album["image_count"],
                                     "max_images": MAX_IMAGES})
        # Every id goes to the SQL, which takes only the owner's images itself: what
        # `own` found decides the answer, never what goes in.
        if before is not None:
            await _insert_before(conn, queries, owner_id, album_id, wanted, before)
        elif own:
            last = album["last_position"]
            if last + len(wanted) > MAX_POSITION:
                await queries.renumber_album(conn, album_id=album_id)
                last = album["image_count"]
            await queries.append_album_images(conn, owner_id=owner_id, album_id=album_id,
                                              ids=wanted, last_position=last)
        await queries.touch_album(conn, album_id=album_id)
    return Added(added, moved, [i for i in wanted if i not in own])


async def _insert_before(conn: Connection, queries: Queries, owner_id: UUID, album_id: UUID,
                         ids: list[UUID], before: UUID) -> None:
    if before in ids:
        raise ValidationFailed("`before` is one of the images being placed",
                               details={"before": ["Must not be one of image_ids."]})
    if await queries.album_position(conn, album_id=album_id, image_id=before) is None:
        raise ValidationFailed("`before` is not in the album",
                               details={"before": ["Not an image of this album."]})
    if ids:
        await queries.insert_album_images_before(conn, owner_id=owner_id, album_id=album_id,
                                                 ids=ids, before=before)


async def remove_images(
    conn: Connection, queries: Queries, owner_id: UUID, album_id: UUID,
    image_ids: Sequence[UUID],
) -> tuple[list[UUID], list[UUID]]:
    """(removed, not found): the images stay; only their place in the album goes."""
    wanted = list(dict.fromkeys(image_ids))
    async with conn.transaction():
        if await queries.lock_album(conn, owner_id=owner_id, album_id=album_id) is None:
            raise NotFound("No such album")
        removed = {r["image_id"] async for r in queries.remove_album_images(
            conn, owner_id=owner_id, album_id=album_id, ids=wanted)}
        await queries.touch_album(conn, album_id=album_id)
    return [i for i in wanted if i in removed], [i for i in wanted if i not in removed]


async def within(
    conn: Connection, queries: Queries, viewer_id: UUID | None, album_id: UUID
) -> Within:
    """The album's images this viewer may see, as a search's `within`; 404 unless the viewer
    may see the album."""
    row = await queries.visible_album_image_ids(conn, viewer_id=viewer_id, album_id=album_id)
    if row is None:
        raise NotFound("No such album")
    return Within(f"album:{album_id}", tuple(row["image_ids"]))
