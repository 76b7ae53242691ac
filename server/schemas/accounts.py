"""Schemas of users and API keys."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from ..credentials import PASSWORD_MAX_BYTES
from ..scopes import DESCRIPTIONS, SCOPES
from ..usernames import USERNAME_PATTERN, is_username
from .common import Text

PASSWORD_MIN_CHARS = 10


def _validate_username(value: str) -> None:
    # fullmatch: a regex's `$` would let a trailing newline through.
    if not is_username(value):
        raise ValidationError("3 to 32 characters of letters, digits, '_', '.' and '-'.")


def _validate_password(value: str) -> None:
    if len(value) < PASSWORD_MIN_CHARS:
        raise ValidationError(f"Must be at least {PASSWORD_MIN_CHARS} characters.")
    if len(value.encode()) > PASSWORD_MAX_BYTES:
        # bcrypt reads only the first 72 bytes: refuse rather than truncate silently.
        raise ValidationError(f"Must be at most {PASSWORD_MAX_BYTES} bytes in UTF-8.")
    if "\x00" in value:
        raise ValidationError("Must not contain NUL characters.")


def _validate_unique(value: list[str]) -> None:
    if len(set(value)) != len(value):
        raise ValidationError("Each scope at most once.")


class SignUpSchema(Schema):
    username = Text(
        required=True,
        validate=_validate_username,
        metadata={"example": "ada", "pattern": USERNAME_PATTERN, "minLength": 3,
                  "maxLength": 32},
    )
    password = Text(
        required=True,
        load_only=True,
        validate=_validate_password,
        metadata={"description": "10 characters to 72 bytes in UTF-8 (bcrypt's limit); no NUL",
                  "format": "password", "minLength": PASSWORD_MIN_CHARS,
                  "maxLength": PASSWORD_MAX_BYTES},
    )


class UserSchema(Schema):
    id = fields.UUID(required=True)
    username = fields.String(required=True)
    created_at = fields.AwareDateTime(required=True)


class SignedUpSchema(UserSchema):
    api_key = fields.String(
        required=True, metadata={"description": "Your first API key, shown only this once"}
    )


class NewKeyRequestSchema(Schema):
    name = Text(load_default="", validate=validate.Length(max=100),
                metadata={"description": "A label to tell keys apart; without one, the key is "
                                         "named after the time it was made"})
    scopes = fields.List(
        fields.String(validate=validate.OneOf(SCOPES)),
        validate=[validate.Length(min=1, max=len(SCOPES)), _validate_unique],
        metadata={"description": "What the key may do (default: everything the caller may). "
                                 "A key making a key can give only scopes it has. "
                                 + "; ".join(f"`{k}`: {v}" for k, v in DESCRIPTIONS.items()),
                  "uniqueItems": True})
    expires_in_days = fields.Integer(
        allow_none=True, load_default=None, validate=validate.Range(min=1, max=3650),
        metadata={"description": "Days until the key stops working (1 to 3650; default: never, "
                                 "or when the key making it expires, whichever is sooner)"})


_SCOPES_FIELD_DESCRIPTION = "What the key may do; fixed when it is made (never changed)"


class KeySchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "The key's first characters"})
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         metadata={"description": _SCOPES_FIELD_DESCRIPTION})
    created_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(allow_none=True, required=True,
                                      metadata={"description": "null: never expires"})
    last_used_at = fields.AwareDateTime(allow_none=True, required=True)
    revoked_at = fields.AwareDateTime(allow_none=True, required=True)


class NewKeySchema(Schema):
    id = fields.UUID(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)), required=True,
                         metadata={"description": _SCOPES_FIELD_DESCRIPTION})
    created_at = fields.AwareDateTime(required=True)
    expires_at = fields.AwareDateTime(allow_none=True, required=True,
                                      metadata={"description": "null: never expires"})
    api_key = fields.String(required=True, metadata={"description": "The key, shown only once"})


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)


class KeyPathSchema(Schema):
    id = fields.UUID(required=True, metadata={"description": "The key's id"})


def dump(schema: Schema, data: Any) -> dict[str, Any]:
    result: dict[str, Any] = schema.dump(data)
    return result
