"""Schemas of images: the Image shape, listing, changes, bulk deletion, uploads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from marshmallow import Schema, fields, validate

from ..db.queries import Record
from ..imaging import ACCEPTED, to_hex
from ..imaging.thumbnails import LARGE, SIZES, SMALL, THUMBNAIL_VERSION
from ..services.images import (
    MAX_DESCRIPTION_CHARS,
    MAX_TAG_CHARS,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    VISIBILITIES,
    as_served,
)
from .common import IDEMPOTENT_REPLAYED_HEADER, RETRY_AFTER_HEADER, ErrorSchema, Text


class HashesSchema(Schema):
    phash = fields.String(required=True, metadata={"description": "64-bit pHash, 16 hex digits"})
    dhash = fields.String(required=True)
    ahash = fields.String(required=True)
    whash = fields.String(required=True)
    colorhash = fields.String(required=True)


class ImageSchema(Schema):
    id = fields.UUID(required=True)
    owner = fields.String(required=True, metadata={"description": "The owner's username"})
    title = fields.String(required=True)
    description = fields.String(required=True)
    tags = fields.List(fields.String(), required=True)
    visibility = fields.String(required=True, validate=validate.OneOf(VISIBILITIES))
    filename = fields.String(required=True, metadata={"description": "The sanitised original name"})
    content_type = fields.String(required=True, metadata={"description": "Sniffed from the bytes"})
    width = fields.Integer(required=True)
    height = fields.Integer(required=True)
    size_bytes = fields.Integer(required=True, metadata={
        "description": "Of the file you download: for everyone but the owner of a picture "
                       "that carries a GPS position, the copy without it"})
    sha256 = fields.String(required=True, metadata={
        "description": "SHA-256 of the file you download (hex), as `size_bytes`"})
    hashes = fields.Nested(HashesSchema, required=True)
    created_at = fields.AwareDateTime(required=True)
    updated_at = fields.AwareDateTime(required=True)
    file_url = fields.String(required=True, metadata={"description": "Where the bytes are"})
    thumbnail_url = fields.String(required=True, metadata={
        "description": f"A WebP (or JPEG) of at most {SMALL} px on the long side: grids"})
    preview_url = fields.String(required=True, metadata={
        "description": f"A WebP (or JPEG) of at most {LARGE} px on the long side: detail views"})


class ImagesSchema(Schema):
    images = fields.List(fields.Nested(ImageSchema), required=True)


class MatchedBySchema(Schema):
    signal = fields.String(
        required=True, validate=validate.OneOf(["whole", "region", "features"]),
        metadata={"description": "`whole`/`region`: the hash of the whole stored picture or "
                                 "of a region of it matched; `features`: its local features "
                                 "(keypoints) were found in the query and verified by "
                                 "geometry (a crop, an overlay, a picture inside a page...)"})
    region = fields.String(required=True, metadata={
        "description": "The stored signal: whole, centre, top-left, top-right, bottom-left, "
                       "bottom-right; `features` for a match by local features"})
    variant = fields.String(required=True, metadata={
        "description": "What the query's matching variant assumed (a crop, borders, a tilt...)"})
    query_part = fields.String(
        required=True, validate=validate.OneOf(["whole", "region"]), metadata={
            "description": "`whole`: the query as a whole (maybe edited) matched; `region`: a "
                           "picture-like region of the query did (a screenshot, a post, a "
                           "frame, a photo of a screen, one picture of a collage), and "
                           "`corners` says where it lies"})
    corners = fields.List(
        fields.List(fields.Float(), validate=validate.Length(equal=2)),
        validate=validate.Length(equal=4), metadata={
            "description": "With `query_part` = `region`: where the stored picture lies in the "
                           "query, four [x, y] points in the query's pixels (upright, after "
                           "its EXIF orientation): top-left, top-right, bottom-right, "
                           "bottom-left of the picture"})
    inliers = fields.Integer(validate=validate.Range(min=0), metadata={
        "description": "When local features matched: how many of the stored picture's "
                       "keypoints the geometry verified (more is surer)"})


class NearDuplicateSchema(Schema):
    id = fields.UUID(required=True)
    distance = fields.Integer(required=True, metadata={"description": "pHash bits of the "
                                                       "matching region"})
    score = fields.Float(required=True, metadata={"description": "As in search by image"})
    matched_by = fields.Nested(MatchedBySchema, required=True)


class UploadedImageSchema(ImageSchema):
    near_duplicates = fields.List(
        fields.Nested(NearDuplicateSchema), required=True,
        metadata={"description": "Images you can see that match this one as search by image "
                                 "would (the same picture, maybe edited), best first"},
    )


class UploadedSchema(Schema):
    images = fields.List(fields.Nested(UploadedImageSchema), required=True)


class ImagePageSchema(ImagesSchema):
    next_cursor = fields.String(allow_none=True, required=True,
                                metadata={"description": "Pass as `cursor` for the next page"})


class ImagePathSchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "The image's id"})


class ListImagesQuerySchema(Schema):
    owner = Text(validate=validate.Length(min=1, max=32),
                          metadata={"description": "`me` or a username"})
    tag = Text(validate=validate.Length(min=1, max=MAX_TAG_CHARS))
    visibility = Text(validate=validate.OneOf(VISIBILITIES))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = Text(validate=validate.Length(max=200))


# What the service refuses in text (unicodedata's control characters, Cc), as patterns: a
# title and a tag hold none, a description may hold tabs and line breaks; a tag holds no
# comma either (the multipart field splits on them).
TITLE_PATTERN = r"^[^\u0000-\u001f\u007f-\u009f]*$"
DESCRIPTION_PATTERN = r"^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]*$"
_TAG_PATTERN = r"^[^,\u0000-\u001f\u007f-\u009f]*$"


class ImageChangesSchema(Schema):
    title = Text(validate=validate.Length(max=MAX_TITLE_CHARS),
                 metadata={"pattern": TITLE_PATTERN})
    description = Text(validate=validate.Length(max=MAX_DESCRIPTION_CHARS),
                       metadata={"pattern": DESCRIPTION_PATTERN})
    tags = fields.List(
        Text(validate=[validate.Length(max=MAX_TAG_CHARS), validate.Regexp(_TAG_PATTERN)],
             metadata={"pattern": _TAG_PATTERN}),
        validate=validate.Length(max=MAX_TAGS),
        metadata={"description": f"At most {MAX_TAGS} tags of {MAX_TAG_CHARS} characters; "
                                 "folded to lower case, duplicates dropped"})
    visibility = Text(validate=validate.OneOf(VISIBILITIES))


class FileMetadataSchema(Schema):
    """One file's own metadata in an upload's `metadata` parts. Documentation only: the
    rules are upload_metadata's, which also names the file in its errors."""

    title = Text(validate=validate.Length(max=MAX_TITLE_CHARS),
                 metadata={"pattern": TITLE_PATTERN})
    description = Text(validate=validate.Length(max=MAX_DESCRIPTION_CHARS),
                       metadata={"pattern": DESCRIPTION_PATTERN})
    tags = fields.List(
        Text(metadata={"pattern": TITLE_PATTERN}),
        metadata={"description": "Replaces the request's `tags` for this file. Each item one "
                                 "tag or several, comma-separated (at most "
                                 f"{MAX_TAGS} tags of {MAX_TAG_CHARS} characters in all, "
                                 "after splitting); folded to lower case, duplicates dropped"})
    visibility = Text(validate=validate.OneOf(VISIBILITIES))


class BulkDeleteSchema(Schema):
    ids = fields.List(fields.UUID(), required=True, validate=validate.Length(min=1, max=100))


class BulkDeletedSchema(Schema):
    deleted = fields.List(fields.UUID(), required=True)
    not_found = fields.List(fields.UUID(), required=True)


FILE_FORMATS = ("One or more images, told by their bytes (never by name or Content-Type): "
                "JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC/HEIF, AVIF, JPEG XL, and camera RAW "
                "(DNG, CR2, NEF, ARW). Anything else is 415, and so is a format whose decoder "
                "this server lacks (the error names it).")

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["file"],
                "properties": {
                    "file": {"type": "array", "minItems": 1,
                             "items": {"type": "string", "format": "binary"},
                             "description": FILE_FORMATS},
                    "title": {"type": "string", "maxLength": MAX_TITLE_CHARS,
                              "pattern": TITLE_PATTERN,
                              "description": "Default: the file name without extension"},
                    "description": {"type": "string", "maxLength": MAX_DESCRIPTION_CHARS,
                                    "pattern": DESCRIPTION_PATTERN},
                    "tags": {"type": "array", "items": {"type": "string",
                                                        "pattern": TITLE_PATTERN},
                             "description": "Each part one tag or several, comma-separated "
                                            f"(at most {MAX_TAGS} tags of {MAX_TAG_CHARS} "
                                            "characters in all, after splitting)"},
                    "visibility": {"type": "string", "enum": list(VISIBILITIES),
                                   "default": "private"},
                    # One JSON part per file (what generators send for an array of
                    # objects); the server also takes one part holding the whole array.
                    "metadata": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/FileMetadata"},
                        "description": (
                            "Each file's own metadata, one JSON object per `file` part, in "
                            "order: either one `metadata` part per file, each holding one "
                            "object, or a single `metadata` part holding the JSON array, "
                            "e.g. `[{\"title\": \"Beach\"}, {\"visibility\": "
                            "\"private\", \"tags\": [\"family\"]}]`. An object may hold "
                            "`title`, `description`, `tags` (it replaces the `tags` fields "
                            "for that file) and `visibility`, with the rules of those fields; "
                            "the fields are the defaults for the keys it leaves out. A "
                            "different count, an unknown key or a bad value is 422 naming the "
                            "file. At most 1 MiB of UTF-8 in all."),
                    },
                },
            },
            "encoding": {"file": {"contentType": "image/*"},
                         "tags": {"style": "form", "explode": True},
                         "metadata": {"contentType": "application/json"}},
        }
    },
}


def image_json(row: Record | Mapping[str, Any], viewer_id: UUID | None) -> dict[str, Any]:
    """An image row (image_view) in the API's Image shape, as this viewer sees it: the size
    and digest are those of the file they download (see images.as_served)."""
    data = as_served(row, viewer_id)
    data["sha256"] = data["sha256"].hex()
    data["hashes"] = {name: to_hex(row[name]) for name in ("phash", "dhash", "ahash", "whash")}
    data["hashes"]["colorhash"] = row["colorhash"]
    data["file_url"] = f"/images/{row['id']}/file"
    data["thumbnail_url"] = thumbnail_url(row["id"], SMALL)
    data["preview_url"] = thumbnail_url(row["id"], LARGE)
    result: dict[str, Any] = ImageSchema().dump(data)
    return result


# GET /images/{id}/file: the conditional and range request headers, and the headers each
# answer carries. Bytes are declared as application/octet-stream first, the one binary type
# openapi-python-client reads (it drops an answer whose types are all `image/...`, and takes
# the first type it knows), then the concrete types the server sends, for validators.
_BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE_TYPES = tuple(ACCEPTED.values())
THUMBNAIL_TYPES = ("image/webp", "image/jpeg")


def binary_content(media_types: tuple[str, ...]) -> dict[str, Any]:
    return dict.fromkeys(("application/octet-stream", *media_types), _BINARY)


_FILE_CONTENT = binary_content(IMAGE_TYPES)


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_FILE_HEADERS = {
    "ETag": _header("Strong validator of these bytes"),
    "Accept-Ranges": _header("`bytes`"),
    "Cache-Control": _header("`public, max-age=N` (`PUBLIC_CACHE_SECONDS`, default 300) for "
                             "anonymous answers about public images, `private, max-age=0` "
                             "otherwise"),
    "Vary": _header("`Authorization, X-API-Key`"),
    "Content-Disposition": _header("`inline` with the file name"),
}
FILE_PARAMETERS = [
    {"name": "Range", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "One byte range, `bytes=first-last`, `bytes=first-` or `bytes=-suffix`; "
                    "several ranges or a malformed one get the whole file"},
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "ETags; a match answers 304"},
    {"name": "If-Range", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "The range applies only if this is the current ETag"},
]
FILE_RESPONSES: dict[int, dict[str, Any]] = {
    200: {"description": "The file (without any location for everyone but the owner), "
                         "as its own type: " + ", ".join(IMAGE_TYPES),
          "content": _FILE_CONTENT, "headers": _FILE_HEADERS},
    206: {"description": "Part of the file, as its own type", "content": _FILE_CONTENT,
          "headers": {**_FILE_HEADERS, "Content-Range": _header("`bytes first-last/size`")}},
    304: {"description": "Not modified: the If-None-Match ETag is current",
          "headers": {"ETag": _FILE_HEADERS["ETag"]}},
}


def thumbnail_url(image_id: object, size: int) -> str:
    """`v` names the thumbnail pipeline: a new one makes new URLs, so each may be cached
    for good."""
    return f"/images/{image_id}/thumbnail?size={size}&v={THUMBNAIL_VERSION}"


class ThumbnailQuerySchema(Schema):
    size = fields.Integer(load_default=SMALL, validate=validate.OneOf(SIZES), metadata={
        "description": f"The long side at most: {SMALL} (grids) or {LARGE} (detail views); "
                       "never larger than the image"})
    v = Text(validate=validate.Length(max=16), metadata={
        "description": "The pipeline version from `thumbnail_url`; when it is the current "
                       "one the answer may be cached for a year"})


_THUMBNAIL_HEADERS = {
    "ETag": _header("Strong validator of these bytes"),
    "Cache-Control": _header("For the owner, `private` and `immutable` for a year when `v` "
                             "is current; for anyone else `max-age=N` (`PUBLIC_CACHE_SECONDS`, "
                             "default 300), `public` when asked anonymously"),
    "Vary": _header("`Accept, Authorization, X-API-Key`"),
    "Content-Disposition": _header("`inline` with the file name"),
}
THUMBNAIL_PARAMETERS = [
    {"name": "Accept", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "WebP unless this excludes `image/webp`; then JPEG (alpha on white)"},
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"},
     "description": "ETags; a match answers 304"},
]
THUMBNAIL_RESPONSES: dict[int, dict[str, Any]] = {
    200: {"description": "The thumbnail: upright, no metadata; image/webp, or image/jpeg "
                         "when the Accept header excludes WebP",
          "content": binary_content(THUMBNAIL_TYPES),
          "headers": _THUMBNAIL_HEADERS},
    304: {"description": "Not modified: the If-None-Match ETag is current",
          "headers": {"ETag": _THUMBNAIL_HEADERS["ETag"]}},
}


UPLOAD_RESPONSES: dict[int, dict[str, Any]] = {
    201: {"schema": UploadedSchema, "description": "The new images, in upload order",
          "headers": {"Idempotent-Replayed": IDEMPOTENT_REPLAYED_HEADER}},
    409: {"schema": ErrorSchema, "description": "A request with this Idempotency-Key is still "
                                                "being processed",
          "headers": {"Retry-After": RETRY_AFTER_HEADER}},
}


IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]+$"},
    "description": "Any unique string (a UUID): the same key and request within 24 hours get "
                   "the first answer again; the same key with another request is 422; while "
                   "the first still runs, 409 with Retry-After"}


class KnownQuerySchema(Schema):
    sha256 = fields.List(
        fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$"),
                      metadata={"pattern": "^[0-9a-f]{64}$"}),
        required=True, validate=validate.Length(min=1, max=1000),
        metadata={"description": "SHA-256 digests of files' bytes, lower-case hex"})


class KnownImageSchema(Schema):
    sha256 = fields.String(required=True)
    id = fields.UUID(required=True, metadata={"description": "One of your images with them"})


class KnownSchema(Schema):
    known = fields.List(fields.Nested(KnownImageSchema), required=True)
