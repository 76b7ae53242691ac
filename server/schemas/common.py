"""Schemas shared by every resource."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import Schema, ValidationError, fields

NO_NUL = "^[^\\u0000]*$"


class ErrorBodySchema(Schema):
    code = fields.String(required=True, metadata={"example": "validation_error"})
    message = fields.String(required=True)
    details = fields.Dict(required=True, metadata={"description": "Per-field details, if any"})
    request_id = fields.String(metadata={
        "description": "The request's id, as in the X-Request-ID header and the server's "
                       "logs: quote it when reporting a problem"})


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


def error_responses(*statuses: int) -> dict[int, dict[str, object]]:
    """``@docs(responses=...)`` entries for the error answers an operation can give."""
    reasons = {
        400: "Malformed request",
        401: "Missing, wrong or revoked credentials",
        403: "Not allowed",
        404: "Not found",
        409: "Conflict",
        413: "Too large",
        415: "Unsupported media type",
        416: "Range not satisfiable",
        422: "Validation failed",
        429: "Too many attempts",
        503: "A dependency is unavailable",
    }
    return {s: {"schema": ErrorSchema, "description": reasons[s]} for s in statuses}


# Response headers more than one answer sends.
REQUEST_ID_HEADER = {
    "description": "The request's id (a trusted proxy's, else a new one): in the server's "
                   "logs and in any error body",
    "schema": {"type": "string"},
}
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}
IDEMPOTENT_REPLAYED_HEADER = {
    "description": "`true` on an answer replayed for a repeated Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]},
}


class Moment(fields.AwareDateTime):
    """An ISO 8601 date-time with an offset, that exists in UTC too (0001-01-01T00:00+14:00
    does not: it would be year 0)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        try:
            return result.astimezone(UTC)
        except OverflowError:
            raise ValidationError("Out of range once converted to UTC.") from None


class Text(fields.String):
    """A string PostgreSQL can store: NUL characters and lone surrogates (which JSON can
    carry) are refused with 422 here rather than by the database with an error. The spec
    says so for NUL (a pattern, unless the field has a stricter one of its own)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        metadata = kwargs.setdefault("metadata", {})
        metadata.setdefault("pattern", NO_NUL)
        super().__init__(*args, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        result = super()._deserialize(value, attr, data, **kwargs)
        if isinstance(result, str):
            if "\x00" in result:
                raise ValidationError("NUL characters are not allowed.")
            try:
                result.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError("Not valid Unicode (lone surrogate).") from None
        return result
