"""Location privacy: anyone but the owner downloads the image without its GPS position."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image

from server.imaging.privacy import GPS_IFD
from server.keys import STORAGE
from tests.conftest import basic, bearer, sign_up, storage_url_of
from tests.images import picture

Client = TestClient[web.Request, web.Application]
GPS = {1: "N", 2: (51.0, 30.0, 12.5), 3: "W", 4: (0.0, 7.0, 39.0)}


def with_gps(fmt: str, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[GPS_IFD] = GPS
    out = io.BytesIO()
    picture((120, 80), seed=3).save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def gps_of(data: bytes) -> dict[int, object]:
    with Image.open(io.BytesIO(data)) as im:
        return dict(im.getexif().get_ifd(GPS_IFD))


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_of(request, tmp_path, "")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
async def test_others_get_no_location(client: Client, fmt: str) -> None:
    original = with_gps(fmt)
    assert gps_of(original)
    owner = (await sign_up(client, "olive"))["api_key"]
    other = (await sign_up(client, "oscar"))["api_key"]
    data = FormData()
    data.add_field("file", io.BytesIO(original), filename=f"trip.{fmt.lower()}")
    data.add_field("visibility", "public")
    resp = await client.post("/images", data=data, headers=bearer(owner))
    assert resp.status == 201, await resp.text()
    image = (await resp.json())["images"][0]

    resp = await client.get(image["file_url"], headers=bearer(owner))
    assert await resp.read() == original  # the owner keeps the original

    for headers in (bearer(other), {}):
        resp = await client.get(image["file_url"], headers=headers)
        served = await resp.read()
        assert resp.status == 200
        assert gps_of(served) == {}
        assert resp.headers["ETag"] != f'"{image["sha256"]}"'
        with Image.open(io.BytesIO(served)) as im:
            upright = im.size if im.getexif().get(0x0112, 1) < 5 else im.size[::-1]
            assert upright == (80, 120) or upright == (image["width"], image["height"])
        partial = await client.get(image["file_url"], headers={**headers, "Range": "bytes=0-9"})
        assert partial.status == 206 and await partial.read() == served[:10]

    # Deleting the image removes both objects.
    assert client.app is not None
    assert len([k async for k in client.app[STORAGE].list()]) == 2
    resp = await client.delete("/users/me", headers=basic("olive"))
    assert resp.status == 204
    assert [k async for k in client.app[STORAGE].list()] == []


async def test_images_without_location_are_stored_once(client: Client) -> None:
    key = (await sign_up(client, "pat"))["api_key"]
    out = io.BytesIO()
    picture((60, 40), seed=4).save(out, "JPEG")
    data = FormData()
    data.add_field("file", io.BytesIO(out.getvalue()), filename="plain.jpg")
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201
    assert client.app is not None
    assert len([k async for k in client.app[STORAGE].list()]) == 1
