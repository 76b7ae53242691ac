"""DOWNLOADS=redirect on the S3 back-end (moto's server): access is decided by the service,
the bytes come from S3 through a short-lived presigned URL with the right headers."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.app import create_app
from server.config import Config, ConfigError
from tests.conftest import bearer, sign_up, storage_url_of
from tests.images import make_image, picture
from tests.metadata_files import find_location, gps_exif

Client = TestClient[web.Request, web.Application]
SECONDS = 3


@pytest.fixture(params=["s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_of(request, tmp_path, "originals")


@pytest.fixture
def config(config: Config) -> Config:
    return dataclasses.replace(config, downloads="redirect", download_url_seconds=SECONDS)


def with_gps() -> bytes:
    out = io.BytesIO()
    picture((320, 240), seed=5).save(out, "JPEG", exif=gps_exif(orientation=1))
    return out.getvalue()


async def upload(client: Client, key: str, data: bytes, name: str, **fields: str) -> Any:
    form = FormData(default_to_multipart=True)
    for field, value in fields.items():
        form.add_field(field, value)
    form.add_field("file", io.BytesIO(data), filename=name)
    resp = await client.post("/images", data=form, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    return (await resp.json())["images"][0]


async def fetch(url: str) -> tuple[int, bytes, Any]:
    """As a browser follows the redirect: a plain GET of the presigned URL, no credentials."""
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read(), resp.headers


async def test_downloads_redirect_to_presigned_urls(client: Client) -> None:
    alice = (await sign_up(client, "alice"))["api_key"]
    bob = (await sign_up(client, "bob"))["api_key"]
    original = with_gps()
    public = await upload(client, alice, original, "holiday-photo.jpg", visibility="public")
    private = await upload(client, alice, make_image("PNG", (200, 100)), "secret.png")

    # The owner is sent to the original, GPS and all, with the headers the service would set.
    resp = await client.get(public["file_url"], headers=bearer(alice), allow_redirects=False)
    assert resp.status == 302 and resp.headers["Cache-Control"].startswith("private")
    location = resp.headers["Location"]
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=3" in location
    status, body, headers = await fetch(location)
    assert status == 200 and body == original
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"].startswith('inline; filename="holiday-photo.jpg"')

    # Everyone else is sent to the copy without the position.
    for auth in ({}, bearer(bob)):
        resp = await client.get(public["file_url"], headers=auth, allow_redirects=False)
        assert resp.status == 302
        status, body, _ = await fetch(resp.headers["Location"])
        assert status == 200 and body != original and find_location(body) == []

    # Access is decided before any redirect: others' private images are 404 as ever.
    for auth in ({}, bearer(bob)):
        resp = await client.get(private["file_url"], headers=auth, allow_redirects=False)
        assert resp.status == 404
    # HEAD and conditional requests are answered by the service itself.
    resp = await client.head(public["file_url"], headers=bearer(alice), allow_redirects=False)
    assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(original)
    resp = await client.get(public["file_url"], allow_redirects=False,
                            headers={**bearer(alice), "If-None-Match": f'"{public["sha256"]}"'})
    assert resp.status == 304

    # Thumbnails too (the stored WebP; a JPEG for clients without WebP is made here).
    resp = await client.get(public["thumbnail_url"], allow_redirects=False)
    assert resp.status == 302
    status, body, headers = await fetch(resp.headers["Location"])
    assert status == 200 and body[8:12] == b"WEBP" and headers["Content-Type"] == "image/webp"
    resp = await client.get(public["thumbnail_url"], headers={"Accept": "image/jpeg"},
                            allow_redirects=False)
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/jpeg"

    # A presigned URL is short-lived: signed now, for SECONDS. (S3 and MinIO refuse it after
    # that; moto's server does not check expiry, so the test checks what the URL claims.)
    query = parse_qs(urlsplit(location).query)
    assert query["X-Amz-Expires"] == [str(SECONDS)]
    signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed).total_seconds()) < 30
    assert query["X-Amz-SignedHeaders"] == ["host"]  # a browser can follow it as it is


async def test_no_presigned_url_names_another_objects_key(client: Client) -> None:
    """A presigned URL shows its object's key: the copy without GPS and the thumbnails must
    not reveal the original's key (defence in depth for a bucket that is ever made readable,
    or a key leaked in a log)."""
    alice = (await sign_up(client, "alice"))["api_key"]
    image = await upload(client, alice, with_gps(), "trip.jpg", visibility="public")

    def key_of(resp: aiohttp.ClientResponse) -> str:
        assert resp.status == 302
        return urlsplit(resp.headers["Location"]).path.rsplit("/", 1)[1]

    original = key_of(await client.get(image["file_url"], headers=bearer(alice),
                                       allow_redirects=False))
    others = [key_of(await client.get(image["file_url"], allow_redirects=False))]
    await client.get(image["preview_url"])  # made on its first request, then redirected to
    for url in (image["thumbnail_url"], image["preview_url"]):
        others.append(key_of(await client.get(url, allow_redirects=False)))
    assert len({original, *others}) == 4
    for key in others:
        assert original not in key and key.split("-")[0] not in original, (original, key)


@pytest.mark.parametrize("seconds", [30, 300])
async def test_others_keep_a_public_picture_only_as_long_as_the_setting_says(
    aiohttp_client: Any, config: Config, seconds: int
) -> None:
    """PUBLIC_CACHE_SECONDS bounds how long a picture outlives a switch to private in the
    browsers and caches of others; the cache header signed into the presigned URL (what S3
    sends back) says the same."""
    client = await aiohttp_client(create_app(dataclasses.replace(
        config, public_cache_seconds=seconds)))
    alice = (await sign_up(client, "alice"))["api_key"]
    image = await upload(client, alice, make_image("PNG", (300, 200)), "p.png",
                         visibility="public")
    await client.get(image["preview_url"])  # made on its first request, then redirected to
    for url in (image["file_url"], image["thumbnail_url"], image["preview_url"]):
        resp = await client.get(url, allow_redirects=False)
        assert resp.status == 302, url
        _, _, headers = await fetch(resp.headers["Location"])
        assert headers["Cache-Control"] == f"public, max-age={seconds}", url
        assert "immutable" not in headers["Cache-Control"]


def test_presigned_url_lifetimes_are_bounded() -> None:
    assert Config.from_env({}).download_url_seconds == 60
    assert Config.from_env({}).public_cache_seconds == 300
    for bad in ("5", "700000", "soon"):
        with pytest.raises(ConfigError, match="DOWNLOAD_URL_SECONDS"):
            Config.from_env({"DOWNLOAD_URL_SECONDS": bad})


async def test_private_images_are_signed_with_a_private_cache_header(client: Client) -> None:
    """What S3 sends back with a private image (response-cache-control, signed into the URL)
    keeps it out of shared caches, for the original and the thumbnail alike."""
    alice = (await sign_up(client, "alice"))["api_key"]
    private = await upload(client, alice, make_image("PNG", (320, 240)), "secret.png")
    assert private["visibility"] == "private"
    for url in (private["file_url"], private["thumbnail_url"]):
        resp = await client.get(url, headers=bearer(alice), allow_redirects=False)
        assert resp.status == 302, url
        location = resp.headers["Location"]
        assert parse_qs(urlsplit(location).query)["response-cache-control"][0].startswith(
            "private"), location
        status, body, headers = await fetch(location)
        assert status == 200 and body, url
        assert headers["Cache-Control"].startswith("private"), (url, headers["Cache-Control"])
    # The header is the service's: an anonymous public answer may be shared.
    public = await upload(client, alice, make_image("PNG", (320, 240), seed=3), "open.png",
                          visibility="public")
    for url in (public["file_url"], public["thumbnail_url"]):
        resp = await client.get(url, allow_redirects=False)
        assert resp.status == 302, url
        _, _, headers = await fetch(resp.headers["Location"])
        assert headers["Cache-Control"].startswith("public"), (url, headers["Cache-Control"])
