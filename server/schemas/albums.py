"""Schemas of albums: the Album shape, listing, changes, adding and removing images."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from marshmallow import Schema, fields, validate

from ..db.queries import Record
from ..imaging.thumbnails import SMALL
from ..services.albums import MAX_DESCRIPTION_CHARS, MAX_IDS, MAX_IMAGES, MAX_TITLE_CHARS
from ..services.images import VISIBILITIES
from .common import Text
from .images import DESCRIPTION_PATTERN, TITLE_PATTERN, ImageSchema, thumbnail_url


class CoverSchema(Schema):
    id = fields.UUID(required=True)
    thumbnail_url = fields.String(required=True)


class AlbumSchema(Schema):
    id = fields.UUID(required=True)
    owner = fields.String(required=True, metadata={"description": "The owner's username"})
    title = fields.String(required=True)
    description = fields.String(required=True)
    visibility = fields.String(required=True, validate=validate.OneOf(VISIBILITIES))
    image_count = fields.Integer(required=True, metadata={
        "description": "Images in it that you may see (others see only its public images)"})
    cover = fields.Nested(CoverSchema, required=True, allow_none=True, metadata={
        "description": "The first image you may see, in album order; null when none"})
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class AlbumPageSchema(Schema):
    albums = fields.List(fields.Nested(AlbumSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True,
                                metadata={"description": "Pass as `cursor` for the next page"})


class AlbumImageSchema(ImageSchema):
    position = fields.Integer(required=True, validate=validate.Range(min=1), metadata={
        "description": "1-based place in the album among the images you may see"})


class AlbumImagePageSchema(Schema):
    images = fields.List(fields.Nested(AlbumImageSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True,
                                metadata={"description": "Pass as `cursor` for the next page"})


class AlbumPathSchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "The album's id"})


class NewAlbumSchema(Schema):
    title = Text(required=True, validate=validate.Length(min=1, max=MAX_TITLE_CHARS),
                 metadata={"pattern": TITLE_PATTERN})
    description = Text(load_default="", validate=validate.Length(max=MAX_DESCRIPTION_CHARS),
                       metadata={"pattern": DESCRIPTION_PATTERN})
    visibility = Text(load_default="private", validate=validate.OneOf(VISIBILITIES))


class AlbumChangesSchema(Schema):
    title = Text(validate=validate.Length(min=1, max=MAX_TITLE_CHARS),
                 metadata={"pattern": TITLE_PATTERN})
    description = Text(validate=validate.Length(max=MAX_DESCRIPTION_CHARS),
                       metadata={"pattern": DESCRIPTION_PATTERN})
    visibility = Text(validate=validate.OneOf(VISIBILITIES), metadata={
        "description": "Making a public album private ends the share links made before"})


class ListAlbumsQuerySchema(Schema):
    owner = Text(validate=validate.Length(min=1, max=32),
                 metadata={"description": "`me` or a username"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = Text(validate=validate.Length(max=200))


class AlbumImagesQuerySchema(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = Text(validate=validate.Length(max=200))


_IDS = {"description": f"1 to {MAX_IDS} image ids; repeated ones count once"}


class AddImagesSchema(Schema):
    image_ids = fields.List(fields.UUID(), required=True,
                            validate=validate.Length(min=1, max=MAX_IDS), metadata={
        "description": f"{_IDS['description']}. Your own images only (others' are "
                       "`not_found`); ones already in the album move"})
    before = fields.UUID(allow_none=True, load_default=None, metadata={
        "description": "An image of the album to put them before (422 if it is not in "
                       "it); null or absent: at the end"})


class AddedSchema(Schema):
    added = fields.List(fields.UUID(), required=True, metadata={
        "description": f"New in the album (at most {MAX_IMAGES} in all: 409 `album_full`)"})
    moved = fields.List(fields.UUID(), required=True,
                        metadata={"description": "Already in it, now at the new place"})
    not_found = fields.List(fields.UUID(), required=True, metadata={
        "description": "Not one of your images (missing or someone else's: never told apart)"})


class RemoveImagesSchema(Schema):
    image_ids = fields.List(fields.UUID(), required=True,
                            validate=validate.Length(min=1, max=MAX_IDS), metadata=_IDS)


class RemovedSchema(Schema):
    removed = fields.List(fields.UUID(), required=True,
                          metadata={"description": "Out of the album (the images stay)"})
    not_found = fields.List(fields.UUID(), required=True,
                            metadata={"description": "Not in the album"})


def album_json(row: Record | Mapping[str, Any]) -> dict[str, Any]:
    """An album row (albums.sql) in the API's Album shape."""
    data = dict(row)
    cover = row["cover_id"]
    data["cover"] = None if cover is None else {"id": cover,
                                                "thumbnail_url": thumbnail_url(cover, SMALL)}
    result: dict[str, Any] = AlbumSchema().dump(data)
    return result


def ids_json(ids: list[UUID]) -> list[str]:
    return [str(i) for i in ids]
