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
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path

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


def strip_location(src: Path, dst: Path, fmt: str) -> bool:
    """Write `dst`, a copy of `src` without any metadata that could hold a location; False
    (nothing written) when `src` holds none. Raises ValueError or struct.error on a container
    that cannot be parsed, OSError when a TIFF cannot be re-saved."""
    if fmt in CLEANERS:  # the containers phones and cameras write
        return CLEANERS[fmt](src, dst)
    cleaner = _CLEANERS.get(fmt)
    if cleaner is None:
        return False  # BMP has no metadata container
    data = src.read_bytes()
    copy = cleaner(data, lambda: _shown_orientation(data, fmt))
    if copy is None:
        return False
    dst.write_bytes(copy)
    return True


def _shown_orientation(data: bytes, fmt: str) -> int:
    """The orientation the service shows the original with (EXIF, a PNG raw profile or XMP:
    Pillow's reading), for the copy to keep though those containers are gone."""
    with open_lazy(BytesIO(data), fmt) as im:
        return exif_orientation(im)


Orientation = Callable[[], int]  # computed only when a copy is made
Container = Callable[[bytes], bytes]  # EXIF (TIFF bytes) wrapped as a segment or chunk


class _Copy:
    """The parts of the public copy, and whether the original holds anything suspect."""

    def __init__(self, orientation: Orientation) -> None:
        self.parts: list[bytes] = []
        self.suspect = False
        self._orientation = orientation
        self._exif_seen = False
        self._exif_slot: tuple[int, Container] | None = None

    def keep(self, part: bytes) -> None:
        self.parts.append(part)

    def drop(self, part: bytes) -> None:
        # Padding after the image (zeros some cameras write) says nothing.
        self.suspect |= bool(part.strip(b"\x00\xff"))

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

    def finish(self) -> list[bytes] | None:
        """The copy's parts; None when the original holds nothing suspect."""
        if not self.suspect:
            return None
        if self._exif_slot is not None and (orientation := self._orientation()) != 1:
            at, container = self._exif_slot
            self.parts.insert(at, container(_orientation_exif(orientation)))
        return self.parts

    def result(self) -> bytes | None:
        parts = self.finish()
        return None if parts is None else b"".join(parts)


# --- EXIF and TIFF directories -------------------------------------------------------------

def _tiff_tags(tiff: bytes) -> set[int]:
    """The tags of every IFD in the chain of a TIFF structure: all the pages of a TIFF file;
    IFD0 and the thumbnail's IFD1 in EXIF. Raises ValueError or struct.error on a broken one."""
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or struct.unpack_from(order + "H", tiff, 2)[0] != 42:
        raise ValueError("not a TIFF structure")
    (offset,) = struct.unpack_from(order + "I", tiff, 4)
    tags: set[int] = set()
    seen: set[int] = set()
    entries = 0
    while offset:
        if offset in seen or len(seen) >= _MAX_IFDS or entries > _MAX_ENTRIES:
            raise ValueError("the IFD chain loops or is too long")
        seen.add(offset)
        (count,) = struct.unpack_from(order + "H", tiff, offset)
        table = tiff[offset + 2:offset + 2 + 12 * count]  # 12-byte entries, the tag first
        tags.update(tag for (tag,) in struct.iter_unpack(order + "H10x", table))
        entries += count
        (offset,) = struct.unpack_from(order + "I", tiff, offset + 2 + 12 * count)
    return tags


def exif_suspect(tiff: bytes) -> bool:
    """Whether an EXIF block (TIFF bytes) could hold a location."""
    tiff = tiff.removeprefix(_EXIF_HEADER)  # some writers repeat JPEG's header in PNG/WebP
    try:
        tags = _tiff_tags(tiff)
    except (ValueError, struct.error):
        return True  # unreadable: nothing to vouch for
    return bool(tags & _LOCATION_TAGS) or _EMBEDDED.search(tiff) is not None


def _orientation_exif(orientation: int) -> bytes:
    """A (big-endian) TIFF structure holding the orientation tag alone."""
    return b"MM\x00\x2a" + struct.pack(">IHHHIHHI", 8, 1, _ORIENTATION, 3, 1, orientation, 0, 0)


# --- JPEG ----------------------------------------------------------------------------------

# Pseudo markers for the bytes between segments.
_SCAN, _JUNK, _TAIL = 0x100, 0x101, 0x102
# SOFn, DHT, DAC, RSTn, SOI, EOI, SOS, DQT, DNL, DRI, DHP, EXP (not JPG, 0xC8), scan data.
_JPEG_CODING = frozenset(range(0xC0, 0xE0)) - {0xC8} | {_SCAN}
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
# Application segments display needs: JFIF (density), ICC profile, Adobe's colour transform.
_JPEG_DISPLAY = ((0xE0, b"JFIF\x00"), (0xE2, b"ICC_PROFILE\x00"), (0xEE, b"Adobe"))
_MARKER = re.compile(rb"\xff+([^\x00\xff])")  # fill bytes, then a marker
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")  # in scan data: not stuffing, not RSTn


def _jpeg(data: bytes, orientation: Orientation) -> bytes | None:
    # An MPO's other frames (previews, depth or gain maps, each with its own EXIF and XMP)
    # follow the first image's EOI, indexed by the APP2 MPF segment. The copy keeps the first
    # image only: it is what viewers show, and keeping the others would mean cleaning each
    # one and rewriting the MPF offsets for pictures nobody but the owner needs.
    copy = _Copy(orientation)
    for marker, start, end in _jpeg_parts(data):
        part = data[start:end]
        if marker not in (0xD8, 0xE0):  # EXIF follows SOI and JFIF, where readers look
            copy.exif_here(_jpeg_exif)
        if marker == 0xE1 and part[4:10] == _EXIF_HEADER:
            copy.exif(part[10:], _jpeg_exif)
        elif marker in _JPEG_CODING or any(
            marker == app and part[4:].startswith(name) for app, name in _JPEG_DISPLAY
        ):
            copy.keep(part)
        else:  # XMP, Extended XMP, IPTC, MPF, comments, other frames, trailers...
            copy.drop(part)
    return copy.result()


def _jpeg_parts(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of every segment and scan of the first image, in order, then
    whatever follows its EOI as _TAIL."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG")
    yield 0xD8, 0, 2
    pos = 2
    while pos < len(data):
        found = _MARKER.search(data, pos)
        if found is None:
            yield _JUNK, pos, len(data)
            return
        if found.start() > pos:  # decoders skip what is not a marker
            yield _JUNK, pos, found.start()
        marker, start = found.group(1)[0], found.end() - 2
        pos = _segment_end(data, marker, start)
        yield marker, start, pos
        if marker == 0xD9:
            yield _TAIL, pos, len(data)
            return
        if marker == 0xDA:  # the entropy-coded data runs to the next real marker
            scan_end = _SCAN_END.search(data, pos)
            yield _SCAN, pos, scan_end.start() if scan_end else len(data)
            pos = scan_end.start() if scan_end else len(data)


def _segment_end(data: bytes, marker: int, start: int) -> int:
    if marker in _JPEG_STANDALONE:
        return start + 2
    length: int = struct.unpack_from(">H", data, start + 2)[0]
    if length < 2 or start + 2 + length > len(data):
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


def _png(data: bytes, orientation: Orientation) -> bytes | None:
    copy = _Copy(orientation)
    copy.keep(data[:8])
    for kind, start, end in _png_chunks(data):
        if kind == b"eXIf":
            copy.exif(data[start + 8:end - 4], _png_exif)
        elif kind in _PNG_DISPLAY:
            copy.keep(data[start:end])
            if kind == b"IHDR":  # EXIF right after it: before the pixels, as readers want
                copy.exif_here(_png_exif)
        else:
            copy.drop(data[start:end])
    return copy.result()


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(type, start, end) of each chunk up to IEND; then what follows it, or what does not
    parse as a chunk, with type b""."""
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        if pos + 12 + length > len(data):
            break
        yield kind, pos, pos + 12 + length
        pos += 12 + length
        if kind == b"IEND":
            break
    yield b"", pos, len(data)


def _png_exif(tiff: bytes) -> bytes:
    crc = zlib.crc32(b"eXIf" + tiff) & 0xFFFFFFFF
    return struct.pack(">I", len(tiff)) + b"eXIf" + tiff + struct.pack(">I", crc)


# --- WebP ----------------------------------------------------------------------------------

# Chunks that decode or render the image; EXIF is rewritten, XMP and unknown chunks go.
_WEBP_DISPLAY = frozenset({b"VP8X", b"VP8 ", b"VP8L", b"ALPH", b"ICCP", b"ANIM"})
_WEBP_FRAME = frozenset({b"VP8 ", b"VP8L", b"ALPH"})  # what an ANMF frame needs
_VP8X_EXIF, _VP8X_XMP = 0x08, 0x04


def _webp(data: bytes, orientation: Orientation) -> bytes | None:
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WebP")
    end = min(len(data), 8 + struct.unpack_from("<I", data, 4)[0])
    copy = _Copy(orientation)
    for kind, start, stop in _riff_chunks(data, 12, end):
        body = data[start + 8:stop]
        if kind == b"EXIF":
            copy.exif(body, _webp_exif)
        elif kind == b"ANMF":
            copy.keep(_riff_chunk(kind, _anmf(body, copy)))
        elif kind in _WEBP_DISPLAY:
            copy.keep(_riff_chunk(kind, body))
        else:
            copy.drop(data[start:stop])
    copy.drop(data[end:])
    copy.exif_here(_webp_exif)  # EXIF follows the image data
    parts = copy.finish()
    if parts is None:
        return None
    payload = b"WEBP" + b"".join(_webp_flags(parts))
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def _anmf(body: bytes, copy: _Copy) -> bytes:
    """An animation frame with its image chunks only (16 bytes of geometry first)."""
    frame = [body[:16]]
    for kind, start, stop in _riff_chunks(body, 16, len(body)):
        if kind in _WEBP_FRAME:
            frame.append(_riff_chunk(kind, body[start + 8:stop]))
        else:
            copy.drop(body[start:stop])
    return b"".join(frame)


def _webp_flags(chunks: list[bytes]) -> list[bytes]:
    """The VP8X flags told the truth about EXIF and XMP; EXIF needs VP8X (the extended
    format), so a simple file loses it."""
    has_exif = any(chunk.startswith(b"EXIF") for chunk in chunks)
    if not chunks or not chunks[0].startswith(b"VP8X"):
        return [chunk for chunk in chunks if not chunk.startswith(b"EXIF")]
    vp8x = bytearray(chunks[0])
    if len(vp8x) < 9:
        raise ValueError("empty VP8X chunk")
    vp8x[8] = vp8x[8] & ~(_VP8X_EXIF | _VP8X_XMP) | (_VP8X_EXIF if has_exif else 0)
    return [bytes(vp8x), *chunks[1:]]


def _riff_chunks(data: bytes, pos: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(fourcc, start, end of the body) of each chunk in data[pos:end]; then what does not
    parse as a chunk, with fourcc b""."""
    while pos + 8 <= end:
        kind, size = struct.unpack_from("<4sI", data, pos)
        if pos + 8 + size > end:
            break
        yield kind, pos, pos + 8 + size
        pos = min(end, pos + 8 + size + (size & 1))
    yield b"", pos, end


def _webp_exif(tiff: bytes) -> bytes:
    return _riff_chunk(b"EXIF", tiff)


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)


# --- GIF -----------------------------------------------------------------------------------

# Application extensions display needs: looping (Netscape, AnimExts) and the ICC profile.
# Others ("XMP DataXMP", ImageMagick's 8BIM and IPTC profiles) and comments go.
_GIF_DISPLAY_APPS = frozenset({b"NETSCAPE2.0", b"ANIMEXTS1.0", b"ICCRGBG1012"})
_GIF_BLOCK = re.compile(rb"[\x21\x2c\x3b]")  # extension, image, trailer


def _gif(data: bytes, orientation: Orientation) -> bytes | None:
    if len(data) < 13:
        raise ValueError("truncated GIF header")
    pos = 13 + _colour_table(data[10])
    copy = _Copy(orientation)  # GIF has no EXIF: nothing to orient
    copy.keep(data[:pos])
    while pos < len(data) and data[pos] != 0x3B:  # up to the trailer
        end = _gif_block_end(data, pos)
        block = data[pos:end]
        if _gif_displays(block):
            copy.keep(block)
        else:
            copy.drop(block)
        pos = end
    copy.keep(data[pos:pos + 1])
    copy.drop(data[pos + 1:])
    return copy.result()


def _colour_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_block_end(data: bytes, pos: int) -> int:
    if data[pos] == 0x2C:  # image: descriptor, local colour table, LZW code size, sub-blocks
        if pos + 10 > len(data):
            raise ValueError("truncated GIF image descriptor")
        return _sub_blocks_end(data, pos + 10 + _colour_table(data[pos + 9]) + 1)
    if data[pos] == 0x21:  # extension: label, sub-blocks
        return _sub_blocks_end(data, pos + 2)
    stray = _GIF_BLOCK.search(data, pos + 1)  # stray bytes: decoders skip them
    return stray.start() if stray else len(data)


def _sub_blocks_end(data: bytes, pos: int) -> int:
    while True:
        if pos >= len(data):
            raise ValueError("truncated GIF data")
        size = data[pos]
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

def _tiff(data: bytes, orientation: Orientation) -> bytes | None:
    # A TIFF file is judged like EXIF (its pages are the IFD chain): GPS, XMP, IPTC,
    # GeoTIFF... in any page, or a directory chain that does not parse, make a copy.
    return _resave_tiff(data) if exif_suspect(data) else None


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


_CLEANERS: dict[str, Callable[[bytes, Orientation], bytes | None]] = {
    "JPEG": _jpeg, "PNG": _png, "WEBP": _webp, "GIF": _gif, "TIFF": _tiff,
}
