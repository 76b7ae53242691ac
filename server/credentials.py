"""Passwords (bcrypt) and API keys (random, stored as SHA-256 digests).

bcrypt is CPU-bound (about 0.25 s at cost 12): callers run these functions in the CPU
pool, never on the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from functools import cache

import bcrypt

BCRYPT_COST = 12
KEY_PREFIX = "irk_"  # "image repository key": recognisable in logs and by secret scanners
SHARE_PREFIX = "irs_"  # "image repository share": a share link's token
KEY_RANDOM_BYTES = 32
DISPLAY_PREFIX_CHARS = 8
PASSWORD_MAX_BYTES = 72  # bcrypt ignores anything longer, so longer passwords are refused


def hash_password(password: str, cost: int = BCRYPT_COST) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()


@cache
def _dummy_hash(cost: int) -> bytes:
    return bcrypt.hashpw(secrets.token_bytes(16).hex().encode(), bcrypt.gensalt(cost))


def check_password(password: str, password_hash: str | None, cost: int = BCRYPT_COST) -> bool:
    """True when the password matches. With no hash (no such user) it compares against a
    dummy hash of the same cost, so both answers take the same time."""
    candidate = password.encode()
    if password_hash is None or len(candidate) > PASSWORD_MAX_BYTES:
        bcrypt.checkpw(candidate[:PASSWORD_MAX_BYTES], _dummy_hash(cost))
        return False
    return bcrypt.checkpw(candidate, password_hash.encode())


@dataclass(frozen=True, slots=True)
class NewApiKey:
    secret: str  # shown to the client exactly once
    prefix: str  # kept for display: enough to tell keys apart, useless to an attacker
    digest: bytes  # what the database stores


def new_api_key(prefix: str = KEY_PREFIX) -> NewApiKey:
    """A fresh secret of 256 random bits: an API key, or with SHARE_PREFIX a share link's token."""
    token = base64.urlsafe_b64encode(secrets.token_bytes(KEY_RANDOM_BYTES)).rstrip(b"=").decode()
    secret = prefix + token
    return NewApiKey(secret, secret[: len(prefix) + DISPLAY_PREFIX_CHARS], key_digest(secret))


def key_digest(secret: str) -> bytes:
    # A plain SHA-256 suffices: the key carries 256 random bits, nothing to brute-force.
    return hashlib.sha256(secret.encode()).digest()


def looks_like_api_key(value: str) -> bool:
    return value.startswith(KEY_PREFIX) and 0 < len(value) <= 100


def looks_like_share_token(value: str) -> bool:
    return value.startswith(SHARE_PREFIX) and 0 < len(value) <= 100
