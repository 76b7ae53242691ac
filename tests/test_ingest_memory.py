"""The server's memory while it ingests one large photo: uploading a 40 MP JPEG of 41 MB
raises the serving process's peak RSS by less than 32 MiB (issue 24's target is 64; half of
it still catches the file read whole once, a 46 MiB rise), with a GPS position in its EXIF
(so the copy without location is written) and without one (so the original is only judged).

The real server runs as a process of its own, as in production; its peak RSS is reset once
it has served a warm-up upload, so only the big upload counts. When the location check read
the file whole, sliced its scan data out and joined the copy in memory, the rise was 85 MiB
without GPS and 124 MiB with it; reading a block at a time, it is 9 and 14.
"""

from __future__ import annotations

import io
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bench.common import ServerProcess, running_server
from tests.conftest import migrated_database
from tests.metadata_files import gps_exif, jpeg_segment
from tests.raw_http import BOUNDARY, form

LIMIT_MIB = 32
SIZE = (7400, 5400)  # 40 MP

pytestmark = [
    # Alone: a 40 MP picture and two 41 MB uploads beside the parallel tests would slow them,
    # and memory pressure from them could push the server's pages out and hide a rise.
    pytest.mark.serial,
    pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(),
                       reason="Linux peak-RSS reset"),
]


@pytest.fixture(scope="module")
def photo() -> bytes:
    """A 40 MP JPEG of 41 MB: noise in 740 x 540 tiles (every 8 x 8 block busy, as in a
    sharp photo), made in half a second."""
    tile = Image.fromarray(
        np.random.default_rng(40).integers(0, 256, (540, 740, 3), dtype=np.uint8))
    image = Image.new("RGB", SIZE)
    for top in range(0, SIZE[1], tile.height):
        for left in range(0, SIZE[0], tile.width):
            image.paste(tile, (left, top))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=93)
    data = out.getvalue()
    assert 35 * 2**20 < len(data) < 48 * 2**20  # under the 50 MiB upload limit
    return data


@pytest.fixture(scope="module")
def dsn(admin_dsn: str) -> Iterator[str]:
    with migrated_database(admin_dsn) as database:
        yield database


@pytest.fixture
def server(dsn: str) -> Iterator[ServerProcess]:
    """A fresh server for each upload, so that memory kept by earlier work cannot hide a
    rise."""
    with running_server({"DATABASE_URL": dsn, "BCRYPT_COST": "4"}) as process:
        yield process


def call(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, data=data, headers=headers or {},
                                     method="POST" if data is not None else "GET")
    with urllib.request.urlopen(request, timeout=300) as resp:
        return json.loads(resp.read())


def sign_up(server: ServerProcess, name: str) -> str:
    body = json.dumps({"username": name, "password": "x" * 12}).encode()
    answer = call(server.url + "/users", body, {"Content-Type": "application/json"})
    return str(answer["api_key"])


def upload(server: ServerProcess, key: str, data: bytes) -> dict[str, Any]:
    """Posts one public image; its description as others get it."""
    body = form([("photo.jpg", data)], {"visibility": "public"})
    answer = call(server.url + "/images", body, {
        "Authorization": f"Bearer {key}",
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    image: dict[str, Any] = call(f"{server.url}/images/{answer['images'][0]['id']}")
    return image


def with_gps(jpeg: bytes) -> bytes:
    return jpeg[:2] + jpeg_segment(0xE1, gps_exif()) + jpeg[2:]


@pytest.mark.parametrize("gps", [True, False], ids=["with-gps", "without-gps"])
def test_a_40_mp_jpeg_raises_the_servers_peak_rss_by_less_than_32_mib(
    server: ServerProcess, photo: bytes, gps: bool
) -> None:
    data = with_gps(photo) if gps else photo
    key = sign_up(server, f"memory_{int(gps)}")
    warm_up = Image.new("RGB", (640, 480), "teal")
    out = io.BytesIO()
    warm_up.save(out, "JPEG", exif=gps_exif())  # the copy's code path, warmed up too
    upload(server, key, out.getvalue())

    server.reset_peak()
    before = server.rss_kib()
    image = upload(server, key, data)
    rise_mib = (server.peak_rss_kib() - before) / 1024
    print(f"peak RSS rise: {rise_mib:.1f} MiB for {len(data)} bytes")

    # Others get the copy without location when there was one to remove, else the original.
    assert (image["size_bytes"] < len(data)) == gps, image["size_bytes"]
    assert rise_mib < LIMIT_MIB, f"peak RSS rose by {rise_mib:.0f} MiB for {len(data)} bytes"
