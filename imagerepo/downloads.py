"""Writing what the service sends to disk, treating every string and byte of it as hostile.

The name is one we chose: the uploader's name reduced to a safe basename, with the suffix of the
type the bytes announce (never the uploader's suffix). The bytes stream into a temporary file
beside the target (O_EXCL, mode 0600) and take the target's name only when complete and as
described (size and SHA-256 of the image's metadata); anything else removes the temporary file.
An existing name is never replaced without `force`, and then the entry itself is replaced (a
symlink is not followed).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import tempfile
import unicodedata
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .files import SNIFF_BYTES, media_type

SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
            "image/webp": ".webp", "image/bmp": ".bmp", "image/tiff": ".tif",
            "image/heic": ".heic", "image/avif": ".avif", "image/jxl": ".jxl",
            "image/x-adobe-dng": ".dng", "image/x-canon-cr2": ".cr2",
            "image/x-nikon-nef": ".nef", "image/x-sony-arw": ".arw"}
UNKNOWN_SUFFIX = ".bin"  # bytes of no known image type: nothing opens them as a program
MAX_STEM_BYTES = 120  # with a suffix, far below the 255 bytes file systems allow
# Names Windows reserves for devices (also with any suffix); refused on every system, as a
# folder may be shared.
_RESERVED = re.compile(r"(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])", re.IGNORECASE)
_ALLOWED_PUNCTUATION = set(" -_.,()+@")
TEMPORARY_PREFIX = ".imagerepo-"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


class Refused(Exception):
    """A download that was not written, and why (for the person)."""


def image_id(value: object) -> str:
    """The canonical form of an image id (a UUID, hyphens in place), whoever sent it;
    ValueError otherwise. (uuid.UUID alone would take braces, "urn:uuid:", a newline.)"""
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise ValueError("not an image id")
    return str(uuid.UUID(value))


def safe_stem(name: object) -> str:
    """What is left of a name from the service to use as our own file's stem: the last path
    component (either separator), without its suffix, control or format characters, leading
    dots, dashes or spaces, and bounded in length; "" when nothing usable remains."""
    if not isinstance(name, str):
        return ""
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(c for c in unicodedata.normalize("NFC", name)
                   if not unicodedata.category(c).startswith("C")).lstrip(" .-")
    stem, dot, _suffix = name.rpartition(".")
    stem = stem if dot else name
    stem = "".join(c if c.isalnum() or c in _ALLOWED_PUNCTUATION else "_" for c in stem)
    stem = _cut(stem.rstrip(" ."), MAX_STEM_BYTES).rstrip(" .")
    if _RESERVED.fullmatch(stem.split(".")[0].strip()):
        return ""
    return stem


def _cut(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut between characters."""
    return text.encode()[:limit].decode(errors="ignore")


def file_name(server_name: object, kind: str | None, fallback: str) -> str:
    """Our name for the bytes: a safe stem of the server's name (else `fallback`, a validated
    id) with the suffix of the sniffed type."""
    return (safe_stem(server_name) or fallback) + SUFFIXES.get(kind or "", UNKNOWN_SUFFIX)


@dataclass(frozen=True, slots=True)
class Expected:
    """What the service said the bytes are: their size and SHA-256."""

    size: int
    sha256: str

    @classmethod
    def of(cls, image: dict[str, object]) -> Expected:
        size, digest = image.get("size_bytes"), image.get("sha256")
        if (not isinstance(size, int) or isinstance(size, bool) or size < 0
                or not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest)):
            raise Refused("the service's answer has no valid size_bytes and sha256")
        return cls(size, digest)


def described(image: Any, wanted: str | None) -> tuple[str, Expected]:
    """The id of an Image from the service (which must be `wanted`, if given) and what it
    announces of the bytes; Refused when these are not valid."""
    if not isinstance(image, dict):
        raise Refused("the service's answer is not an image's description")
    try:
        got = image_id(image.get("id"))
    except ValueError:
        raise Refused("the service's answer has no valid image id") from None
    if wanted is not None and got != wanted:
        raise Refused(f"the service answered about another image ({got})")
    return got, Expected.of(image)


@dataclass(frozen=True, slots=True)
class Saved:
    path: Path
    size: int
    kind: str | None  # the sniffed media type; None: not an image we know


async def save(chunks: AsyncIterator[bytes], folder: Path, name_for: Callable[[str | None], str],
               expected: Expected, *, force: bool) -> Saved:
    """Stream `chunks` into `folder` under `name_for(sniffed type)`. Refused (nothing left
    behind) when the name is taken and not `force`, or the bytes are not as expected."""
    fd, temporary = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=".part", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size, head = hashlib.sha256(), 0, b""
            target: Path | None = None
            async for chunk in chunks:
                size += len(chunk)
                if size > expected.size:
                    raise Refused(f"the service sent more than the {expected.size} bytes it "
                                  "announced")
                digest.update(chunk)
                out.write(chunk)
                if target is None and len(head) < SNIFF_BYTES:
                    head += chunk[:SNIFF_BYTES - len(head)]
                if target is None and len(head) >= min(SNIFF_BYTES, expected.size):
                    target = _free(folder / name_for(media_type(head)), force)
            if size != expected.size or digest.hexdigest() != expected.sha256:
                raise Refused("the bytes received are not the ones the service described "
                              f"({size} of {expected.size} bytes, or another SHA-256)")
            target = target or _free(folder / name_for(media_type(head)), force)
            out.flush()
            os.fchmod(out.fileno(), 0o666 & ~_umask())  # as any new file of the user's
            os.fsync(out.fileno())
        _place(temporary, target, force)
    except BaseException:  # also on Ctrl-C: no partial file remains
        Path(temporary).unlink(missing_ok=True)
        raise
    return Saved(target, size, media_type(head))


def _free(target: Path, force: bool) -> Path:
    """The target, when it may be written (checked early, so a long download is not wasted;
    _place checks again, atomically)."""
    if not force and os.path.lexists(target):
        raise Refused(f"{target} exists (--force replaces it)")
    return target


def _place(temporary: str, target: Path, force: bool) -> None:
    """Give the complete file its name. Without force, a hard link fails if the name exists
    (anything: file, folder, symlink, even one made a moment ago); with force, rename replaces
    the entry itself, never what a symlink points at."""
    if force:
        try:
            os.replace(temporary, target)
        except OSError as exc:
            raise Refused(f"cannot write {target}: {exc.strerror}") from None
        return
    try:
        os.link(temporary, target)
        os.unlink(temporary)
    except FileExistsError:
        raise Refused(f"{target} exists (--force replaces it)") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
            raise Refused(f"cannot write {target}: {exc.strerror}") from None
        # A file system without hard links: check, then rename (a race remains there).
        _free(target, force=False)
        os.replace(temporary, target)


def _umask() -> int:
    mask = os.umask(0o077)
    os.umask(mask)
    return mask
