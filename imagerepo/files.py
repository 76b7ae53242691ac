"""Finding the images in folders: by their bytes, not their names."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# The formats the service accepts, by their first bytes (as the server sniffs them): media type,
# first bytes, where they start.
_MAGIC: tuple[tuple[str, bytes, int], ...] = (
    ("image/jpeg", b"\xff\xd8\xff", 0),
    ("image/png", b"\x89PNG\r\n\x1a\n", 0),
    ("image/gif", b"GIF87a", 0),
    ("image/gif", b"GIF89a", 0),
    ("image/bmp", b"BM", 0),
    ("image/tiff", b"II*\x00", 0),  # little-endian
    ("image/tiff", b"MM\x00*", 0),  # big-endian
)
SNIFF_BYTES = 16  # enough for every entry above


def media_type(head: bytes) -> str | None:
    """The image media type the first bytes announce, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":  # a length between the two
        return "image/webp"
    for kind, magic, offset in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return kind
    return None


def is_image(head: bytes) -> bool:
    return media_type(head) is not None


@dataclass(frozen=True, slots=True)
class Found:
    path: Path
    size: int


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    reason: str


def walk(paths: Iterable[Path], recursive: bool,
         skipped: list[Path] | None = None) -> Iterator[Path]:
    """Every file named, and the files in the folders named (their subfolders too when
    recursive), in a stable order; hidden files and folders are left out of folders. The
    subfolders not entered (not recursive) are added to `skipped`."""
    for path in paths:
        if path.is_dir():
            for root, dirs, names in os.walk(path):
                visible = sorted(d for d in dirs if not d.startswith("."))
                if not recursive and skipped is not None:
                    skipped += [Path(root, d) for d in visible]
                dirs[:] = visible if recursive else []
                for name in sorted(names):
                    if not name.startswith("."):
                        yield Path(root, name)
        else:
            yield path


def examine(path: Path) -> Found | Problem | None:
    """A file that is an image (Found), unreadable (Problem), or not an image (None)."""
    try:
        with path.open("rb") as file:
            head = file.read(16)
            size = os.fstat(file.fileno()).st_size
    except OSError as exc:
        return Problem(path, exc.strerror or str(exc))
    return Found(path, size) if is_image(head) else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while block := file.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
