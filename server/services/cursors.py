"""Opaque keyset-pagination cursors: the sort key of the last row of a page."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from uuid import UUID

from ..errors import ValidationFailed


def encode_cursor(*values: object) -> str:
    """Serialise a sort key (datetimes, UUIDs, numbers, strings) into a URL-safe token."""
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID) else v
             for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, *types: type) -> tuple[object, ...]:
    """The sort key back, each value converted to the given type; 422 when malformed."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        plain = json.loads(raw)
        if not isinstance(plain, list) or len(plain) != len(types):
            raise ValueError("wrong shape")
        return tuple(_convert(value, kind) for value, kind in zip(plain, types, strict=True))
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed(
            "Malformed cursor", details={"cursor": ["Not a cursor this service issued."]}
        ) from None


def _convert(value: object, kind: type) -> object:
    if kind is datetime:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None:
            raise ValueError("naive datetime")
        return parsed
    if kind is UUID:
        return UUID(str(value))
    if kind in (int, float) and isinstance(value, bool):
        raise ValueError("bool is not a number")
    if not isinstance(value, kind):
        raise ValueError(f"expected {kind.__name__}")
    return value
