"""Keyset-pagination cursors: the sort key of a page's last row, signed by the service.

A cursor is ``base64url(JSON values) "." base64url(HMAC-SHA256)``. The MAC covers a *scope*
too: the route and everything that decides the result set (the words, the filters, the
viewer). So a cursor is honoured only for the request that it continues: a client can
neither forge one (and with it pick a query plan or skip a cost estimate) nor replay one
under other words. The secret lives in PostgreSQL (migration 0007), so every process and
host of a deployment accepts the others' cursors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

from ..errors import ValidationFailed

MAC_BYTES = 16
# Dates the database and every client can represent, whatever the offset.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
# ts_rank_cd scores are PostgreSQL `real`s between 0 and 1 (plus rounding).
MAX_SCORE = 1e6


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def scope_of(route: str, *parts: object) -> str:
    """A scope naming the route and the values that define its result set."""
    return route + ":" + json.dumps([str(p) for p in parts], separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Cursors:
    """Issues and checks cursors with the deployment's secret."""

    secret: bytes

    def _mac(self, scope: str, payload: bytes) -> bytes:
        message = scope.encode("utf-8", "surrogatepass") + b"\x00" + payload
        return hmac.new(self.secret, message, hashlib.sha256).digest()[:MAC_BYTES]

    def encode(self, scope: str, *values: object) -> str:
        plain = [v.isoformat() if isinstance(v, datetime) else str(v) if isinstance(v, UUID)
                 else v for v in values]
        payload = json.dumps(plain, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._mac(scope, payload))}"

    def decode(self, token: str, scope: str, *types: type) -> tuple[object, ...]:
        """The sort key back, each value converted and range-checked; 422 for anything this
        service did not issue for this very request."""
        try:
            body, _, mac = token.partition(".")
            payload = _unb64(body)
            if not hmac.compare_digest(_unb64(mac), self._mac(scope, payload)):
                raise ValueError("bad signature")
            plain = json.loads(payload)
            if not isinstance(plain, list) or len(plain) != len(types):
                raise ValueError("wrong shape")
            return tuple(_convert(value, kind) for value, kind in zip(plain, types, strict=True))
        except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeError):
            raise ValidationFailed(
                "Malformed cursor",
                details={"cursor": ["Not a cursor this service issued for this request."]},
            ) from None


class Position:
    """The type to decode an album position with (an int of PostgreSQL's `integer`)."""

    MAX = 2**31 - 1


def _convert(value: object, kind: type) -> object:
    """Even a signed value is checked: a cursor outlives the code that issued it."""
    if kind is Position:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= Position.MAX:
            raise ValueError("position out of range")
        return value
    if kind is datetime:
        parsed = datetime.fromisoformat(str(value))
        if parsed.tzinfo is None or not EARLIEST <= parsed <= LATEST:
            raise ValueError("date out of range")
        return parsed.astimezone(UTC)
    if kind is UUID:
        return UUID(str(value))
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"expected {kind.__name__}")
    if kind is float and not (math.isfinite(value) and abs(value) <= MAX_SCORE):  # type: ignore[arg-type]
        raise ValueError("number out of range")
    if kind is int and not 0 <= value <= 64:  # type: ignore[operator]
        raise ValueError("number out of range")
    return value
