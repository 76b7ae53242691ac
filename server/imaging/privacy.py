"""Location privacy: a copy of an image without anything that could say where it was taken,
served to everyone but the owner.

Every metadata container of every accepted format is suspect, whatever it is called: EXIF
(its GPS IFD), XMP (exif:GPSLatitude...), IPTC and Photoshop resources, ImageMagick's PNG
"Raw profile type ..." text chunks, comments, an MPO's other frames, bytes after the image.
The rule is an allowlist, so that a container nobody thought of is covered too: a file is
served as uploaded only when all it holds is what display needs (ICC profile, JFIF, Adobe's
colour transform, PNG/WebP/GIF rendering and animation chunks) and EXIF without GPS, XMP,
IPTC or GeoTIFF. Otherwise the copy keeps only those, plus an EXIF block holding the
orientation alone (the one the service reports the size with, wherever it came from). JPEG,
PNG, WebP and GIF are rewritten container by container (pixels untouched). A TIFF file, whose
pages are EXIF-like directories, is judged like EXIF in every page and re-saved upright
without any metadata.

The original is read a block at a time, never whole: a copy's bulk (JPEG scans, PNG image
data, WebP bitstreams, GIF frames) goes from file to file, and only metadata is held.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import BinaryIO, NamedTuple

from PIL import ImageOps

from .decoding import exif_orientation
from .privacy_containers import CLEANERS
from .sniff import open_lazy

GPS_IFD = 0x8825
_ORIENTATION = 0x0112
_EXIF_HEADER = b"Exif\x00\x00"
# TIFF tags through which EXIF (or a TIFF page) can hold a position: GPS IFD, XMP, IPTC,
# Photoshop resources (which embed IPTC and XMP), GeoTIFF, and SubIFDs (not walked here).
_LOCATION_TAGS = frozenset({
    GPS_IFD, 700, 33723, 34377, 33550, 33922, 34264, 34735, 34736, 34737, 330,
})
# An EXIF thumbnail is a JPEG that may carry its own EXIF or XMP.
_EMBEDDED = re.compile(rb"Exif\x00\x00|x[am]pmeta")
# Bounds on a directory walk: a hostile chain can be long or point back at itself.
_MAX_IFDS = 4096
_MAX_ENTRIES = 1 << 18
_BLOCK = 1 << 20  # bytes read from the original at a time


def strip_location(src: Path, dst: Path, fmt: str) -> bool:
    """Write `dst`, a copy of `src` without any metadata that could hold a location; False
    (nothing written) when `src` holds none. Raises ValueError or struct.error on a container
    that cannot be parsed, OSError when a TIFF cannot be re-saved."""
    if fmt in CLEANERS:  # the containers phones and cameras write
        return CLEANERS[fmt](src, dst)
    cleaner = _CLEANERS.get(fmt)
    if cleaner is None:
        return False  # BMP has no metadata container
    with src.open("rb") as file:
        original = _Original(file)
        copy = cleaner(original, lambda: _shown_orientation(src, fmt))
        if copy is None:
            return False
        with dst.open("wb") as out:
            original.write(copy, out)
    return True


def _shown_orientation(src: Path, fmt: str) -> int:
    """The orientation the service shows the original with (EXIF, a PNG raw profile or XMP:
    Pillow's reading), for the copy to keep though those containers are gone."""
    with src.open("rb") as file, open_lazy(file, fmt) as im:
        return exif_orientation(im)


class _Span(NamedTuple):
    """Bytes start:end of the original, copied from its file when the copy is written."""

    start: int
    end: int


Piece = bytes | _Span
Part = tuple[Piece, ...]  # one segment, chunk or block of the copy
Orientation = Callable[[], int]  # computed only when a copy is made
Container = Callable[[bytes], bytes]  # EXIF (TIFF bytes) wrapped as a segment or chunk


class _Original:
    """The uploaded file, read a block at a time: what a slice of it would give, without
    ever holding it whole."""

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self.size = file.seek(0, 2)
        self._block = b""  # the last block read, for the small reads near it
        self._block_at = 0

    def read(self, start: int, end: int) -> bytes:
        """Bytes start:end, clipped to the file as a slice would be."""
        end = min(end, self.size)
        if start >= end:
            return b""
        if end - start > _BLOCK:
            return self._read(start, end - start)
        if not self._block_at <= start <= end <= self._block_at + len(self._block):
            self._block, self._block_at = self._read(start, _BLOCK), start
        return self._block[start - self._block_at:end - self._block_at]

    def byte(self, at: int) -> int:
        return self.read(at, at + 1)[0]

    def span(self, start: int, end: int) -> _Span:
        """Bytes start:end clipped to the file (empty when end <= start)."""
        start = min(start, self.size)
        return _Span(start, max(start, min(end, self.size)))

    def find(self, pattern: re.Pattern[bytes], start: int, longest: int = 2) -> int | None:
        """Where the first match of `pattern` (`longest` bytes at most) at or after `start`
        begins; None when there is none."""
        for at in range(start, self.size, _BLOCK):
            found = pattern.search(self._read(at, _BLOCK + longest - 1))
            if found is not None and found.start() < _BLOCK:  # else cut short: next block
                return at + found.start()
        return None

    def holds(self, piece: Piece, ignored: bytes) -> bool:
        """Whether `piece` holds any byte besides `ignored`."""
        if isinstance(piece, bytes):
            return bool(piece.strip(ignored))
        return any(block.strip(ignored) for block in self._blocks(piece))

    def write(self, parts: list[Part], out: BinaryIO) -> None:
        for part in parts:
            for piece in part:
                if isinstance(piece, bytes):
                    out.write(piece)
                else:
                    for block in self._blocks(piece):
                        out.write(block)

    def _blocks(self, span: _Span) -> Iterator[bytes]:
        for at in range(span.start, span.end, _BLOCK):
            yield self._read(at, min(_BLOCK, span.end - at))

    def _read(self, at: int, n: int) -> bytes:
        self._file.seek(at)
        return self._file.read(n)


def _length(part: Part) -> int:
    return sum(len(piece) if isinstance(piece, bytes) else piece.end - piece.start
               for piece in part)


class _Copy:
    """The parts of the public copy, and whether the original holds anything suspect."""

    def __init__(self, original: _Original, orientation: Orientation) -> None:
        self.parts: list[Part] = []
        self.suspect = False
        self._original = original
        self._orientation = orientation
        self._exif_seen = False
        self._exif_slot: tuple[int, Container] | None = None

    def keep(self, *part: Piece) -> None:
        self.parts.append(part)

    def drop(self, part: Piece) -> None:
        # Padding after the image (zeros some cameras write) says nothing. Once the original
        # is suspect, what else it drops need not be read.
        if not self.suspect:
            self.suspect = self._original.holds(part, b"\x00\xff")

    def exif(self, tiff: bytes, container: Container) -> None:
        """Judge an EXIF block (dropped: the copy's own goes where the first one was). A
        second one is suspect whatever it holds: readers disagree on which one counts."""
        self.suspect |= self._exif_seen or exif_suspect(tiff)
        self._exif_seen = True
        self.exif_here(container)

    def exif_here(self, container: Container) -> None:
        """The copy's EXIF goes here, unless a place was given before."""
        if self._exif_slot is None:
            self._exif_slot = (len(self.parts), container)

    def finish(self) -> list[Part] | None:
        """The copy's parts; None when the original holds nothing suspect."""
        if not self.suspect:
            return None
        if self._exif_slot is not None and (orientation := self._orientation()) != 1:
            at, container = self._exif_slot
            self.parts.insert(at, (container(_orientation_exif(orientation)),))
        return self.parts


# --- EXIF and TIFF directories -------------------------------------------------------------

Reader = Callable[[int, int], bytes]  # bytes start:end of a TIFF structure, as a slice


def _tiff_tags(read: Reader) -> set[int]:
    """The tags of every IFD in the chain of a TIFF structure: all the pages of a TIFF file;
    IFD0 and the thumbnail's IFD1 in EXIF. Raises ValueError or struct.error on a broken one."""
    order = {b"II": "<", b"MM": ">"}.get(read(0, 2))
    if order is None or struct.unpack_from(order + "H", read(2, 4))[0] != 42:
        raise ValueError("not a TIFF structure")
    (offset,) = struct.unpack_from(order + "I", read(4, 8))
    tags: set[int] = set()
    seen: set[int] = set()
    entries = 0
    while offset:
        if offset in seen or len(seen) >= _MAX_IFDS or entries > _MAX_ENTRIES:
            raise ValueError("the IFD chain loops or is too long")
        seen.add(offset)
        (count,) = struct.unpack_from(order + "H", read(offset, offset + 2))
        table = read(offset + 2, offset + 2 + 12 * count)  # 12-byte entries, the tag first
        tags.update(tag for (tag,) in struct.iter_unpack(order + "H10x", table))
        entries += count
        end = offset + 2 + 12 * count
        (offset,) = struct.unpack_from(order + "I", read(end, end + 4))
    return tags


def exif_suspect(tiff: bytes) -> bool:
    """Whether an EXIF block (TIFF bytes) could hold a location."""
    tiff = tiff.removeprefix(_EXIF_HEADER)  # some writers repeat JPEG's header in PNG/WebP
    return _tags_suspect(lambda start, end: tiff[start:end]) or _EMBEDDED.search(tiff) is not None


def _tags_suspect(read: Reader) -> bool:
    """Whether the tags of a TIFF structure could hold a location (or cannot be read)."""
    try:
        tags = _tiff_tags(read)
    except (ValueError, struct.error):
        return True  # unreadable: nothing to vouch for
    return bool(tags & _LOCATION_TAGS)


def _orientation_exif(orientation: int) -> bytes:
    """A (big-endian) TIFF structure holding the orientation tag alone."""
    return b"MM\x00\x2a" + struct.pack(">IHHHIHHI", 8, 1, _ORIENTATION, 3, 1, orientation, 0, 0)


# --- JPEG ----------------------------------------------------------------------------------

# Pseudo markers for the bytes between segments.
_SCAN, _JUNK, _TAIL = 0x100, 0x101, 0x102
# SOFn, DHT, DAC, RSTn, SOI, EOI, SOS, DQT, DNL, DRI, DHP, EXP (not JPG, 0xC8).
_JPEG_CODING = frozenset(range(0xC0, 0xE0)) - {0xC8}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
# Application segments display needs: JFIF (density), ICC profile, Adobe's colour transform.
_JPEG_DISPLAY = ((0xE0, b"JFIF\x00"), (0xE2, b"ICC_PROFILE\x00"), (0xEE, b"Adobe"))
_MARKER = re.compile(rb"\xff[^\x00\xff]")  # the last of a marker's fill bytes, its code
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # in scan data: not stuffing, not RSTn


def _jpeg(original: _Original, orientation: Orientation) -> list[Part] | None:
    # An MPO's other frames (previews, depth or gain maps, each with its own EXIF and XMP)
    # follow the first image's EOI, indexed by the APP2 MPF segment. The copy keeps the first
    # image only: it is what viewers show, and keeping the others would mean cleaning each
    # one and rewriting the MPF offsets for pictures nobody but the owner needs.
    copy = _Copy(original, orientation)
    for marker, start, end in _jpeg_parts(original):
        if marker not in (0xD8, 0xE0):  # EXIF follows SOI and JFIF, where readers look
            copy.exif_here(_jpeg_exif)
        if marker == _SCAN:  # the bulk of the file: copied, never read here
            copy.keep(_Span(start, end))
        elif marker in (_JUNK, _TAIL):  # other frames, trailers...
            copy.drop(_Span(start, end))
        else:
            _jpeg_segment(copy, marker, original.read(start, end))  # 64 KiB at most
    return copy.finish()


def _jpeg_segment(copy: _Copy, marker: int, part: bytes) -> None:
    if marker == 0xE1 and part[4:10] == _EXIF_HEADER:
        copy.exif(part[10:], _jpeg_exif)
    elif marker in _JPEG_CODING or any(
        marker == app and part[4:].startswith(name) for app, name in _JPEG_DISPLAY
    ):
        copy.keep(part)
    else:  # XMP, Extended XMP, IPTC, MPF, comments...
        copy.drop(part)


def _jpeg_parts(original: _Original) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of every segment and scan of the first image, in order, then
    whatever follows its EOI as _TAIL. What decoders skip to reach a marker is _JUNK when it
    holds more than fill bytes."""
    if original.read(0, 2) != b"\xff\xd8":
        raise ValueError("not a JPEG")
    yield 0xD8, 0, 2
    pos = 2
    while pos < original.size:
        start = original.find(_MARKER, pos)
        if start is None:
            yield _JUNK, pos, original.size
            return
        if original.holds(_Span(pos, start), b"\xff"):  # decoders skip what is not a marker
            yield _JUNK, pos, start
        marker = original.byte(start + 1)
        pos = _segment_end(original, marker, start)
        yield marker, start, pos
        if marker == 0xD9:
            yield _TAIL, pos, original.size
            return
        if marker == 0xDA:  # the entropy-coded data runs to the next real marker
            scan_end = original.find(_SCAN_END, pos)
            end = original.size if scan_end is None else scan_end
            yield _SCAN, pos, end
            pos = end


def _segment_end(original: _Original, marker: int, start: int) -> int:
    if marker in _JPEG_STANDALONE:
        return start + 2
    length: int = struct.unpack_from(">H", original.read(start + 2, start + 4))[0]
    if length < 2 or start + 2 + length > original.size:
        raise ValueError("truncated JPEG segment")
    return start + 2 + length


def _jpeg_exif(tiff: bytes) -> bytes:
    return b"\xff\xe1" + struct.pack(">H", len(tiff) + 8) + _EXIF_HEADER + tiff


# --- PNG -----------------------------------------------------------------------------------

# Chunks that decode or render the image, APNG frames included (and tIME, a date). Everything
# else goes: tEXt/zTXt/iTXt (comments, XMP, ImageMagick's raw exif/xmp/iptc/APP1 profiles),
# eXIf (rewritten), sPLT (named), private chunks.
_PNG_DISPLAY = frozenset({
    b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"cHRM", b"gAMA", b"iCCP", b"sBIT", b"sRGB",
    b"cICP", b"mDCV", b"cLLI", b"bKGD", b"hIST", b"pHYs", b"tIME", b"acTL", b"fcTL", b"fdAT",
})


def _png(original: _Original, orientation: Orientation) -> list[Part] | None:
    copy = _Copy(original, orientation)
    copy.keep(original.span(0, 8))
    for kind, start, end in _png_chunks(original):
        if kind == b"eXIf":
            copy.exif(original.read(start + 8, end - 4), _png_exif)
        elif kind in _PNG_DISPLAY:
            copy.keep(_Span(start, end))
            if kind == b"IHDR":  # EXIF right after it: before the pixels, as readers want
                copy.exif_here(_png_exif)
        else:
            copy.drop(_Span(start, end))
    return copy.finish()


def _png_chunks(original: _Original) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk up to IEND; then what follows it, or what does not
    parse as a chunk, with type b""."""
    pos = 8
    while pos + 12 <= original.size:
        length, kind = struct.unpack(">I4s", original.read(pos, pos + 8))
        if pos + 12 + length > original.size:
            break
        yield kind, pos, pos + 12 + length
        pos += 12 + length
        if kind == b"IEND":
            break
    yield b"", pos, max(pos, original.size)


def _png_exif(tiff: bytes) -> bytes:
    crc = zlib.crc32(b"eXIf" + tiff) & 0xFFFFFFFF
    return struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", crc)


# --- WebP ----------------------------------------------------------------------------------

# Chunks that decode or render the image; EXIF is rewritten, XMP and unknown chunks go.
_WEBP_DISPLAY = frozenset({b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM"})
_WEBP_FRAME = frozenset({b"VP8 ", b"VP8L", b"ALPH"})  # what an ANMF frame needs
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _webp(original: _Original, orientation: Orientation) -> list[Part] | None:
    head = original.read(0, 12)
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    end = min(original.size, 8 + struct.unpack_from("<I", head, 4)[0])
    copy = _Copy(original, orientation)
    for kind, start, stop in _riff_chunks(original, 12, end):
        if kind == b"EXIF":
            copy.exif(original.read(start + 8, stop), _webp_exif)
        elif kind == b"ANMF":
            copy.keep(*_riff_chunk(kind, _anmf(original, start + 8, stop, copy)))
        elif kind in _WEBP_DISPLAY:  # its header (and VP8X's flags) read, the rest copied
            copy.keep(original.read(start, min(start + 9, stop)),
                      original.span(start + 9, stop), _riff_padding(stop - start))
        else:
            copy.drop(_Span(start, stop))
    copy.drop(original.span(end, original.size))
    copy.exif_here(_webp_exif)  # EXIF follows the image data
    parts = copy.finish()
    if parts is None:
        return None
    chunks = _webp_flags(parts)
    riff_size = struct.pack("<I", 4 + sum(map(_length, chunks)))
    return [(b"RIFF" + riff_size + b"WEBP",), *chunks]


def _anmf(original: _Original, start: int, stop: int, copy: _Copy) -> list[Piece]:
    """An animation frame's body with its image chunks only (16 bytes of geometry first)."""
    frame: list[Piece] = [original.read(start, min(start + 16, stop))]
    for kind, begin, end in _riff_chunks(original, start + 16, stop):
        if kind in _WEBP_FRAME:
            frame += [_Span(begin, end), _riff_padding(end - begin)]
        else:
            copy.drop(original.span(begin, end))
    return frame


def _webp_flags(chunks: list[Part]) -> list[Part]:
    """The VP8X flags told the truth about EXIF and XMP; EXIF needs VP8X (the extended
    format), so a simple file loses it."""
    has_exif = any(_fourcc(chunk) == b"EXIF" for chunk in chunks)
    head = chunks[0][0] if chunks else b""  # VP8X's header and flags byte, read
    if not isinstance(head, bytes) or head[:4] != b"VP8X":
        return [chunk for chunk in chunks if _fourcc(chunk) != b"EXIF"]
    vp8x = bytearray(head)
    if len(vp8x) < 9:
        raise ValueError("empty VP8X chunk")
    vp8x[8] = vp8x[8] & ~(_VP8X_EXIF | _VP8X_XMP) | (_VP8X_EXIF if has_exif else 0)
    return [(bytes(vp8x), *chunks[0][1:]), *chunks[1:]]


def _fourcc(chunk: Part) -> bytes:
    """The type of a chunk of the copy (each starts with its header, read)."""
    head = chunk[0]
    return head[:4] if isinstance(head, bytes) else b""


def _riff_chunks(original: _Original, pos: int,
                 end: int) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, start, end of the body) of each chunk in bytes pos:end; then what does not
    parse as a chunk, with fourcc b""."""
    while pos + 8 <= end:
        kind, size = struct.unpack("<4sI", original.read(pos, pos + 8))
        if pos + 8 + size > end:
            break
        yield kind, pos, pos + 8 + size
        pos = min(end, pos + 8 + size + (size & 1))
    yield b"", pos, end


def _webp_exif(tiff: bytes) -> bytes:
    return b"EXIF" + struct.pack("<I", len(tiff)) + tiff + _riff_padding(len(tiff))


def _riff_chunk(kind: bytes, body: list[Piece]) -> Part:
    size = _length(tuple(body))
    return (kind + struct.pack("<I", size), *body, _riff_padding(size))


def _riff_padding(size: int) -> bytes:
    return b"\x00" * (size & 1)


# --- GIF -----------------------------------------------------------------------------------

# Application extensions display needs: looping (Netscape, AnimExts) and the ICC profile.
# Others ("XMP DataXMP", ImageMagick's 8BIM and IPTC profiles) and comments go.
_GIF_DISPLAY_APPS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"})
_GIF_BLOCK = re.compile(rb"[\x21\x2c\x3b]")  # extension, image, trailer


def _gif(original: _Original, orientation: Orientation) -> list[Part] | None:
    if original.size < 13:
        raise ValueError("truncated GIF header")
    pos = 13 + _colour_table(original.byte(10))
    copy = _Copy(original, orientation)  # GIF has no EXIF: nothing to orient
    copy.keep(original.span(0, pos))
    while pos < original.size and original.byte(pos) != 0x3B:  # up to the trailer
        end = _gif_block_end(original, pos)
        if _gif_displays(original.read(pos, min(end, pos + 14))):  # what tells is up front
            copy.keep(_Span(pos, end))
        else:
            copy.drop(_Span(pos, end))
        pos = end
    copy.keep(original.span(pos, pos + 1))
    copy.drop(original.span(pos + 1, original.size))
    return copy.finish()


def _colour_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_block_end(original: _Original, pos: int) -> int:
    if original.byte(pos) == 0x2C:  # image: descriptor, local colour table, LZW code size,
        if pos + 10 > original.size:  # sub-blocks
            raise ValueError("truncated GIF image descriptor")
        return _sub_blocks_end(original, pos + 10 + _colour_table(original.byte(pos + 9)) + 1)
    if original.byte(pos) == 0x21:  # extension: label, sub-blocks
        return _sub_blocks_end(original, pos + 2)
    stray = original.find(_GIF_BLOCK, pos + 1, longest=1)  # stray bytes: decoders skip them
    return original.size if stray is None else stray


def _sub_blocks_end(original: _Original, pos: int) -> int:
    while True:
        if pos >= original.size:
            raise ValueError("truncated GIF data")
        size = original.byte(pos)
        pos += 1 + size
        if size == 0:
            return pos


def _gif_displays(block: bytes) -> bool:
    if block[0] == 0x2C:
        return True
    if block[0] != 0x21 or len(block) < 2:
        return False
    label = block[1]
    # graphic control (timing, transparency), plain text (rendered), display applications
    return label in (0xF9, 0x01) or (label == 0xFF and block[3:14] in _GIF_DISPLAY_APPS)


# --- TIFF ----------------------------------------------------------------------------------

def _tiff(original: _Original, orientation: Orientation) -> list[Part] | None:
    # A TIFF file is judged like EXIF (its pages are the IFD chain): GPS, XMP, IPTC,
    # GeoTIFF... in any page, or a directory chain that does not parse, make a copy. Judged
    # from the directories and a search of the file, read a block at a time.
    at = len(_EXIF_HEADER) if original.read(0, len(_EXIF_HEADER)) == _EXIF_HEADER else 0
    if not (_tags_suspect(lambda start, end: original.read(at + start, at + end))
            or original.find(_EMBEDDED, at, longest=7) is not None):
        return None
    return [(_resave_tiff(original.read(0, original.size)),)]  # decodes a page all the same


def _resave_tiff(data: bytes) -> bytes:
    # TIFF keeps its metadata in the image's own directories: re-save (losslessly, upright so
    # that no orientation tag is needed) the first page, the one the service shows, with its
    # ICC profile and resolution only. Decoding every page could be a bomb.
    with open_lazy(BytesIO(data), "TIFF") as im:
        page = ImageOps.exif_transpose(im)
        icc, dpi = im.info.get("icc_profile"), im.info.get("dpi")
    page.info = {}
    out = BytesIO()
    extra = {key: value for key, value in (("icc_profile", icc), ("dpi", dpi)) if value}
    page.save(out, "TIFF", compression="tiff_lzw", **extra)
    return out.getvalue()


_CLEANERS: dict[str, Callable[[_Original, Orientation], list[Part] | None]] = {
    "JPEG": _jpeg, "PNG": _png, "WEBP": _webp, "GIF": _gif, "TIFF": _tiff,
}
