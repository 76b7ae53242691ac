"""Location privacy for the containers phones and cameras write: HEIF and AVIF (ISOBMFF),
JPEG XL, and camera RAW built on TIFF (DNG, CR2, NEF, ARW). Each public copy is the same
format with the pixels' bytes untouched, so it decodes to exactly the same picture:

- HEIF/AVIF: every item that is not part of the picture (Exif, XMP and other `mime` items,
  `uri ` items, anything unknown) has its bytes blanked in place, and boxes outside the
  picture (`uuid`, a sequence's `udta`) become `free` boxes. No offset moves, so `iloc`
  stays valid. The orientation lives in `irot`/`imir` properties, which stay.
- JPEG XL: the container keeps only the codestream and its structure boxes; `Exif`,
  `xml `, `jumb`, `brob` (compressed boxes) and `jbrd` (a JPEG's own segments) are
  dropped. A bare codestream has no metadata. The orientation is the codestream's.
- RAW: the TIFF directories (IFD chain, SubIFDs, EXIF and interoperability IFDs) are walked;
  a GPS IFD is zeroed with its values and its entry removed from the directory that pointed
  to it (the entries after it move up in place), XMP becomes spaces, IPTC,
  Photoshop and GeoTIFF values zeros, and any EXIF or XMP block embedded elsewhere (a
  preview JPEG's) is blanked the same way. Maker notes are kept: LibRaw needs them to
  decode some cameras' data.

Work is done on the copy, a block at a time: a 50 MB RAW is never held in memory.
"""

from __future__ import annotations

import re
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

_BLOCK = 1 << 20
# ISOBMFF items that are the picture (coded images, derived images, gain maps, masks).
_PICTURE_ITEMS = frozenset({b"hvc1", b"av01", b"grid", b"iden", b"iovl", b"jpeg", b"tmap",
                            b"hvt1", b"lhv1", b"avc1", b"vvc1", b"unci", b"j2k1", b"mski"})
_TOP_LEVEL_KEPT = frozenset({b"ftyp", b"meta", b"mdat", b"free", b"skip", b"moov", b"idat"})
_MOOV_CONTAINERS = frozenset({b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"})
_JXL_KEPT = frozenset({b"JXL ", b"ftyp", b"jxll", b"jxlc", b"jxlp", b"jxli"})
# An empty EXIF item: the 4-byte offset to the TIFF header, then a TIFF with no entries.
_EMPTY_EXIF_ITEM = b"\x00\x00\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00"
_MAX_BOXES = 1 << 16
_MAX_EXIF = 4 << 20  # an EXIF block larger than this is blanked unread
_MAX_IFDS = 4096


# --- ISOBMFF boxes ---------------------------------------------------------------------------

def _boxes(fp: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int, int]]:
    """(type, box start, payload start, box end) of the boxes between start and end."""
    pos, count = start, 0
    while pos + 8 <= end:
        fp.seek(pos)
        size, kind = struct.unpack(">I4s", fp.read(8))
        header = 8
        if size == 1:
            (size,) = struct.unpack(">Q", fp.read(8))
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} at {pos} overruns its container")
        count += 1
        if count > _MAX_BOXES:
            raise ValueError("too many boxes")
        yield kind, pos, pos + header, pos + size
        pos += size


def _read(fp: BinaryIO, at: int, n: int) -> bytes:
    fp.seek(at)
    data = fp.read(n)
    if len(data) != n:
        raise ValueError("a box is cut short")
    return data


def _uint(data: bytes, at: int, size: int) -> int:
    return int.from_bytes(data[at:at + size], "big") if size else 0


def _item_types(infe_payloads: list[bytes]) -> dict[int, bytes]:
    """item id -> item type (for `mime`, its content type decides nothing: all are blanked)."""
    types: dict[int, bytes] = {}
    for body in infe_payloads:
        version = body[0]
        if version < 2:
            raise ValueError("an item info entry older than version 2")
        id_size = 2 if version == 2 else 4
        item_id = _uint(body, 4, id_size)
        types[item_id] = body[4 + id_size + 2:4 + id_size + 6]
    return types


def _item_extents(iloc: bytes, idat_start: int | None) -> dict[int, list[tuple[int, int]]]:
    """item id -> its (file offset, length) extents, from an `iloc` payload."""
    version = iloc[0]
    offset_size, length_size = iloc[4] >> 4, iloc[4] & 15
    base_size, index_size = iloc[5] >> 4, (iloc[5] & 15) if version in (1, 2) else 0
    pos = 6
    count_size = 4 if version == 2 else 2
    item_count = _uint(iloc, pos, count_size)
    pos += count_size
    extents: dict[int, list[tuple[int, int]]] = {}
    for _ in range(item_count):
        item_id = _uint(iloc, pos, count_size)
        pos += count_size
        method = 0
        if version in (1, 2):
            method = _uint(iloc, pos, 2) & 15
            pos += 2
        pos += 2  # data_reference_index
        base = _uint(iloc, pos, base_size)
        pos += base_size
        extent_count = _uint(iloc, pos, 2)
        pos += 2
        found = []
        for _ in range(extent_count):
            pos += index_size
            offset, length = _uint(iloc, pos, offset_size), _uint(iloc, pos + offset_size,
                                                                   length_size)
            pos += offset_size + length_size
            if method == 1:
                if idat_start is None:
                    raise ValueError("an item in idat without an idat box")
                offset += idat_start
            elif method != 0:
                raise ValueError("an item built from other items' data")
            found.append((base + offset, length))
        extents[item_id] = found
        if pos > len(iloc):
            raise ValueError("the iloc box is cut short")
    return extents


def _blank(fp: BinaryIO, at: int, length: int, head: bytes = b"", fill: bytes = b"\x00") -> None:
    fp.seek(at)
    head = head[:length]
    fp.write(head)
    rest = length - len(head)
    while rest > 0:
        n = min(rest, _BLOCK)
        fp.write(fill * n)
        rest -= n


def _to_free(fp: BinaryIO, start: int, payload: int, end: int) -> None:
    """A box turned into a `free` box of the same size, its payload zeroed."""
    fp.seek(start + 4)
    fp.write(b"free")
    _blank(fp, payload, end - payload)


def _clean_meta(fp: BinaryIO, payload: int, end: int) -> bool:
    """Blank the non-picture items of a `meta` box; whether there were any."""
    children = {kind: (start, body, stop) for kind, start, body, stop in
                _boxes(fp, payload + 4, end)}  # `meta` is a full box
    if b"iinf" not in children or b"iloc" not in children:
        return False
    _, iinf_body, iinf_end = children[b"iinf"]
    version = _read(fp, iinf_body, 1)[0]
    first = iinf_body + 4 + (2 if version == 0 else 4)
    infes = [_read(fp, body, stop - body) for kind, _, body, stop in
             _boxes(fp, first, iinf_end) if kind == b"infe"]
    _, iloc_body, iloc_end = children[b"iloc"]
    idat = children.get(b"idat")
    extents = _item_extents(_read(fp, iloc_body, iloc_end - iloc_body),
                            idat[1] if idat else None)
    found = False
    for item_id, kind in _item_types(infes).items():
        if kind in _PICTURE_ITEMS:
            continue
        if kind == b"Exif" and not _exif_item_suspect(fp, extents.get(item_id, [])):
            continue  # EXIF without a location is shown to all, as in a JPEG
        for offset, length in extents.get(item_id, []):
            if length == 0:
                raise ValueError("a metadata item without a length")
            found = True
            if kind == b"Exif":
                _blank(fp, offset, length, _EMPTY_EXIF_ITEM)
            else:  # XMP (text) and anything else: spaces keep an XML parser calm
                _blank(fp, offset, length, fill=b" " if kind == b"mime" else b"\x00")
    return found


def _exif_suspect_payload(payload: bytes) -> bool:
    """Whether an Exif item's or box's payload (a 4-byte offset to the TIFF header, then
    the TIFF structure) could hold a location: privacy.py's rule for EXIF."""
    from .privacy import exif_suspect  # privacy.py dispatches here: imported when used

    if payload[:4] in (b"II*\x00", b"MM\x00*"):  # some writers leave the offset out
        return exif_suspect(payload)
    skip = int.from_bytes(payload[:4], "big")
    return len(payload) < 4 + skip or exif_suspect(payload[4 + skip:])


def _exif_item_suspect(fp: BinaryIO, extents: list[tuple[int, int]]) -> bool:
    total = sum(length for _, length in extents)
    if not 0 < total <= _MAX_EXIF:
        return True  # empty, or too large to vouch for: blanked
    return _exif_suspect_payload(b"".join(_read(fp, at, n) for at, n in extents))


def _clean_moov(fp: BinaryIO, payload: int, end: int) -> bool:
    """An image sequence's user data (`udta`, where a location atom lives) and metadata."""
    found = False
    for kind, start, body, stop in list(_boxes(fp, payload, end)):
        if kind in (b"udta", b"meta"):
            _to_free(fp, start, body, stop)
            found = True
        elif kind in _MOOV_CONTAINERS:
            found |= _clean_moov(fp, body, stop)
    return found


def _heif(src: Path, dst: Path) -> bool:
    shutil.copyfile(src, dst)
    found = False
    with dst.open("r+b") as fp:
        end = fp.seek(0, 2)
        for kind, start, body, stop in list(_boxes(fp, 0, end)):
            if kind == b"meta":
                found |= _clean_meta(fp, body, stop)
            elif kind == b"moov":
                found |= _clean_moov(fp, body, stop)
            elif kind not in _TOP_LEVEL_KEPT:
                _to_free(fp, start, body, stop)
                found = True
    return found


# --- JPEG XL ---------------------------------------------------------------------------------

def _jxl(src: Path, dst: Path) -> bool:
    with src.open("rb") as fp:
        if _read(fp, 0, 2) == b"\xff\x0a":
            return False  # a bare codestream: no metadata at all
        end = fp.seek(0, 2)
        boxes = list(_boxes(fp, 0, end))
        if all(kind in _JXL_KEPT or (kind == b"Exif" and stop - body <= _MAX_EXIF
                                     and not _exif_suspect_payload(_read(fp, body, stop - body)))
               for kind, _, body, stop in boxes):
            return False  # nothing but the codestream and EXIF without a location
        with dst.open("wb") as out:
            for kind, start, _, stop in boxes:
                if kind in _JXL_KEPT:
                    fp.seek(start)
                    _copy(fp, out, stop - start)
    return True


def _copy(fp: BinaryIO, out: BinaryIO, length: int) -> None:
    while length > 0:
        block = fp.read(min(length, _BLOCK))
        if not block:
            raise ValueError("a box is cut short")
        out.write(block)
        length -= len(block)


# --- camera RAW (TIFF directories) -----------------------------------------------------------

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
               13: 4, 16: 8, 17: 8, 18: 8}
_GPS_IFD, _XMP, _SUB_IFDS, _EXIF_IFD, _INTEROP_IFD = 34853, 700, 330, 34665, 40965
# IPTC, Photoshop resources (which embed IPTC and XMP), GeoTIFF's tags.
_ZEROED_TAGS = frozenset({33723, 34377, 33550, 33922, 34264, 34735, 34736, 34737})
# An EXIF block's start, or an XMP packet's (xapmeta: what early XMP writers wrote).
_EMBEDDED = re.compile(rb"Exif\x00\x00(?:II\*\x00|MM\x00\*)|<x:x[am]pmeta")
_XMP_END = re.compile(rb"</x:x[am]pmeta>")
_MAX_XMP = 16 << 20


class _Tiff:
    """A TIFF structure inside the copy, at `base` (0 for the file itself)."""

    def __init__(self, fp: BinaryIO, base: int) -> None:
        self.fp, self.base = fp, base
        order = {b"II": "<", b"MM": ">"}.get(_read(fp, base, 2))
        if order is None:
            raise ValueError("not a TIFF structure")
        self.order = order
        self.seen: set[int] = set()
        self.found = False

    def unpack(self, fmt: str, at: int) -> tuple[int, ...]:
        return struct.unpack(self.order + fmt, _read(self.fp, self.base + at,
                                                     struct.calcsize(fmt)))

    def entries(self, ifd: int) -> list[tuple[int, int, int, int, int]]:
        """(tag, type, count, value or offset, where the value field is) of one IFD."""
        (count,) = self.unpack("H", ifd)
        entries = []
        for n in range(count):
            tag, kind, length, value = self.unpack("HHII", ifd + 2 + 12 * n)
            entries.append((tag, kind, length, value, ifd + 2 + 12 * n + 8))
        return entries

    def walk(self, ifd: int) -> None:
        """Clean an IFD chain and the directories it points to."""
        while ifd:
            if ifd in self.seen or len(self.seen) >= _MAX_IFDS:
                raise ValueError("the IFD chain loops or is too long")
            self.seen.add(ifd)
            entries = self.entries(ifd)
            for tag, kind, count, value, _ in entries:
                size = _TYPE_SIZES.get(kind, 1) * count
                if tag == _GPS_IFD:
                    self.empty(value)
                elif tag in (_XMP, *_ZEROED_TAGS) and size > 4:
                    self.found = True
                    _blank(self.fp, self.base + value, size, fill=b" " if tag == _XMP else
                           b"\x00")
                elif tag in (_EXIF_IFD, _INTEROP_IFD):
                    self.walk(value)
                elif tag == _SUB_IFDS:
                    for offset in (self.unpack(f"{count}I", value) if count > 1 else (value,)):
                        self.walk(offset)
            (next_ifd,) = self.unpack("I", ifd + 2 + 12 * len(entries))
            if any(tag == _GPS_IFD for tag, *_ in entries):
                self.drop_entry(ifd, _GPS_IFD, len(entries), next_ifd)
            ifd = next_ifd

    def drop_entry(self, ifd: int, tag: int, count: int, next_ifd: int) -> None:
        """Remove a tag's entry from a directory in place: the entries after it move up,
        the count drops by one, and the 12 bytes freed at the end are zeroed."""
        table = _read(self.fp, self.base + ifd + 2, 12 * count)
        kept = [table[n:n + 12] for n in range(0, len(table), 12)
                if struct.unpack(self.order + "H", table[n:n + 2])[0] != tag]
        self.fp.seek(self.base + ifd)
        self.fp.write(struct.pack(self.order + "H", len(kept)) + b"".join(kept)
                      + struct.pack(self.order + "I", next_ifd)
                      + bytes(12 * (count - len(kept))))

    def empty(self, ifd: int) -> None:
        """A GPS IFD with no entries left, its values zeroed."""
        self.found = True
        entries = self.entries(ifd)
        for _, kind, count, value, _ in entries:
            size = _TYPE_SIZES.get(kind, 1) * count
            if size > 4:
                _blank(self.fp, self.base + value, size)
        _blank(self.fp, self.base + ifd, 2 + 12 * len(entries) + 4)


def _scan(fp: BinaryIO, pattern: re.Pattern[bytes], overlap: int) -> list[int]:
    """Where `pattern` matches in the file, read a block at a time (a match may span two
    blocks when it is at most `overlap` bytes long)."""
    found, pos = [], 0
    while True:
        fp.seek(pos)
        block = fp.read(_BLOCK + overlap)
        last = len(block) <= _BLOCK
        found += [pos + m.start() for m in pattern.finditer(block) if last or m.start() < _BLOCK]
        if last:
            return found
        pos += _BLOCK


def _blank_xmp(fp: BinaryIO, at: int) -> None:
    """An XMP packet starting at `at` turned into spaces, up to its closing tag."""
    pos = at
    while pos - at < _MAX_XMP:
        fp.seek(pos)
        block = fp.read(_BLOCK + len(b"</x:xmpmeta>"))
        if (found := _XMP_END.search(block)) is not None:
            _blank(fp, at, pos + found.end() - at, fill=b" ")
            return
        if len(block) <= _BLOCK:
            break
        pos += _BLOCK
    raise ValueError("an XMP packet without its end")


def _raw(src: Path, dst: Path) -> bool:
    shutil.copyfile(src, dst)
    with dst.open("r+b") as fp:
        tiff = _Tiff(fp, 0)
        tiff.walk(tiff.unpack("I", 4)[0])
        found = tiff.found
        # Blocks elsewhere: a preview JPEG's EXIF, XMP inside a maker's own structures (one
        # pass over the file finds both).
        for at in _scan(fp, _EMBEDDED, 16):
            if _read(fp, at, 1) == b"<":
                _blank_xmp(fp, at)
                found = True
                continue
            embedded = _Tiff(fp, at + len(b"Exif\x00\x00"))
            embedded.walk(embedded.unpack("I", 4)[0])
            found |= embedded.found
    return found


CLEANERS: dict[str, Callable[[Path, Path], bool]] = {
    "HEIF": _heif, "AVIF": _heif, "JXL": _jxl,
    "DNG": _raw, "CR2": _raw, "NEF": _raw, "ARW": _raw,
}
