"""Finding the images in folders: by their bytes, not their names."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

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
# ISOBMFF brands (an ftyp box's major and compatible brands) of the HEIF formats.
_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic",
           b"heis": "image/heic", b"hevc": "image/heic", b"hevx": "image/heic",
           b"avif": "image/avif", b"avis": "image/avif"}
_JXL = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")
# A camera RAW built on TIFF, from its first directory: DNGVersion, or the maker's name.
_RAW_MAKERS = {b"NIKON": "image/x-nikon-nef", b"SONY": "image/x-sony-arw"}
SNIFF_BYTES = 4096  # the magic bytes, an ftyp box, a TIFF's first directory


def media_type(head: bytes) -> str | None:
    """The image media type the first bytes announce, or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":  # a length between the two
        return "image/webp"
    if head[4:8] == b"ftyp":
        size = int.from_bytes(head[:4], "big")
        brands = [head[8:12]] + [head[i:i + 4] for i in range(16, min(size, len(head)) - 3, 4)]
        return next((_BRANDS[b] for b in brands if b in _BRANDS), None)
    if head.startswith(_JXL):
        return "image/jxl"
    for kind, magic, offset in _MAGIC:
        if head[offset:offset + len(magic)] == magic:
            return _raw_type(head) or kind if kind == "image/tiff" else kind
    return None


def _raw_type(head: bytes) -> str | None:
    """The RAW media type of a TIFF-based file, when its first directory says so."""
    if head[:2] == b"II" and head[8:10] == b"CR":
        return "image/x-canon-cr2"
    order: Literal["little", "big"] = "little" if head[:2] == b"II" else "big"
    offset = int.from_bytes(head[4:8], order)
    count = int.from_bytes(head[offset:offset + 2], order)
    tags: dict[int, bytes] = {}
    for n in range(min(count, 512)):
        entry = head[offset + 2 + 12 * n:offset + 14 + 12 * n]
        if len(entry) < 12:
            break
        tag, length = int.from_bytes(entry[:2], order), int.from_bytes(entry[4:8], order)
        start = int.from_bytes(entry[8:12], order)
        tags[tag] = (entry[8:8 + length] if length <= 4 else head[start:start + min(length, 64)])
    if 50706 in tags:  # DNGVersion
        return "image/x-adobe-dng"
    make = tags.get(271, b"").upper()
    return next((kind for maker, kind in _RAW_MAKERS.items()
                 if make.startswith(maker) and 330 in tags), None)


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
            head = file.read(SNIFF_BYTES)
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
