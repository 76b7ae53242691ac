"""Errors the client can act on. Services raise them; the error middleware renders them
as ``{"error": {"code", "message", "details"}}`` with their status."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class ApiError(Exception):
    """An error the client can act on; its status and code are part of the API."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class MissingScope(Forbidden):
    """The API key is valid but lacks the scope the operation needs (details.missing_scope)."""

    status, code = 403, "missing_scope"


class DownloadNotAllowed(Forbidden):
    """A share link made without `allow_download`, asked for the file."""
    status, code = 403, "download_not_allowed"


class NotFound(ApiError):
    status, code = 404, "not_found"


class RequestTimeout(ApiError):
    status, code = 408, "request_timeout"


class Conflict(ApiError):
    status, code = 409, "conflict"


class AlbumFull(Conflict):
    """An album holds at most albums.MAX_IMAGES images."""

    status, code = 409, "album_full"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class RangeNotSatisfiable(ApiError):
    status, code = 416, "range_not_satisfiable"


class ValidationFailed(ApiError):
    status, code = 422, "validation_error"


class TooManyRequests(ApiError):
    status, code = 429, "too_many_requests"


class ServiceUnavailable(ApiError):
    status, code = 503, "service_unavailable"
