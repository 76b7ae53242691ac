"""Images: the rules of creating, reading, changing and deleting them."""

from __future__ import annotations

import asyncio
import logging
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg

from ..db.pool import Connection
from ..db.queries import Queries, Record
from ..errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from ..imaging.features import Features
from ..imaging.signals import REGIONS, Signal
from ..observability import metrics
from ..storage import Storage
from ..usernames import username_key
from . import copies
from .cursors import Cursors, scope_of
from .thumbnails import StoredThumbnail, insert_thumbnail

log = logging.getLogger(__name__)

MAX_TAGS = 30
MAX_TAG_CHARS = 50
MAX_TITLE_CHARS = 200
MAX_DESCRIPTION_CHARS = 5000
VISIBILITIES = ("private", "public")
DELETE_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class NewImage:
    title: str
    description: str
    tags: list[str]
    visibility: str
    filename: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    sha256: bytes
    phash: int
    dhash: int
    ahash: int
    whash: int
    colorhash: str
    hash_version: int
    storage_key: str
    # The copy without GPS served to others, when the original carries a position.
    public_storage_key: str | None = None
    public_size_bytes: int | None = None
    public_sha256: bytes | None = None
    # Region signals for robust search by image (table image_signals).
    signals: tuple[Signal, ...] = ()
    # Thumbnails already stored (table image_thumbnails).
    thumbnails: tuple[StoredThumbnail, ...] = ()
    # Local features for copy detection (tables image_features, feature_postings_recent).
    features: Features | None = None

    def row(self) -> dict[str, Any]:
        """The images row's columns."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("signals", "thumbnails", "features")}


def _has_control_chars(text: str, allowed: str = "") -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def normalize_tags(values: Iterable[str]) -> list[str]:
    """Comma-separated or repeated values: trimmed, lower-cased, de-duplicated, in order."""
    tags: list[str] = []
    for value in values:
        for raw in value.split(","):
            tag = unicodedata.normalize("NFC", raw.strip().lower())
            if tag and tag not in tags:
                tags.append(tag)
    problems = [f"Tag {t[:60]!r} is longer than {MAX_TAG_CHARS} characters."
                for t in tags if len(t) > MAX_TAG_CHARS]
    problems += [f"Tag {t[:60]!r} contains control characters."
                 for t in tags if _has_control_chars(t)]
    if len(tags) > MAX_TAGS:
        problems.append(f"At most {MAX_TAGS} tags, got {len(tags)}.")
    if problems:
        raise ValidationFailed("Invalid tags", details={"tags": problems[:10]})
    return tags


def check_text(field: str, value: str, max_chars: int, multiline: bool = False) -> str:
    value = unicodedata.normalize("NFC", value.strip())
    if len(value) > max_chars:
        raise ValidationFailed(f"{field} is too long",
                               details={field: [f"At most {max_chars} characters."]})
    if _has_control_chars(value, allowed="\n\r\t" if multiline else ""):
        raise ValidationFailed(f"{field} contains control characters",
                               details={field: ["Control characters are not allowed."]})
    return value


def check_visibility(value: str) -> str:
    if value not in VISIBILITIES:
        raise ValidationFailed("Invalid visibility",
                               details={"visibility": ["Must be one of: private, public."]})
    return value


async def create_images(
    conn: Connection, queries: Queries, owner_id: UUID, images: Sequence[NewImage]
) -> list[Record]:
    """Insert every row in one transaction; answer them in upload order. 401 when the
    account was deleted while its upload streamed (the caller removes the objects)."""
    try:
        async with conn.transaction():
            ids = []
            for image in images:
                ids.append(await queries.insert_image(conn, owner_id=owner_id, **image.row()))
                await insert_signals(conn, queries, ids[-1], image.signals)
                await copies.insert(conn, queries, ids[-1], image.features)
                for thumbnail in image.thumbnails:
                    await insert_thumbnail(conn, queries, ids[-1], thumbnail)
    except asyncpg.ForeignKeyViolationError:
        raise Unauthorized("The account was deleted during the upload",
                           headers={"WWW-Authenticate": 'Bearer realm="imagerepo"'}) from None
    return [row async for row in queries.get_images_by_ids(conn, ids=ids)]


async def insert_signals(
    conn: Connection, queries: Queries, image_id: UUID, signals: Sequence[Signal]
) -> None:
    if signals:
        await queries.insert_signals(
            conn, image_id=image_id, regions=[REGIONS.index(s.region) for s in signals],
            phashes=[s.phash for s in signals], dhashes=[s.dhash for s in signals],
            thumbs=[s.thumb for s in signals])


def as_served(row: Record | Mapping[str, Any], viewer_id: UUID | None) -> dict[str, Any]:
    """The row as this viewer gets its file: everyone but the owner gets the copy without the
    GPS position, so its key, size and digest are the copy's (the original's digest would be
    a fingerprint of a file they must not have, and would not match what they download)."""
    served = dict(row)
    if row["public_storage_key"] and viewer_id != row["owner_id"]:
        served.update(storage_key=row["public_storage_key"],
                      size_bytes=row["public_size_bytes"], sha256=row["public_sha256"])
    return served


async def get_visible(
    conn: Connection, queries: Queries, viewer_id: UUID | None, image_id: UUID
) -> Record:
    row = await queries.get_image(conn, viewer_id=viewer_id, image_id=image_id)
    if row is None:  # missing, or someone else's private image: the same answer
        raise NotFound("No such image")
    return row


async def _get_owned(conn: Connection, queries: Queries, caller_id: UUID, image_id: UUID) -> None:
    row = await get_visible(conn, queries, caller_id, image_id)
    if row["owner_id"] != caller_id:
        raise Forbidden("Only the owner may change this image")


async def resolve_owner(
    conn: Connection, queries: Queries, viewer_id: UUID | None, owner: str | None
) -> UUID | None | Literal[False]:
    """The id an `owner` filter means: None for no filter, False for a name nobody has."""
    if owner is None:
        return None
    if owner == "me":
        if viewer_id is None:
            raise ValidationFailed("owner=me needs an API key",
                                   details={"owner": ["'me' needs an API key."]})
        return viewer_id
    key = username_key(owner)
    owner_id = await queries.get_user_id(conn, username_key=key) if key else None
    return False if owner_id is None else owner_id


async def list_visible(
    conn: Connection, queries: Queries, cursors: Cursors, *, viewer_id: UUID | None,
    owner: str | None, tag: str | None, visibility: str | None, cursor: str | None, limit: int,
) -> tuple[list[Record], str | None]:
    owner_id = await resolve_owner(conn, queries, viewer_id, owner)
    if owner_id is False:
        return [], None
    scope = scope_of("images", viewer_id, owner_id, tag, visibility)
    after_created, after_id = (cursors.decode(cursor, scope, datetime, UUID) if cursor
                               else (None, None))
    rows = [row async for row in queries.list_images(
        conn, viewer_id=viewer_id, owner_id=owner_id, tag=tag, visibility=visibility,
        after_created=after_created, after_id=after_id, limit=limit + 1,  # type: ignore[arg-type]
    )]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(scope, rows[-1]["created_at"], rows[-1]["id"])
    return rows, next_cursor


async def update_image(
    conn: Connection, queries: Queries, caller_id: UUID, image_id: UUID, *,
    title: str | None = None, description: str | None = None, tags: list[str] | None = None,
    visibility: str | None = None,
) -> Record:
    await _get_owned(conn, queries, caller_id, image_id)
    updated = await queries.update_image(
        conn, owner_id=caller_id, image_id=image_id, title=title, description=description,
        tags=tags, visibility=visibility,
    )
    if updated is None:  # deleted meanwhile
        raise NotFound("No such image")
    return await get_visible(conn, queries, caller_id, image_id)


async def delete_image(
    conn: Connection, queries: Queries, storage: Storage, caller_id: UUID, image_id: UUID
) -> None:
    """The row first, then the object: a failure leaves an orphan object, never a row
    without its object (the sweep command removes orphans)."""
    await _get_owned(conn, queries, caller_id, image_id)
    row = await queries.delete_image(conn, owner_id=caller_id, image_id=image_id)
    if row is None:
        raise NotFound("No such image")
    metrics.images_deleted(1)
    await delete_objects(storage, object_keys([row]))


async def delete_many(
    conn: Connection, queries: Queries, storage: Storage, caller_id: UUID, ids: Sequence[UUID]
) -> tuple[list[UUID], list[UUID]]:
    wanted = list(dict.fromkeys(ids))
    rows = [row async for row in queries.delete_images(conn, owner_id=caller_id, ids=wanted)]
    metrics.images_deleted(len(rows))
    await delete_objects(storage, object_keys(rows))
    deleted = {row["id"] for row in rows}
    return [i for i in wanted if i in deleted], [i for i in wanted if i not in deleted]


def object_keys(rows: Iterable[Record]) -> list[str]:
    """Every stored object of these rows: the original, the copy without GPS if any, and
    the thumbnails."""
    keys = []
    for row in rows:
        keys.append(row["storage_key"])
        if row["public_storage_key"]:
            keys.append(row["public_storage_key"])
        keys.extend(row["thumbnail_keys"])
    return keys


async def delete_objects(storage: Storage, keys: Sequence[str]) -> None:
    """Best effort, a few at a time; failures are logged and left to the sweep."""
    gate = asyncio.Semaphore(DELETE_CONCURRENCY)

    async def delete(key: str) -> None:
        async with gate:
            try:
                await storage.delete(key)
            except Exception:
                log.warning("could not delete object %s; the sweep will", key, exc_info=True)

    await asyncio.gather(*(delete(key) for key in keys))
