"""What an API key may do (issue 26). The names are part of the API; the migration
sql/migrations/0013_key_scopes.sql checks the same list."""

from __future__ import annotations

READ = "read"  # see images and albums, search, find similar ones, list; the profile
UPLOAD = "upload"  # add images (and ask which ones are already there)
WRITE = "write"  # change and delete images; make, fill, change and delete albums
KEYS = "keys"  # list, revoke and make keys (never broader than the key making them)
SHARE = "share"  # make, list and revoke share links

SCOPES: tuple[str, ...] = (READ, UPLOAD, WRITE, KEYS, SHARE)
ALL_SCOPES: frozenset[str] = frozenset(SCOPES)

DESCRIPTIONS = {
    READ: "see images (metadata, files, thumbnails) and albums, search, find similar images, "
          "list them; your profile",
    UPLOAD: "upload images, and ask which of your files are already stored",
    WRITE: "change and delete your images; make, fill, reorder, change and delete your "
           "albums",
    KEYS: "list and revoke your keys, and make keys with no more scopes than its own",
    SHARE: "make, list and revoke share links to your images and albums (making one needs "
           "`read` too)",
}


def ordered(scopes: object) -> list[str]:
    """Known scope names in their canonical order, each once."""
    given = set(scopes)  # type: ignore[call-overload]
    return [s for s in SCOPES if s in given]
