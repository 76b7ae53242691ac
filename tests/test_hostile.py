"""Hostile uploads over HTTP: each gets the right 4xx quickly or a correct 2xx, never a 5xx,
and the server's memory stays bounded. The corpus is made here; nothing is downloaded."""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image

from tests.conftest import bearer, sign_up
from tests.images import bomb_png, make_animated_gif, make_image

Client = TestClient[web.Request, web.Application]
BIG = 30_000  # 900 megapixels, over the 100-megapixel default


def _patch(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, *values)
    return bytes(out)


def jpeg_bomb() -> bytes:
    data = make_image("JPEG", (16, 16), seed=1)
    sof = data.index(b"\xff\xc0")  # baseline frame header: length, precision, height, width
    return _patch(data, sof + 5, ">HH", BIG, BIG)


def gif_bomb() -> bytes:
    data = make_image("GIF", (16, 16), seed=1)
    data = _patch(data, 6, "<HH", 65535, 65535)  # logical screen
    descriptor = data.index(b"\x2c", 13)
    return _patch(data, descriptor + 5, "<HH", 65535, 65535)


def bmp_bomb() -> bytes:
    return _patch(make_image("BMP", (16, 16), seed=1), 18, "<ii", BIG, BIG)


def tiff_bomb() -> bytes:
    out = io.BytesIO()
    Image.new("L", (BIG, 1)).save(out, "TIFF")  # one row claims the width...
    data = out.getvalue()
    # ...and ImageLength (tag 257, SHORT or LONG) claims the height.
    entry = data.index(struct.pack("<H", 257), 8)
    kind = struct.unpack_from("<H", data, entry + 2)[0]
    return _patch(data, entry + 8, "<H" if kind == 3 else "<I", BIG if kind == 4 else 65535)


def cmyk_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("CMYK", (64, 48), (10, 200, 30, 5)).save(out, "JPEG")
    return out.getvalue()


def png16() -> bytes:
    out = io.BytesIO()
    Image.new("I;16", (64, 48), 40000).save(out, "PNG")
    return out.getvalue()


async def post(client: Client, key: str, files: list[tuple[str, bytes]],
               fields: Sequence[tuple[str, str]] = ()) -> tuple[int, dict[str, object], float]:
    data = FormData(default_to_multipart=True)
    for name, value in fields:
        data.add_field(name, value)
    for filename, content in files:
        data.add_field("file", io.BytesIO(content), filename=filename)
    start = time.perf_counter()
    resp = await client.post("/images", data=data, headers=bearer(key))
    return resp.status, await resp.json(), time.perf_counter() - start


@pytest.fixture
async def key(client: Client) -> str:
    return str((await sign_up(client, "mallory"))["api_key"])


@pytest.mark.parametrize("make", [bomb_png, jpeg_bomb, gif_bomb, bmp_bomb, tiff_bomb])
async def test_decompression_bombs_are_refused_fast(
    client: Client, key: str, make: Callable[[], bytes]
) -> None:
    status, body, seconds = await post(client, key, [("bomb", make())])
    assert status == 413, body
    assert seconds < 1.0


@pytest.mark.parametrize(("name", "content", "status"), [
    ("empty.jpg", b"", 415),
    ("text.png", b"just some text, not an image\n" * 20, 415),
    ("pdf.jpg", b"%PDF-1.7\n" + b"0" * 500, 415),
    ("svg.png", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', 415),
    ("html.gif", b"GIF89a<script>alert(1)</script>", 422),
    ("truncated.jpg", make_image("JPEG", (300, 200), seed=2)[:400], 422),
    ("truncated.png", make_image("PNG", (300, 200), seed=2)[:300], 422),
    ("zip-after-png.png", make_image("PNG", (30, 20), seed=3) + b"PK\x03\x04" + b"\0" * 200, 201),
    ("photo.exe", make_image("WEBP", (30, 20), seed=4), 201),
    ("cmyk.jpg", cmyk_jpeg(), 201),
    ("deep.png", png16(), 201),
    ("alpha.png", make_image("PNG", (40, 30), mode="RGBA", seed=5), 201),
    ("frames.gif", make_animated_gif((8, 8), frames=3000, seed=6), 201),
])
async def test_hostile_files(
    client: Client, key: str, name: str, content: bytes, status: int
) -> None:
    got, body, seconds = await post(client, key, [(name, content)])
    assert got == status, body
    assert seconds < 5


@pytest.mark.parametrize("orientation", range(1, 9))
async def test_every_exif_orientation(client: Client, key: str, orientation: int) -> None:
    content = make_image("JPEG", (80, 40), seed=7, exif_orientation=orientation)
    status, body, _ = await post(client, key, [("o.jpg", content)])
    assert status == 201, body
    image = body["images"][0]  # type: ignore[index]
    assert (image["width"], image["height"]) == (80, 40)


async def test_ten_thousand_tiny_parts(client: Client, key: str) -> None:
    data = FormData(default_to_multipart=True)
    for i in range(10_000):
        data.add_field("tags", f"t{i}")
    start = time.perf_counter()
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 413
    assert time.perf_counter() - start < 5


async def test_a_ten_megabyte_field(client: Client, key: str) -> None:
    data = FormData()
    data.add_field("file", io.BytesIO(make_image("PNG", seed=8)), filename="a.png")
    data.add_field("description", io.BytesIO(b"x" * 10_000_000))
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 413
    assert "description" in (await resp.json())["error"]["details"]


async def test_a_thousand_tags(client: Client, key: str) -> None:
    tags = ",".join(f"tag{i}" for i in range(1000))
    status, body, _ = await post(client, key, [("a.png", make_image("PNG", seed=9))],
                                 [("tags", tags)])
    assert status == 422, body


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux peak-RSS reset")
async def test_memory_stays_bounded(client: Client, key: str) -> None:
    """Bombs and a 12 MP JPEG raise the serving process's peak RSS by little: the peak is
    reset once the test's own files exist, so only the requests' handling counts. A full
    decode of the 12 MP JPEG alone would take 36 MiB (4000 x 3000 x 3 bytes)."""
    files = [make() for make in (bomb_png, jpeg_bomb, gif_bomb, bmp_bomb, tiff_bomb)]
    big = make_image("JPEG", (4000, 3000), seed=10, quality=95)
    await post(client, key, [("warm-up.jpg", make_image("JPEG", (640, 480), seed=11))])
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _status_kib("VmRSS")
    for data in files:
        await post(client, key, [("bomb", data)])
    status, body, _ = await post(client, key, [("big.jpg", big)])
    assert status == 201, body
    grown_mib = (_status_kib("VmHWM") - before) / 1024
    assert grown_mib < 24, grown_mib
