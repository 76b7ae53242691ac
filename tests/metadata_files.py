"""Images carrying a GPS position in every container real tools use, and `find_location`,
which looks for a position in all of them without the code under test.

The containers are written byte for byte the way the tools write them: ImageMagick's PNG
"Raw profile type ..." text chunks, Adobe's XMP packets (JPEG APP1, Extended XMP, PNG iTXt,
GIF "XMP DataXMP" application extension, WebP "XMP " chunk), Pillow's MPO and multi-page TIFF.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from collections.abc import Callable, Iterator

import numpy as np
from PIL import Image, ImageOps, ImageSequence

from tests.images import picture

GPS_IFD = 0x8825
ORIENTATION = 0x0112
GPS = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}
SIZE = (120, 80)

_XMP_NS = b"http://ns.adobe.com/xap/1.0/\x00"
_EXT_XMP_NS = b"http://ns.adobe.com/xmp/extension/\x00"


# --- EXIF and XMP --------------------------------------------------------------------------


def gps_exif(orientation: int | None = 6) -> bytes:
    """EXIF with a GPS IFD (and an orientation), as Pillow writes it: b"Exif\\0\\0" + TIFF."""
    exif = Image.Exif()
    if orientation is not None:
        exif[ORIENTATION] = orientation
    exif[GPS_IFD] = GPS
    data = exif.tobytes()
    assert data.startswith(b"Exif\x00\x00")
    return data


def xmp_packet(form: str = "attributes", extended_guid: str | None = None) -> bytes:
    """An XMP packet with the position as exif:GPS* attributes, elements, or (form "none")
    none; with ``extended_guid`` it points at Extended XMP (xmpNote:HasExtendedXMP)."""
    gps = {
        "attributes": ' exif:GPSLatitude="51,30.2083N" exif:GPSLongitude="0,7.65W"',
        "elements": "",
        "none": "",
    }[form]
    note = f' xmpNote:HasExtendedXMP="{extended_guid}"' if extended_guid else ""
    body = (
        "<exif:GPSLatitude>51,30.2083N</exif:GPSLatitude>"
        "<exif:GPSLongitude>0,7.65W</exif:GPSLongitude>"
        if form == "elements" else ""
    )
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        ' xmlns:xmpNote="http://ns.adobe.com/xmp/note/"'
        f' xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:CreatorTool="test"{gps}{note}>'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode()


# --- PNG -----------------------------------------------------------------------------------


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_text(kind: bytes, keyword: str, text: str) -> bytes:
    """A tEXt, zTXt or (compressed) iTXt chunk, as libpng writes them."""
    key = keyword.encode("latin-1") + b"\x00"
    if kind == b"tEXt":
        return png_chunk(kind, key + text.encode("latin-1"))
    if kind == b"zTXt":
        return png_chunk(kind, key + b"\x00" + zlib.compress(text.encode("latin-1")))
    # iTXt: compression flag and method, empty language tag and translated keyword
    return png_chunk(kind, key + b"\x01\x00\x00\x00" + zlib.compress(text.encode()))


def raw_profile(name: str, payload: bytes) -> str:
    """ImageMagick's "Raw profile type <name>" text (png.c Magick_png_write_raw_profile):
    newline, name, newline, the length in 8 columns, then the hex, 72 digits a line."""
    lines = "".join("\n" + payload[i:i + 36].hex() for i in range(0, len(payload), 36))
    return f"\n{name}\n{len(payload):8d}{lines}\n"


def with_png_chunks(png: bytes, chunks: list[bytes], *, at_end: bool = False) -> bytes:
    """``png`` with ``chunks`` after IHDR (or, ``at_end``, just before IEND)."""
    if at_end:
        return png[:-12] + b"".join(chunks) + png[-12:]
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def plain(fmt: str, seed: int = 3, **save: object) -> bytes:
    out = io.BytesIO()
    picture(SIZE, seed=seed).save(out, fmt, **save)
    return out.getvalue()


def png_raw_profile(kind: bytes, name: str, payload: bytes) -> bytes:
    return with_png_chunks(plain("PNG"), [png_text(kind, f"Raw profile type {name}",
                                                   raw_profile(name, payload))])


def apng_with_location() -> bytes:
    """An animated PNG with GPS in eXIf and a raw EXIF profile after the last frame."""
    frames = [picture(SIZE, seed=s) for s in (3, 4, 5)]
    out = io.BytesIO()
    frames[0].save(out, "PNG", save_all=True, append_images=frames[1:], duration=100,
                   exif=gps_exif())
    tail = png_text(b"zTXt", "Raw profile type exif", raw_profile("exif", gps_exif(None)))
    return with_png_chunks(out.getvalue(), [tail], at_end=True)


# --- JPEG ----------------------------------------------------------------------------------


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def with_jpeg_segments(jpeg: bytes, segments: list[bytes]) -> bytes:
    """``jpeg`` with ``segments`` after its APP0 JFIF segment (where Adobe writes XMP)."""
    app0_end = 4 + struct.unpack(">H", jpeg[4:6])[0]
    assert jpeg[2:4] == b"\xff\xe0"
    return jpeg[:app0_end] + b"".join(segments) + jpeg[app0_end:]


def jpeg_xmp(form: str) -> bytes:
    return with_jpeg_segments(plain("JPEG", quality=90),
                              [jpeg_segment(0xE1, _XMP_NS + xmp_packet(form))])


def jpeg_extended_xmp() -> bytes:
    """Extended XMP (XMP spec part 3, 1.1.3.1): the main packet names the MD5 of the
    extension, which follows in APP1 chunks of at most 65400 bytes with offsets."""
    padding = "".join(f"<rdf:li>step {i}</rdf:li>" for i in range(4000))
    extension = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF'
        ' xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
        ' xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/">'
        f"<photoshop:History><rdf:Seq>{padding}</rdf:Seq></photoshop:History>"
        "<exif:GPSLatitude>51,30.2083N</exif:GPSLatitude>"
        "<exif:GPSLongitude>0,7.65W</exif:GPSLongitude>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    guid = hashlib.md5(extension).hexdigest().upper()
    segments = [jpeg_segment(0xE1, _XMP_NS + xmp_packet("none", guid))]
    for offset in range(0, len(extension), 65400):
        header = _EXT_XMP_NS + guid.encode() + struct.pack(">II", len(extension), offset)
        segments.append(jpeg_segment(0xE1, header + extension[offset:offset + 65400]))
    assert len(segments) > 2
    return with_jpeg_segments(plain("JPEG", quality=90), segments)


def mpo_with_location() -> bytes:
    """A two-frame MPO (Pillow's writer) whose second frame alone carries GPS EXIF."""
    first, second = picture(SIZE, seed=3), picture(SIZE, seed=4)
    second.encoderinfo = {"exif": gps_exif(None)}
    upright = Image.Exif()
    upright[ORIENTATION] = 6
    out = io.BytesIO()
    first.save(out, "MPO", save_all=True, append_images=[second], exif=upright.tobytes())
    return out.getvalue()


def progressive_jpeg_with_gps() -> bytes:
    """Progressive: several scans, with Huffman tables between them."""
    return plain("JPEG", progressive=True, exif=gps_exif(), quality=85)


# --- WebP, GIF, TIFF -----------------------------------------------------------------------


def webp_xmp(form: str) -> bytes:
    return plain("WEBP", quality=90, xmp=xmp_packet(form))


def animated_webp_with_location() -> bytes:
    frames = [picture(SIZE, seed=s) for s in (3, 4, 5)]
    out = io.BytesIO()
    frames[0].save(out, "WEBP", save_all=True, append_images=frames[1:], duration=100,
                   lossless=True, exif=gps_exif(), xmp=xmp_packet("elements"))
    return out.getvalue()


def with_webp_chunk(webp: bytes, kind: bytes, body: bytes) -> bytes:
    """``webp`` (extended format) with one more chunk at the end."""
    chunk = kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)
    payload = webp[8:] + chunk
    return b"RIFF" + struct.pack("<I", len(payload)) + payload


def gif_extension(label: int, first: bytes, rest: bytes = b"") -> bytes:
    """A GIF extension: ``first`` as one sub-block, then ``rest`` as 255-byte sub-blocks."""
    blocks = b"".join(bytes([len(rest[i:i + 255])]) + rest[i:i + 255]
                      for i in range(0, len(rest), 255))
    return bytes([0x21, label, len(first)]) + first + blocks + b"\x00"


def gif_xmp_extension(packet: bytes) -> bytes:
    """Adobe's layout (XMP spec part 3, 1.1.2): the packet raw, not in sub-blocks, then a
    258-byte "magic trailer" that sub-block readers walk down to the terminator."""
    trailer = b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    return b"\x21\xff\x0bXMP DataXMP" + packet + trailer


def gif_with_extensions(extensions: list[bytes], *, animated: bool = False) -> bytes:
    """A GIF (animated or not) with ``extensions`` before its first image."""
    out = io.BytesIO()
    frames = [picture(SIZE, seed=s) for s in ((3, 4, 5) if animated else (3,))]
    frames[0].save(out, "GIF", save_all=animated, append_images=frames[1:], duration=100)
    gif = out.getvalue()
    flags = gif[10]
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    return gif[:start] + b"".join(extensions) + gif[start:]


def tiff_pages_with_gps_on_page_two() -> bytes:
    first, second = picture(SIZE, seed=3), picture(SIZE, seed=4)
    second.encoderinfo = {"exif": gps_exif(None)}
    out = io.BytesIO()
    first.save(out, "TIFF", save_all=True, append_images=[second])
    return out.getvalue()


# Every case: (format as the service sniffs it, a builder).
CASES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "png-ztxt-raw-exif": ("PNG", lambda: png_raw_profile(b"zTXt", "exif", gps_exif())),
    "png-text-raw-exif": ("PNG", lambda: png_raw_profile(b"tEXt", "exif", gps_exif())),
    "png-itxt-raw-exif": ("PNG", lambda: png_raw_profile(b"iTXt", "exif", gps_exif())),
    "png-ztxt-raw-app1": ("PNG", lambda: png_raw_profile(b"zTXt", "APP1", gps_exif())),
    "png-ztxt-raw-xmp": ("PNG", lambda: png_raw_profile(b"zTXt", "xmp", xmp_packet())),
    "png-itxt-xmp": ("PNG", lambda: with_png_chunks(plain("PNG"), [
        png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp_packet("elements"))])),
    "png-exif-chunk": ("PNG", lambda: plain("PNG", exif=gps_exif())),
    "apng": ("PNG", apng_with_location),
    "mpo": ("JPEG", mpo_with_location),
    "jpeg-xmp-attributes": ("JPEG", lambda: jpeg_xmp("attributes")),
    "jpeg-xmp-elements": ("JPEG", lambda: jpeg_xmp("elements")),
    "jpeg-extended-xmp": ("JPEG", jpeg_extended_xmp),
    "jpeg-progressive": ("JPEG", progressive_jpeg_with_gps),
    "webp-xmp": ("WEBP", lambda: webp_xmp("attributes")),
    "webp-animated": ("WEBP", animated_webp_with_location),
    "gif-xmp": ("GIF", lambda: gif_with_extensions([gif_xmp_extension(xmp_packet())])),
    "gif-animated-xmp": ("GIF", lambda: gif_with_extensions(
        [gif_xmp_extension(xmp_packet("elements"))], animated=True)),
    "tiff-page-two": ("TIFF", tiff_pages_with_gps_on_page_two),
}


# --- looking for a position ----------------------------------------------------------------

_TIFF_START = re.compile(rb"Exif\x00\x00|II\*\x00|MM\x00\*")
_XMP_GPS = re.compile(rb"GPS(?:Latitude|Longitude|Altitude|DestLatitude|DestLongitude)")
_RAW_PROFILE = re.compile(rb"\n[\w-]+\n *\d+\n([0-9a-fA-F\n]+)")
_EXTENDED_XMP = re.compile(rb"\xff\xe1(..)" + re.escape(_EXT_XMP_NS), re.DOTALL)


def find_location(data: bytes) -> list[str]:
    """Where ``data`` holds a GPS position: EXIF GPS IFDs in any TIFF structure anywhere in
    the bytes (every frame, every page), inside PNG text chunks, ImageMagick raw profiles or
    reassembled Extended XMP, and XMP GPS properties in any of those."""
    blobs = [data, *_png_texts(data), *_extended_xmp(data)]
    blobs += [bytes.fromhex(m.group(1).replace(b"\n", b"").decode())
              for blob in list(blobs) for m in _RAW_PROFILE.finditer(blob)]
    found = [f"frame {i}: EXIF GPS" for i in _frames_with_gps(data)]
    for n, blob in enumerate(blobs):
        found += [f"blob {n}: XMP {m.group().decode()}" for m in _XMP_GPS.finditer(blob)]
        found += [f"blob {n}: EXIF GPS at {offset}" for offset in _exif_gps(blob)]
    return found


def _exif_gps(blob: bytes) -> Iterator[int]:
    for match in _TIFF_START.finditer(blob):
        start = match.end() if match.group().startswith(b"Exif") else match.start()
        exif = Image.Exif()
        try:
            exif.load(blob[start:])
            if GPS_IFD in exif or GPS_IFD in exif.get_ifd(0x1):  # IFD0 or IFD1 (thumbnail)
                yield start
        except Exception:  # bytes that merely look like a TIFF header
            continue


def _frames_with_gps(data: bytes) -> list[int]:
    found: list[int] = []
    try:
        with Image.open(io.BytesIO(data)) as im:
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                if GPS_IFD in frame.getexif() or GPS_IFD in getattr(frame, "tag_v2", {}):
                    found.append(i)
    except Exception:  # a damaged file: the byte scans still look at it
        pass
    return found


def _png_texts(data: bytes) -> list[bytes]:
    """The text of every tEXt, zTXt and iTXt chunk, decompressed."""
    if not data.startswith(b"\x89PNG"):
        return []
    texts, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        _, _, rest = body.partition(b"\x00")
        if kind == b"tEXt":
            texts.append(rest)
        elif kind == b"zTXt":
            texts.append(zlib.decompress(rest[1:]))
        elif kind == b"iTXt":
            text = rest[2:].split(b"\x00", 2)[2]
            texts.append(zlib.decompress(text) if rest[0] else text)
    return texts


def _extended_xmp(data: bytes) -> list[bytes]:
    """Extended XMP reassembled from its APP1 chunks, one blob per GUID."""
    parts: dict[bytes, bytearray] = {}
    for match in _EXTENDED_XMP.finditer(data):
        length = struct.unpack(">H", match.group(1))[0]
        body = data[match.end():match.start() + 2 + length]
        guid, (total, offset), chunk = body[:32], struct.unpack(">II", body[32:40]), body[40:]
        whole = parts.setdefault(guid, bytearray(total))
        whole[offset:offset + len(chunk)] = chunk
    return [bytes(whole) for whole in parts.values()]


# --- what the image shows ------------------------------------------------------------------


def frames(data: bytes) -> list[np.ndarray]:
    """Every frame's decoded pixels (RGBA), as stored (before any EXIF orientation)."""
    with Image.open(io.BytesIO(data)) as im:
        return [np.asarray(frame.convert("RGBA")) for frame in ImageSequence.Iterator(im)]


def upright(data: bytes) -> np.ndarray:
    """The first frame's pixels (RGBA) with its EXIF orientation applied."""
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGBA"))
