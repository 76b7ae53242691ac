"""The formats phones and cameras write: HEIC/HEIF (pillow-heif), AVIF (Pillow), JPEG XL (the
JPEG XL plugin) and camera RAW (a DNG written by pidng: tests/data/make_dng.py), each written
by its real encoder with a position in every container it has, and uploaded, displayed,
downloaded and found like a JPEG."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import io
import struct
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rawpy
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image

from server.config import Config
from server.imaging import (
    analyse,
    formats,
    hamming,
    hashes_of,
    opening,
    sniff,
    sniff_format,
)
from server.imaging.privacy import GPS_IFD, strip_location
from server.imaging.privacy_containers import _boxes
from tests.conftest import bearer
from tests.copy_edits import photo
from tests.images import picture
from tests.metadata_files import GPS, find_location, xmp_packet

Client = TestClient[web.Request, web.Application]
DNG = Path(__file__).parent / "data" / "trip.dng"
PILLOW_FORMATS = ["HEIF", "AVIF", "JXL"]
CONTENT_TYPES = {"HEIF": "image/heic", "AVIF": "image/avif", "JXL": "image/jxl",
                 "DNG": "image/x-adobe-dng"}


def gps_exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[GPS_IFD] = GPS
    return exif.tobytes()


def written(fmt: str, image: Image.Image, **save: Any) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    return out.getvalue()


def with_position(fmt: str, size: tuple[int, int] = (120, 80), seed: int = 3) -> bytes:
    """`fmt` written by its encoder with the position in EXIF and in XMP. HEIF and AVIF take
    the EXIF orientation 6 into the file's own (irot): the stored pixels are turned."""
    image = picture(size, seed)
    if fmt == "JXL":  # the codestream's orientation is the JPEG XL one; the plugin writes none
        return written(fmt, image, exif=gps_exif(), xmp=xmp_packet(), quality=90)
    turned = image.transpose(Image.Transpose.ROTATE_90)  # orientation 6 turns it back
    return written(fmt, turned, exif=gps_exif(6), xmp=xmp_packet(), quality=90)


def sample(fmt: str) -> bytes:
    return DNG.read_bytes() if fmt == "DNG" else with_position(fmt)


def decoded(data: bytes, fmt: str) -> np.ndarray:
    """What a decoder shows of the file (a RAW's sensor data itself)."""
    if fmt == "DNG":
        with rawpy.imread(io.BytesIO(data)) as raw:
            return raw.raw_image.copy()
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


async def upload(client: Client, key: str, data: bytes, filename: str,
                 status: int = 201) -> Any:
    form = FormData()
    form.add_field("file", io.BytesIO(data), filename=filename)
    form.add_field("visibility", "public")
    resp = await client.post("/images", data=form, headers=bearer(key))
    body = await resp.json()
    assert resp.status == status, body
    return body["images"][0] if status == 201 else body


# --- sniffing --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [*PILLOW_FORMATS, "DNG"])
def test_new_formats_are_sniffed_from_their_bytes(fmt: str) -> None:
    assert sniff_format(sample(fmt)[:65536]) == fmt


def tiff_with(tags: list[tuple[int, int, int, bytes]], extra: bytes = b"") -> bytes:
    """A little-endian TIFF header and first directory with these (tag, type, count, value)
    entries; `extra` follows the directory (values longer than 4 bytes point into it)."""
    start = 8 + 2 + 12 * len(tags) + 4
    table = b"".join(struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")[:4]
                     if len(value) <= 4 else
                     struct.pack("<HHII", tag, kind, count, start + extra.index(value))
                     for tag, kind, count, value in tags)
    return b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", len(tags)) + table + bytes(4) + extra


def test_raw_formats_are_told_from_a_tiff() -> None:
    make = b"NIKON CORPORATION\x00"
    sub_ifds = (330, 4, 1, struct.pack("<I", 0))
    assert sniff_format(tiff_with([(271, 2, len(make), make), sub_ifds], make)) == "NEF"
    sony = b"SONY\x00"
    assert sniff_format(tiff_with([(271, 2, len(sony), sony), sub_ifds], sony)) == "ARW"
    # A TIFF a camera maker's software wrote is still a TIFF: no raw sub-images.
    assert sniff_format(tiff_with([(271, 2, len(make), make)], make)) == "TIFF"
    assert sniff_format(tiff_with([(50706, 1, 4, b"\x01\x04\x00\x00")])) == "DNG"
    assert sniff_format(b"II*\x00\x10\x00\x00\x00CR\x02\x00" + bytes(8)) == "CR2"
    assert sniff_format(tiff_with([(256, 3, 1, b"\x10\x00")])) == "TIFF"


# --- over HTTP: upload, display, download ----------------------------------------------------


@pytest.mark.parametrize("fmt", [*PILLOW_FORMATS, "DNG"])
async def test_upload_display_and_download_without_position(
    client: Client, alice: str, bob: str, fmt: str
) -> None:
    original = sample(fmt)
    assert find_location(original), "the sample must carry a position"
    image = await upload(client, alice, original, f"trip.{fmt.lower()}")
    assert image["content_type"] == CONTENT_TYPES[fmt]
    # Upright sizes: HEIF/AVIF by their irot, the DNG by its flip; JPEG XL as coded.
    assert (image["width"], image["height"]) == ((192, 256) if fmt == "DNG" else (120, 80))

    # Browsers get the thumbnails: WebP, upright, for every format.
    for url in (image["thumbnail_url"], image["preview_url"]):
        resp = await client.get(url, headers=bearer(bob))
        assert resp.status == 200 and resp.content_type == "image/webp"
        with Image.open(io.BytesIO(await resp.read())) as thumb:
            assert (thumb.width > thumb.height) == (image["width"] > image["height"])

    resp = await client.get(image["file_url"], headers=bearer(alice))
    assert resp.content_type == CONTENT_TYPES[fmt]
    assert await resp.read() == original  # the owner gets the original

    for headers in (bearer(bob), {}):
        resp = await client.get(image["file_url"], headers=headers)
        assert resp.status == 200 and resp.content_type == CONTENT_TYPES[fmt]
        served = await resp.read()
        assert served != original
        assert find_location(served) == []
        assert np.array_equal(decoded(served, fmt), decoded(original, fmt))


async def test_search_finds_a_heic_copy_of_a_jpeg_and_the_reverse(
    client: Client, alice: str
) -> None:
    scene, other = picture((640, 480), seed=11), picture((640, 480), seed=12)
    jpeg = await upload(client, alice, written("JPEG", scene, quality=90), "scene.jpg")
    heic = await upload(client, alice, written("HEIF", other, quality=80), "other.heic")

    form = FormData()
    form.add_field("file", io.BytesIO(written("HEIF", scene, quality=60)), filename="q.heic")
    resp = await client.post("/search/image", data=form, headers=bearer(alice))
    assert resp.status == 200, await resp.text()
    assert [r["id"] for r in (await resp.json())["results"]][:1] == [jpeg["id"]]

    form = FormData()
    form.add_field("file", io.BytesIO(written("JPEG", other, quality=70)), filename="q.jpg")
    resp = await client.post("/search/image", data=form, headers=bearer(alice))
    assert [r["id"] for r in (await resp.json())["results"]][:1] == [heic["id"]]


# --- refusals --------------------------------------------------------------------------------


async def test_a_format_whose_decoder_is_missing_is_a_415_naming_it(
    client: Client, alice: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "_decodable", lambda: frozenset({"AVIF", "JXL"}))
    body = await upload(client, alice, with_position("HEIF"), "phone.heic", status=415)
    assert "HEIC/HEIF images need pillow-heif" in body["error"]["message"]
    assert "phone.heic" in body["error"]["message"]


@pytest.fixture
def config(config: Config) -> Config:
    """A small pixel limit, so that a bomb is cheap to write (a 2000x1000 picture)."""
    return dataclasses.replace(config, max_image_pixels=1_000_000)


@pytest.mark.parametrize("fmt", PILLOW_FORMATS)
async def test_bombs_are_refused_before_decoding(
    client: Client, alice: str, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    bomb = written(fmt, Image.new("RGB", (2000, 1000), (20, 120, 40)), quality=50)

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("a bomb was decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr("pillow_jxl.JpegXLImagePlugin.Decoder", no_decoding)
    body = await upload(client, alice, bomb, f"bomb.{fmt.lower()}", status=413)
    assert "2000x1000" in body["error"]["message"]


@pytest.mark.parametrize("fmt", [*PILLOW_FORMATS, "DNG"])
async def test_truncated_files_are_422_naming_the_part(
    client: Client, alice: str, fmt: str
) -> None:
    data = sample(fmt)
    body = await upload(client, alice, data[:len(data) * 2 // 3], f"cut.{fmt.lower()}",
                        status=422)
    assert 'file 1 ("cut.' in body["error"]["message"]


# --- the copies without position, container by container -------------------------------------


def strip(tmp_path: Path, data: bytes, fmt: str) -> bytes | None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    return dst.read_bytes() if strip_location(src, dst, fmt) else None


def box_types(data: bytes) -> list[bytes]:
    with io.BytesIO(data) as fp:
        return [kind for kind, *_ in _boxes(fp, 0, len(data))]


@pytest.mark.parametrize("fmt", PILLOW_FORMATS)
def test_no_copy_without_metadata(tmp_path: Path, fmt: str) -> None:
    assert strip(tmp_path, written(fmt, picture((64, 48), 1)), fmt) is None


@pytest.mark.parametrize("fmt", PILLOW_FORMATS)
def test_exif_without_location_needs_no_copy(tmp_path: Path, fmt: str) -> None:
    """As for a JPEG: a camera's EXIF without a position is shown to all; with one, the
    copy is made."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15"  # Make, Model
    extra = {"use_container": True} if fmt == "JXL" else {}
    plain_exif = written(fmt, picture((64, 48), 1), exif=exif.tobytes(), **extra)
    assert strip(tmp_path, plain_exif, fmt) is None
    assert strip(tmp_path, written(fmt, picture((64, 48), 1), exif=gps_exif(), **extra),
                 fmt) is not None


def test_heif_items_are_blanked_in_place_and_boxes_made_free(tmp_path: Path) -> None:
    original = with_position("HEIF")
    uuid_box = (struct.pack(">I4s", 8 + 16 + 40, b"uuid") + bytes(16)
                + b"GPSLatitude 51.5N".ljust(40))
    copy = strip(tmp_path, original + uuid_box, "HEIF")
    assert copy is not None and len(copy) == len(original) + len(uuid_box)  # nothing moves
    assert box_types(copy)[-1] == b"free" and b"GPSLatitude" not in copy
    with Image.open(io.BytesIO(copy)) as im:
        assert im.getexif().get_ifd(GPS_IFD) == {} and not im.info.get("xmp", b"").strip()
    assert np.array_equal(decoded(copy, "HEIF"), decoded(original, "HEIF"))


def test_avif_keeps_its_orientation_without_exif(tmp_path: Path) -> None:
    copy = strip(tmp_path, with_position("AVIF"), "AVIF")
    assert copy is not None
    with Image.open(io.BytesIO(copy)) as im:
        assert im.getexif().get(0x0112) == 6  # from irot, which stays
        assert im.getexif().get_ifd(GPS_IFD) == {}


@pytest.mark.parametrize("compressed", [False, True])
def test_jpeg_xl_keeps_only_the_codestream(tmp_path: Path, compressed: bool) -> None:
    original = written("JXL", picture((64, 48), 2), exif=gps_exif(), xmp=xmp_packet(),
                       use_container=True, compress_metadata=compressed)
    assert (b"brob" in box_types(original)) == compressed
    copy = strip(tmp_path, original, "JXL")
    assert copy is not None
    assert set(box_types(copy)) <= {b"JXL ", b"ftyp", b"jxll", b"jxlc", b"jxlp", b"jxli"}
    assert np.array_equal(decoded(copy, "JXL"), decoded(original, "JXL"))
    bare = written("JXL", picture((64, 48), 2))
    assert bare.startswith(b"\xff\x0a") and strip(tmp_path, bare, "JXL") is None


def test_raw_gps_directory_is_removed_and_xmp_blanked(tmp_path: Path) -> None:
    original = DNG.read_bytes()
    copy = strip(tmp_path, original, "DNG")
    assert copy is not None and len(copy) == len(original)
    assert find_location(copy) == []
    rationals = struct.pack("<6I", 51, 1, 30, 1, 125, 10)
    assert rationals in original and rationals not in copy  # the values, not only the entry
    assert b"GPSLatitude" not in copy
    with rawpy.imread(io.BytesIO(copy)) as raw:
        assert raw.sizes.flip == 6  # the orientation stays


def test_raw_exif_embedded_elsewhere_is_blanked_too(tmp_path: Path) -> None:
    """A maker's structure (here DNGPrivateData's bytes, appended) holding a preview JPEG with
    its own EXIF GPS: found by its signature, cleaned like the file's own."""
    preview = written("JPEG", picture((32, 24), 4), exif=gps_exif())
    original = DNG.read_bytes() + preview
    copy = strip(tmp_path, original, "DNG")
    assert copy is not None and find_location(original) and find_location(copy) == []
    with Image.open(io.BytesIO(copy[len(DNG.read_bytes()):])) as im:
        assert im.getexif().get_ifd(GPS_IFD) == {}


def test_raw_xmp_embedded_elsewhere_is_blanked_too(tmp_path: Path) -> None:
    """An XMP packet with a position outside the XMP tag (appended, as a maker's structure
    would hold it) is found by its signature and turned into spaces."""
    original = DNG.read_bytes() + b"\x00" * 7 + xmp_packet()
    copy = strip(tmp_path, original, "DNG")
    assert copy is not None and len(copy) == len(original)
    assert "XMP" in " ".join(find_location(original)) and find_location(copy) == []


def test_jpeg_xl_orientation_is_the_codestreams(tmp_path: Path) -> None:
    """JPEG XL ignores an Exif box's orientation (the codestream has its own, which the
    decoder applies): the picture is as coded, as browsers show it."""
    data = written("JXL", picture((120, 80), 5), exif=gps_exif(6))
    facts = analyse(data, max_pixels=10**6)
    assert (facts.width, facts.height) == (120, 80)


def test_a_raw_is_shown_upright_by_its_flip() -> None:
    """The DNG's sensor holds the picture turned; its flip (orientation 6) turns it back."""
    facts = analyse(DNG.read_bytes(), max_pixels=10**6)
    upright = photo("astronaut").crop((100, 40, 292, 296))
    expected = hashes_of(upright.convert("L").resize((192, 256)))[0]
    turned = hashes_of(upright.rotate(180).convert("L").resize((192, 256)))[0]
    assert hamming(facts.phash, expected) <= 10 < hamming(facts.phash, turned)


async def test_a_raw_bomb_is_refused_from_its_headers(client: Client, alice: str) -> None:
    """The DNG's directory rewritten to claim 60000x60000 pixels: LibRaw's headers tell the
    size, and the upload is 413 before any raw data is unpacked."""
    bomb = bytearray(DNG.read_bytes())
    (ifd,) = struct.unpack_from("<I", bomb, 4)
    (count,) = struct.unpack_from("<H", bomb, ifd)
    for n in range(count):
        if struct.unpack_from("<H", bomb, ifd + 2 + 12 * n)[0] in (256, 257, 322, 323):
            struct.pack_into("<I", bomb, ifd + 2 + 12 * n + 8, 60000)
    started = time.monotonic()
    body = await upload(client, alice, bytes(bomb), "bomb.dng", status=413)
    assert "60000x60000" in body["error"]["message"]
    assert time.monotonic() - started < 2


def test_a_jpeg_xl_decodes_outside_the_lock_every_open_takes() -> None:
    """The JPEG XL plugin decodes whole when it opens a file: that must not hold the lock
    around Pillow's pixel limit, which every other upload's open waits for."""
    data = written("JXL", picture((64, 48), 6))
    with concurrent.futures.ThreadPoolExecutor(1) as pool, sniff._LIMIT_LOCK:
        # (the lock is let go before the pool waits for its thread)
        opened = pool.submit(lambda: sniff.open_lazy(io.BytesIO(data), "JXL").size)
        assert opened.result(timeout=10) == (64, 48)


@pytest.mark.parametrize(("fmt", "serialised"), [("PNG", True), ("AVIF", True),
                                                 ("JPEG", False), ("DNG", False)])
def test_large_whole_decodes_take_turns(
    monkeypatch: pytest.MonkeyPatch, fmt: str, serialised: bool
) -> None:
    """Two large pictures in formats decoded whole are analysed one at a time in a process
    (each holds hundreds of MiB at 48 MP); JPEGs, decoded at a reduced scale, and RAWs (a
    preview or a half-size demosaic, in one thread) side by side."""
    monkeypatch.setattr(opening, "LARGE_PIXELS", 100 * 100)
    data = DNG.read_bytes() if fmt == "DNG" else written(fmt, picture((160, 120), 7))
    inside, most = 0, 0
    lock = threading.Lock()
    real = opening.Opened.image

    def watched_image(self: opening.Opened, long_side: int) -> Image.Image:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.3)  # long enough for the other thread to arrive
        with lock:
            inside -= 1
        return real(self, long_side)

    monkeypatch.setattr(opening.Opened, "image", watched_image)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: analyse(data, max_pixels=10**6), range(2)))
    assert most == (1 if serialised else 2)


@pytest.mark.parametrize("fmt", ["HEIF", "JXL"])
def test_whole_decoders_give_the_picture_pillow_gives(fmt: str) -> None:
    """HEIF and JPEG XL decoded straight into an array and reduced there: the same picture
    as Pillow's plugin decodes, upright, at the reduced size asked for."""
    data = written(fmt, picture((1200, 800), 8), quality=95)
    with opening.open_image(io.BytesIO(data), fmt) as opened:
        small = opened.image(600)
    assert small.size == (600, 400)  # the largest whole factor keeping 600 and 256 px

    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(im.convert("RGB").reduce(2), dtype=np.int16)
    assert np.abs(np.asarray(small, dtype=np.int16) - expected).mean() < 2
