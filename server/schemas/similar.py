"""Schemas of search by image."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..services.images import MAX_TAG_CHARS
from ..services.search import MAX_QUERY_CHARS
from .common import NO_NUL, Text
from .images import HashesSchema, ImageSchema, MatchedBySchema
from .search import ALBUM_DESCRIPTION

MATCH_DESCRIPTION = (
    "`robust` (default): the picture is found again through crops, caption bands, borders, "
    "small rotations and re-encodings; every result is verified on two more signals, best "
    "first. `exact`: whole-picture pHash within `max_distance` bits, nearest first, exact "
    "against brute force.")


class SimilarParamsSchema(Schema):
    match = Text(load_default="robust", validate=validate.OneOf(["robust", "exact"]),
                 metadata={"description": MATCH_DESCRIPTION})
    max_distance = fields.Integer(load_default=10, validate=validate.Range(min=0, max=32),
                                  metadata={"description": "pHash bits (0-32), `match=exact` "
                                                           "only"})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = Text(validate=validate.Length(max=300))
    q = Text(validate=validate.Length(min=1, max=MAX_QUERY_CHARS),
                      metadata={"description": "Full-text filter, as for /search"})
    tag = Text(validate=validate.Length(min=1, max=MAX_TAG_CHARS))
    owner = Text(validate=validate.Length(min=1, max=32),
                          metadata={"description": "`me` or a username"})
    album = fields.UUID(metadata={"description": ALBUM_DESCRIPTION})


class ImageSearchParamsSchema(SimilarParamsSchema):
    orientations = Text(
        load_default="none", validate=validate.OneOf(["none", "all"]),
        metadata={"description": "`all`: also find mirrored copies, and rotated ones by their "
                                 "hashes (with `match=robust`, local features find copies "
                                 "turned by any angle without it)"},
    )


class SimilarResultSchema(ImageSchema):
    distance = fields.Integer(required=True, metadata={
        "description": "pHash bits between the query (or its matching variant) and the "
                       "stored picture or region"})
    score = fields.Float(required=True, metadata={
        "description": "1 - (pHash + dHash bits) / 128 of the matching pair: 1 is identical; "
                       "`match=exact`: 1 - distance / 64"})
    matched_by = fields.Nested(MatchedBySchema, required=True)


class QuerySchema(Schema):
    hashes = fields.Nested(HashesSchema, required=True)


class SimilarPageSchema(Schema):
    query = fields.Nested(QuerySchema, required=True)
    results = fields.List(fields.Nested(SimilarResultSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)


IMAGE_SEARCH_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary",
                             "description": "The query image; it is not stored"},
                    "match": {"type": "string", "enum": ["robust", "exact"],
                              "default": "robust", "description": MATCH_DESCRIPTION},
                    "max_distance": {"type": "integer", "minimum": 0, "maximum": 32,
                                     "default": 10},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    "cursor": {"type": "string", "maxLength": 300, "pattern": NO_NUL},
                    "q": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_CHARS,
                          "pattern": NO_NUL},
                    "tag": {"type": "string", "minLength": 1, "maxLength": MAX_TAG_CHARS,
                            "pattern": NO_NUL},
                    "owner": {"type": "string", "minLength": 1, "maxLength": 32,
                              "pattern": NO_NUL, "description": "`me` or a username"},
                    "orientations": {"type": "string", "enum": ["none", "all"],
                                     "default": "none"},
                    "album": {"type": "string", "format": "uuid",
                              "description": ALBUM_DESCRIPTION},
                },
            },
        }
    },
}
