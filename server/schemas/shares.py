"""Schemas of share links: the owner's side (make, list, revoke) and the visitor's (what a
link shows)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, fields, validate

from ..db.queries import Record
from ..services.search import MAX_QUERY_CHARS
from ..services.shares import MAX_EXPIRES_IN_SECONDS, MIN_EXPIRES_IN_SECONDS
from .common import Text
from .images import ImageSchema, image_json
from .similar import IMAGE_SEARCH_BODY, ImageSearchParamsSchema

_SECRET_NOTE = "shown only in the answer that made the link"


class NewShareRequestSchema(Schema):
    expires_in_seconds = fields.Integer(
        allow_none=True, load_default=None,
        validate=validate.Range(min=MIN_EXPIRES_IN_SECONDS, max=MAX_EXPIRES_IN_SECONDS),
        metadata={"description": f"Seconds until the link stops working ({MIN_EXPIRES_IN_SECONDS}"
                                 f" to {MAX_EXPIRES_IN_SECONDS}; default: never)"})
    allow_download = fields.Boolean(load_default=False, metadata={
        "description": "Whether the link also gives the file (the copy without location; never "
                       "the original with a GPS position). Default: previews and thumbnails "
                       "only"})

class ShareSchema(Schema):
    id = fields.UUID(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(["image", "album"]))
    image_id = fields.UUID(required=True, allow_none=True)
    album_id = fields.UUID(required=True, allow_none=True)
    prefix = fields.String(required=True, metadata={
        "description": "The token's first characters, to tell links apart"})
    allow_download = fields.Boolean(required=True)
    created_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(required=True, allow_none=True,
                                      metadata={"description": "null: never expires"})
    expired = fields.Boolean(required=True)
    active = fields.Boolean(required=True, metadata={
        "description": "Whether the link shows anything now: false once expired, or once its "
                       "image or album was made private after the link was made"})
    last_used_at = fields.AwareDateTime(required=True, allow_none=True, metadata={
        "description": "When the link was last opened (to the minute)"})


class NewShareSchema(ShareSchema):
    token = fields.String(required=True, metadata={
        "description": f"The link's secret, {_SECRET_NOTE}: send it as `X-Share-Token`"})
    url = fields.String(required=True, metadata={
        "description": f"The page's address for the link, relative to the server, "
                       f"{_SECRET_NOTE} (`/#share=<token>`: the part after `#` never reaches a "
                       "server or its logs)"})


class ShareListSchema(Schema):
    shares = fields.List(fields.Nested(ShareSchema), required=True)


class ShareListQuerySchema(Schema):
    image_id = fields.UUID(metadata={"description": "Only the links to this image"})
    album_id = fields.UUID(metadata={"description": "Only the links to this album"})


class SharePathSchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "The link's id (not its token)"})


class SharedAlbumSchema(Schema):
    id = fields.UUID(required=True)
    owner = fields.String(required=True, metadata={"description": "The owner's username"})
    title = fields.String(required=True)
    description = fields.String(required=True)
    visibility = fields.String(required=True, validate=validate.OneOf(["private", "public"]))
    image_count = fields.Integer(required=True, metadata={"description": "Images the link shows"})
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)


class SharedImageSchema(ImageSchema):
    position = fields.Integer(metadata={
        "description": "In a list of the link's images: its place among them, from 1"})


class SharedSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf(["image", "album"]))
    owner = fields.String(required=True, metadata={"description": "Who shared it"})
    allow_download = fields.Boolean(required=True, metadata={
        "description": "Whether `file_url` answers (else 403 `download_not_allowed`)"})
    expires_at = fields.AwareDateTime(required=True, allow_none=True)
    image = fields.Nested(SharedImageSchema, required=True, allow_none=True,
                          metadata={"description": "An image link's image"})
    album = fields.Nested(SharedAlbumSchema, required=True, allow_none=True,
                          metadata={"description": "An album link's album"})


class SharedImagePageSchema(Schema):
    images = fields.List(fields.Nested(SharedImageSchema), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


class SharedImagesQuerySchema(Schema):
    cursor = Text(validate=validate.Length(max=1000))
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class SharedSearchQuerySchema(Schema):
    q = Text(required=True, validate=validate.Length(max=MAX_QUERY_CHARS), metadata={
        "description": "As `GET /search`'s, among the link's images only"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = Text(validate=validate.Length(max=300))


# POST /shared/search/image: the fields of POST /search/image but `owner` and `album` (a
# link's images are one owner's, in one set).
_NOT_WITHIN_A_LINK = ("owner", "album")
SHARED_IMAGE_SEARCH_PARAMS = ImageSearchParamsSchema(exclude=_NOT_WITHIN_A_LINK)
SHARED_IMAGE_SEARCH_BODY: dict[str, Any] = copy.deepcopy(IMAGE_SEARCH_BODY)
for _name in _NOT_WITHIN_A_LINK:
    del SHARED_IMAGE_SEARCH_BODY["content"]["multipart/form-data"]["schema"]["properties"][_name]

SHARED_PREFIX = "/shared"


def shared_image_json(row: Record | Mapping[str, Any]) -> dict[str, Any]:
    """An image as a link shows it: as to anyone but its owner (the copy without location),
    with URLs that take the link's token instead of a key."""
    data = image_json(row, None)
    for name in ("file_url", "thumbnail_url", "preview_url"):
        data[name] = SHARED_PREFIX + data[name]
    return data


def share_json(row: Record | Mapping[str, Any]) -> dict[str, Any]:
    data = dict(row)
    data["kind"] = "image" if row["image_id"] is not None else "album"
    schema = NewShareSchema() if "token" in data else ShareSchema()
    result: dict[str, Any] = schema.dump(data)
    return result
