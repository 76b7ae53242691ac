"""Location privacy: a copy of an image without its GPS position, served to everyone but
the owner. Pixels are never re-encoded where the container allows (JPEG, PNG, WebP): only
the metadata segments are rewritten. XMP packets (which can repeat the position) are dropped.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageOps

GPS_IFD = 0x8825
_EXIF_HEADER = b"Exif\x00\x00"
_XMP_JPEG = b"http://ns.adobe.com/xap/1.0/\x00"


def exif_without_location(path: Path) -> bytes | None:
    """The image's EXIF (TIFF bytes, with the Exif header) minus GPS; None if it had none."""
    with Image.open(path) as im:
        exif = im.getexif()
        if GPS_IFD not in exif:
            return None
        del exif[GPS_IFD]
        data = exif.tobytes()
    return data if data.startswith(_EXIF_HEADER) else _EXIF_HEADER + data


def strip_location(src: Path, dst: Path, fmt: str) -> bool:
    """Write `dst`, a copy of `src` without GPS; False (nothing written) when there is none."""
    exif = exif_without_location(src)
    if exif is None:
        return False
    writers = {"JPEG": _jpeg, "PNG": _png, "WEBP": _webp, "TIFF": _tiff}
    if fmt not in writers:
        return False  # GIF and BMP carry no EXIF
    writers[fmt](src, dst, exif)
    return True


def _jpeg(src: Path, dst: Path, exif: bytes) -> None:
    with src.open("rb") as inp, dst.open("wb") as out:
        out.write(inp.read(2))  # SOI
        while True:
            marker = inp.read(2)
            if len(marker) < 2 or marker[0] != 0xFF:
                raise ValueError("not a JPEG segment")
            if marker[1] == 0xDA:  # start of scan: the entropy-coded data follows, untouched
                out.write(marker)
                shutil.copyfileobj(inp, out, 1024 * 1024)
                return
            (length,) = struct.unpack(">H", inp.read(2))
            payload = inp.read(length - 2)
            if marker[1] == 0xE1 and payload.startswith(_EXIF_HEADER):
                payload = exif
            elif marker[1] == 0xE1 and payload.startswith(_XMP_JPEG):
                continue
            out.write(marker + struct.pack(">H", len(payload) + 2) + payload)


def _png(src: Path, dst: Path, exif: bytes) -> None:
    tiff = exif[len(_EXIF_HEADER):]
    with src.open("rb") as inp, dst.open("wb") as out:
        out.write(inp.read(8))
        while header := inp.read(8):
            length, kind = struct.unpack(">I4s", header)
            data = inp.read(length)
            crc = inp.read(4)
            if kind == b"eXIf":
                data = tiff
                crc = struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
            elif kind in (b"iTXt", b"tEXt", b"zTXt") and data.startswith(b"XML:com.adobe.xmp"):
                continue
            out.write(struct.pack(">I4s", len(data), kind) + data + crc)


def _webp(src: Path, dst: Path, exif: bytes) -> None:
    tiff = exif[len(_EXIF_HEADER):]
    data = src.read_bytes()
    chunks: list[tuple[bytes, bytes]] = []
    offset = 12
    while offset + 8 <= len(data):
        kind, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        body = data[offset + 8:offset + 8 + size]
        offset += 8 + size + (size & 1)
        if kind == b"EXIF":
            body = tiff
        elif kind == b"XMP ":
            if chunks and chunks[0][0] == b"VP8X":  # clear the XMP flag
                chunks[0] = (b"VP8X", bytes([chunks[0][1][0] & ~0x04]) + chunks[0][1][1:])
            continue
        chunks.append((kind, body))
    payload = b"WEBP" + b"".join(
        kind + struct.pack("<I", len(body)) + body + (b"\x00" if len(body) & 1 else b"")
        for kind, body in chunks)
    dst.write_bytes(b"RIFF" + struct.pack("<I", len(payload)) + payload)


def _tiff(src: Path, dst: Path, exif: bytes) -> None:
    # TIFF keeps its metadata in the image's own directory: re-save it (losslessly, upright
    # so that no orientation tag is needed) without any.
    with Image.open(src) as im:
        ImageOps.exif_transpose(im).save(dst, "TIFF", compression="tiff_lzw")
