"""What the sharing commands (share, shares, album, shared) check before any request: link
lifetimes, share links typed or pasted, and bulk id lists cut to the API's size."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

# Making a share link takes expires_in_seconds from 60 (a minute) to 315360000 (3650 days).
MIN_SECONDS = 60
MAX_SECONDS = 3650 * 86400
UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# The service's bulk album operations take at most this many ids per request.
BULK = 100
# "irs_" + 32 random bytes in base64url (43 characters); a little slack for a longer one later.
_TOKEN = re.compile(r"irs_[A-Za-z0-9_-]{20,128}")


def seconds(value: str) -> int:
    """A lifetime typed as 30m, 12h, 7d or 2w, in seconds; ValueError (with the reason) for
    anything else, a bare number included (minutes or days? it does not guess)."""
    match = re.fullmatch(r"\s*([0-9]{1,9})\s*([a-zA-Z]+)\s*", value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in UNITS:
        raise ValueError(f"not a duration like 30m, 12h, 7d or 2w: {value!r}")
    total = int(match.group(1)) * UNITS[unit]
    if not MIN_SECONDS <= total <= MAX_SECONDS:
        raise ValueError(f"a link lives from 1 minute to 3650 days, not {value!r}")
    return total


def said_duration(total: int) -> str:
    """Seconds as the largest unit that divides them: 604800 -> "7 days"."""
    for name, size in (("week", UNITS["w"]), ("day", UNITS["d"]), ("hour", UNITS["h"])):
        if total % size == 0:
            count = total // size
            return f"{count} {name}" + ("s" if count != 1 else "")
    count = total // 60
    return f"{count} minute" + ("s" if count != 1 else "")


def share_link(value: str, default_url: str) -> tuple[str, str]:
    """(service URL, token) of a link as the service prints it (https://host/#share=TOKEN), or
    of a bare token (then on `default_url`); ValueError for anything else. The token goes only
    to the service the link names, in a header."""
    text = value.strip()
    if _TOKEN.fullmatch(text):
        return default_url.rstrip("/"), text
    base, marker, token = text.partition("#share=")
    parts = urlsplit(base)
    if (not marker or not _TOKEN.fullmatch(token) or parts.scheme not in ("http", "https")
            or not parts.hostname or parts.query or parts.username or parts.password):
        raise ValueError("not a share link (https://host/#share=irs_…) nor a share token")
    return base.rstrip("/"), token


def is_token(value: object) -> bool:
    return isinstance(value, str) and _TOKEN.fullmatch(value) is not None


def batches(ids: Sequence[str], size: int = BULK) -> Iterator[list[str]]:
    """The ids, each once and in the order given, in lists of at most `size`."""
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), size):
        yield unique[start:start + size]
