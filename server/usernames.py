"""One canonical form of a username, used by sign-up, login, lookup and lockout alike.

Names are ASCII (letters, digits, '_', '.', '-'), so folding their case is plain ASCII
lower-casing: Python's ``str.lower()`` and PostgreSQL's ``lower()`` disagree on letters such
as 'İ', and a name that is not ASCII can never be an account's.
"""

from __future__ import annotations

import re

# For the OpenAPI spec (ECMAScript regex, where `$` never matches before a trailing newline).
USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"
_USERNAME = re.compile(r"[A-Za-z0-9_.-]{3,32}")


def is_username(name: str) -> bool:
    return _USERNAME.fullmatch(name) is not None


def username_key(name: str) -> str | None:
    """The case-folded key of a well-formed name; None for anything that cannot be one."""
    return name.lower() if is_username(name) else None
