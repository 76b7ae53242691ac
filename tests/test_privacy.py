"""Location privacy: anyone but the owner downloads the image without its GPS position, in
whatever container the position was written (see tests/metadata_files.py)."""

from __future__ import annotations

import hashlib
import io
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image, ImageCms

from server.imaging.privacy import GPS_IFD, strip_location
from server.keys import STORAGE
from tests.conftest import basic, bearer, sign_up, storage_url_of
from tests.images import make_animated_gif, make_image, picture
from tests.metadata_files import (
    CASES,
    GPS,
    ORIENTATION,
    SIZE,
    find_location,
    frames,
    gif_extension,
    gif_with_extensions,
    jpeg_segment,
    plain,
    png_text,
    upright,
    with_jpeg_segments,
    with_png_chunks,
    with_webp_chunk,
    xmp_packet,
)

Client = TestClient[web.Request, web.Application]
CASE_NAMES = sorted(CASES)


def with_gps(fmt: str, orientation: int = 6) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    exif[GPS_IFD] = GPS
    out = io.BytesIO()
    picture((120, 80), seed=3).save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def gps_of(data: bytes) -> dict[int, object]:
    with Image.open(io.BytesIO(data)) as im:
        return dict(im.getexif().get_ifd(GPS_IFD))


def orientation_of(data: bytes) -> int:
    with Image.open(io.BytesIO(data)) as im:
        return int(im.getexif().get(ORIENTATION, 1))


def assert_shows_the_same(original: bytes, copy: bytes, fmt: str) -> None:
    """The copy decodes to the original's pixels: every frame for containers rewritten in
    place (an MPO keeps its first frame only), the upright first page for a re-saved TIFF."""
    if fmt == "TIFF":
        assert np.array_equal(upright(original), upright(copy))
        return
    assert orientation_of(copy) == orientation_of(original)
    before, after = frames(original), frames(copy)
    assert len(after) == len(before) or (len(after) == 1 and b"MPF\x00" in original)
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=False))


def strip(tmp_path: Path, data: bytes, fmt: str) -> bytes | None:
    """strip_location on ``data``: the copy's bytes, None when it made none."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.write_bytes(data)
    dst.unlink(missing_ok=True)
    if strip_location(src, dst, fmt):
        return dst.read_bytes()
    assert not dst.exists()
    return None


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_of(request, tmp_path, "")


async def upload(client: Client, key: str, data: bytes, filename: str) -> dict[str, object]:
    form = FormData()
    form.add_field("file", io.BytesIO(data), filename=filename)
    form.add_field("visibility", "public")
    resp = await client.post("/images", data=form, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    image: dict[str, object] = (await resp.json())["images"][0]
    return image


# --- over HTTP -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
async def test_others_get_no_location(client: Client, fmt: str) -> None:
    original = with_gps(fmt)
    assert gps_of(original)
    owner = (await sign_up(client, "olive"))["api_key"]
    other = (await sign_up(client, "oscar"))["api_key"]
    image = await upload(client, owner, original, f"trip.{fmt.lower()}")

    resp = await client.get(str(image["file_url"]), headers=bearer(owner))
    assert await resp.read() == original  # the owner keeps the original

    for headers in (bearer(other), {}):
        resp = await client.get(str(image["file_url"]), headers=headers)
        served = await resp.read()
        assert resp.status == 200
        assert gps_of(served) == {}
        assert find_location(served) == []
        assert_shows_the_same(original, served, fmt)
        assert resp.headers["ETag"] != f'"{image["sha256"]}"'
        with Image.open(io.BytesIO(served)) as im:
            upright_size = im.size if im.getexif().get(0x0112, 1) < 5 else im.size[::-1]
            assert upright_size == (80, 120) or upright_size == (image["width"], image["height"])
        partial = await client.get(str(image["file_url"]),
                                   headers={**headers, "Range": "bytes=0-9"})
        assert partial.status == 206 and await partial.read() == served[:10]

    # Deleting the image removes every object: the original, the copy, the thumbnail.
    assert client.app is not None
    assert len([k async for k in client.app[STORAGE].list()]) == 3
    resp = await client.delete("/users/me", headers=basic("olive"))
    assert resp.status == 204
    assert [k async for k in client.app[STORAGE].list()] == []


@pytest.mark.parametrize("storage_url", ["local"], indirect=True)
@pytest.mark.parametrize("case", CASE_NAMES)
async def test_others_get_no_location_from_any_container(
    client: Client, storage_url: str, case: str
) -> None:
    fmt, build = CASES[case]
    original = build()
    assert find_location(original), "the sample must carry a position"
    owner = (await sign_up(client, "olive"))["api_key"]
    other = (await sign_up(client, "oscar"))["api_key"]
    image = await upload(client, owner, original, f"trip.{fmt.lower()}")

    resp = await client.get(str(image["file_url"]), headers=bearer(owner))
    assert await resp.read() == original

    for headers in (bearer(other), {}):
        resp = await client.get(str(image["file_url"]), headers=headers)
        assert resp.status == 200
        served = await resp.read()
        assert find_location(served) == []
        assert_shows_the_same(original, served, fmt)
        assert resp.headers["ETag"] != f'"{image["sha256"]}"'


@pytest.mark.parametrize("storage_url", ["local"], indirect=True)
async def test_others_see_the_digest_and_size_of_the_copy_they_download(
    client: Client, storage_url: str
) -> None:
    """The original's digest would fingerprint a file others must not have: every answer
    that describes the picture gives others the copy's digest and size, the owner the
    original's."""
    original = with_gps("JPEG")
    owner = (await sign_up(client, "olive"))["api_key"]
    other = (await sign_up(client, "oscar"))["api_key"]
    image = await upload(client, owner, original, "trip.jpg")
    assert image["sha256"] == hashlib.sha256(original).hexdigest()
    assert image["size_bytes"] == len(original)
    served = await (await client.get(str(image["file_url"]))).read()
    copy = {"sha256": hashlib.sha256(served).hexdigest(), "size_bytes": len(served)}
    mine = {"sha256": image["sha256"], "size_bytes": image["size_bytes"]}
    assert copy != mine

    async def described(headers: dict[str, str]) -> list[dict[str, object]]:
        """The picture as each path that returns an Image describes it."""
        found = []
        resp = await client.get(f"/images/{image['id']}", headers=headers)
        found.append(await resp.json())
        resp = await client.get("/images", headers=headers)
        found += [i for i in (await resp.json())["images"] if i["id"] == image["id"]]
        resp = await client.get("/search", params={"q": "trip"}, headers=headers)
        found += [i for i in (await resp.json())["results"] if i["id"] == image["id"]]
        for match in ("exact", "robust"):
            form = FormData()
            form.add_field("file", io.BytesIO(original), filename="query.jpg")
            form.add_field("match", match)
            resp = await client.post("/search/image", data=form, headers=headers)
            assert resp.status == 200, await resp.text()
            found += [i for i in (await resp.json())["results"] if i["id"] == image["id"]]
        assert len(found) == 5, found
        return found

    for headers, expected in ((bearer(owner), mine), (bearer(other), copy), ({}, copy)):
        for answer in await described(headers):
            assert {k: answer[k] for k in expected} == expected, headers


async def test_images_without_location_are_stored_once(client: Client) -> None:
    key = (await sign_up(client, "pat"))["api_key"]
    out = io.BytesIO()
    picture((60, 40), seed=4).save(out, "JPEG")
    data = FormData()
    data.add_field("file", io.BytesIO(out.getvalue()), filename="plain.jpg")
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201
    assert client.app is not None
    keys = [info.key async for info in client.app[STORAGE].list()]
    assert len(keys) == 2 and not any(k.endswith("-nogps") for k in keys)  # and a thumbnail


# --- strip_location itself -----------------------------------------------------------------


@pytest.mark.parametrize("case", CASE_NAMES)
def test_strip_location_empties_every_container(tmp_path: Path, case: str) -> None:
    fmt, build = CASES[case]
    original = build()
    assert find_location(original)
    copy = strip(tmp_path, original, fmt)
    assert copy is not None
    assert find_location(copy) == []
    assert b"GPS" not in copy and b"xmpmeta" not in copy
    assert_shows_the_same(original, copy, fmt)
    assert strip(tmp_path, copy, fmt) is None  # the copy itself is clean


def test_mpo_copy_is_its_first_frame(tmp_path: Path) -> None:
    fmt, build = CASES["mpo"]
    original = build()
    copy = strip(tmp_path, original, fmt)
    assert copy is not None
    assert b"MPF\x00" not in copy and copy.count(b"\xff\xd8") == 1
    assert copy.endswith(b"\xff\xd9")
    with Image.open(io.BytesIO(copy)) as im:
        assert im.format == "JPEG" and getattr(im, "n_frames", 1) == 1


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_copy_keeps_icc_profile_and_orientation_only(tmp_path: Path, fmt: str) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[ORIENTATION] = 8
    exif[0x010F] = "Camera maker"
    exif[GPS_IFD] = GPS
    out = io.BytesIO()
    picture(SIZE, seed=5).save(out, fmt, exif=exif.tobytes(), icc_profile=icc, quality=90)
    copy = strip(tmp_path, out.getvalue(), fmt)
    assert copy is not None
    with Image.open(io.BytesIO(copy)) as im:
        assert im.info.get("icc_profile") == icc
        assert dict(im.getexif()) == {ORIENTATION: 8}
    assert_shows_the_same(out.getvalue(), copy, fmt)


def test_orientation_read_from_xmp_or_a_raw_profile_is_kept(tmp_path: Path) -> None:
    # Pillow (so the service's reported size) takes the orientation from XMP when EXIF has
    # none: the copy, without XMP, says it in EXIF.
    packet = xmp_packet().replace(b' xmlns:xmp=', b' tiff:Orientation="6"'
                                  b' xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:xmp=')
    original = with_jpeg_segments(
        plain("JPEG"), [jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + packet)])
    assert orientation_of(original) == 6
    copy = strip(tmp_path, original, "JPEG")
    assert copy is not None and orientation_of(copy) == 6 and find_location(copy) == []

    raw_exif_png = CASES["png-ztxt-raw-exif"][1]()
    assert orientation_of(raw_exif_png) == 6
    copy = strip(tmp_path, raw_exif_png, "PNG")
    assert copy is not None and orientation_of(copy) == 6 and b"Raw profile" not in copy


def _upright_exif() -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = 1
    return exif.tobytes()


def _jpeg_with(*segments: bytes) -> bytes:
    return with_jpeg_segments(plain("JPEG"), list(segments))


# Containers without a GPS field that still carry text (or anything): dropped all the same.
TEXT = b"Meet me at 51.5033N 0.1196W"
OTHER_CONTAINERS: dict[str, tuple[str, bytes]] = {
    "jpeg-comment": ("JPEG", _jpeg_with(jpeg_segment(0xFE, TEXT))),
    "jpeg-iptc": ("JPEG", _jpeg_with(jpeg_segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00"
                                                  + struct.pack(">I", len(TEXT)) + TEXT))),
    "jpeg-trailer": ("JPEG", plain("JPEG") + TEXT),
    "png-comment": ("PNG", with_png_chunks(plain("PNG"), [png_text(b"tEXt", "Comment",
                                                                   TEXT.decode())])),
    "png-after-iend": ("PNG", plain("PNG") + TEXT),
    "gif-comment": ("GIF", gif_with_extensions([gif_extension(0xFE, TEXT)])),
    "gif-app": ("GIF", gif_with_extensions([gif_extension(0xFF, b"MGKIPTC0000", TEXT)])),
    "webp-unknown-chunk": ("WEBP", with_webp_chunk(plain("WEBP", exif=_upright_exif()),
                                                   b"LOCA", TEXT)),
    "tiff-iptc": ("TIFF", plain("TIFF", tiffinfo={33723: TEXT})),
}


@pytest.mark.parametrize("case", sorted(OTHER_CONTAINERS))
def test_text_in_other_containers_is_dropped(tmp_path: Path, case: str) -> None:
    fmt, original = OTHER_CONTAINERS[case]
    assert TEXT in original
    copy = strip(tmp_path, original, fmt)
    assert copy is not None and TEXT not in copy
    assert_shows_the_same(original, copy, fmt)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"])
@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "L", "CMYK"])
def test_no_copy_without_location(tmp_path: Path, fmt: str, mode: str) -> None:
    try:
        images = [make_image(fmt, SIZE, mode)]
        if fmt not in ("GIF", "BMP"):
            images.append(make_image(fmt, SIZE, mode, exif_orientation=6))
    except (OSError, ValueError):
        pytest.skip(f"Pillow cannot write {mode} as {fmt}")
    for data in images:
        assert strip(tmp_path, data, fmt) is None


def test_no_copy_for_exif_without_gps_nor_animations(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 3
    exif[0x010F] = "Camera maker"
    exif[0x0132] = "2024:05:01 10:00:00"
    for fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        assert strip(tmp_path, plain(fmt, exif=exif.tobytes()), fmt) is None
    pictures = [picture(SIZE, seed=s) for s in (1, 2)]
    for fmt in ("PNG", "WEBP"):
        out = io.BytesIO()
        pictures[0].save(out, fmt, save_all=True, append_images=pictures[1:], duration=50)
        assert strip(tmp_path, out.getvalue(), fmt) is None
    assert strip(tmp_path, make_animated_gif(), "GIF") is None


@pytest.mark.parametrize("case", CASE_NAMES)
def test_damaged_files_raise_only_what_the_caller_maps(tmp_path: Path, case: str) -> None:
    fmt, build = CASES[case]
    original = build()
    rng = np.random.default_rng(7)
    samples = [original[:n] for n in rng.integers(0, len(original), 12)]
    for _ in range(12):
        damaged = bytearray(original)
        for at in rng.integers(0, len(original), 4):
            damaged[at] = int(rng.integers(0, 256))
        samples.append(bytes(damaged))
    for sample in samples:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's complaints about the damaged TIFF
            try:
                copy = strip(tmp_path, sample, fmt)
            except (OSError, ValueError, SyntaxError, struct.error):
                continue
            # Either a copy without a position, or no copy because there is none to hide.
            assert find_location(sample if copy is None else copy) == []
