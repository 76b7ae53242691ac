"""Schemas of text search."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..services.images import MAX_TAG_CHARS, VISIBILITIES
from ..services.search import MAX_QUERY_CHARS
from .common import Moment, Text
from .images import ImageSchema

ALBUM_DESCRIPTION = ("Search only this album's images (those you may see); 404 unless the "
                     "album is public or yours")


class SearchQuerySchema(Schema):
    q = Text(
        required=True, validate=validate.Length(max=MAX_QUERY_CHARS),
        metadata={"description": 'Web-search syntax: words, "quoted phrases", -excluded, or. '
                                 "The last word also matches as a prefix."},
    )
    owner = Text(validate=validate.Length(min=1, max=32),
                          metadata={"description": "`me` or a username"})
    tag = Text(validate=validate.Length(min=1, max=MAX_TAG_CHARS))
    visibility = Text(validate=validate.OneOf(VISIBILITIES))
    created_after = Moment(metadata={"description": "ISO 8601 with an offset, inclusive"})
    created_before = Moment(metadata={"description": "ISO 8601 with an offset, exclusive; "
                                                     "must be later than created_after"})
    album = fields.UUID(metadata={"description": ALBUM_DESCRIPTION})
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = Text(validate=validate.Length(max=300))


class SearchResultSchema(ImageSchema):
    score = fields.Float(required=True, metadata={"description": "ts_rank_cd of the match"})
    headline = fields.String(
        required=True,
        metadata={"description": "Snippet of title and description, matches in <mark>...</mark>; "
                                 "the text is not HTML-escaped"},
    )


class SearchPageSchema(Schema):
    results = fields.List(fields.Nested(SearchResultSchema), required=True)
    next_cursor = fields.String(allow_none=True, required=True)
