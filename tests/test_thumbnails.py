"""Thumbnails over HTTP, on both storage back-ends: sizes, formats, orientation, no metadata,
visibility, caching, deletion and sweep, the all-or-nothing rule, made on request, backfill."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image, ImageCms

from server.backfill import Progress
from server.config import Config
from server.db.pool import create_pool
from server.db.queries import load_queries
from server.handlers.thumbnails import accepts_webp
from server.keys import POOL, QUERIES, STORAGE
from server.services.sweep import sweep
from server.services.thumbnails import backfill
from tests.conftest import basic, bearer, sign_up, storage_url_of
from tests.images import make_animated_gif, make_image, picture
from tests.metadata_files import find_location, gps_exif, jpeg_xmp

Client = TestClient[web.Request, web.Application]


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_of(request, tmp_path, "originals")


async def upload(client: Client, key: str, files: list[tuple[str, bytes]],
                 status: int = 201, **fields: str) -> Any:
    from aiohttp import FormData

    form = FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    for filename, content in files:
        form.add_field("file", io.BytesIO(content), filename=filename,
                       content_type="application/octet-stream")
    resp = await client.post("/images", data=form, headers=bearer(key))
    body = await resp.json()
    assert resp.status == status, body
    return body


async def get_thumb(client: Client, url: str, key: str | None = None,
                    **headers: str) -> tuple[Any, bytes]:
    all_headers = {**(bearer(key) if key else {}), **headers}
    resp = await client.get(url, headers=all_headers)
    return resp, await resp.read()


def riff_chunks(webp: bytes) -> list[bytes]:
    """The chunk ids of a WebP file (RIFF): metadata would be EXIF, XMP or ICCP."""
    assert webp[:4] == b"RIFF" and webp[8:12] == b"WEBP"
    chunks, at = [], 12
    while at + 8 <= len(webp):
        kind, size = webp[at:at + 4], int.from_bytes(webp[at + 4:at + 8], "little")
        chunks.append(kind)
        at += 8 + size + (size & 1)
    return chunks


def jpeg_with(size: tuple[int, int], *segments: bytes, seed: int = 1) -> bytes:
    out = io.BytesIO()
    picture(size, seed=seed).save(out, "JPEG", quality=90)
    data = out.getvalue()
    return data[:2] + b"".join(segments) + data[2:]


def app1(payload: bytes) -> bytes:
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


async def rows(dsn: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def object_keys(client: Client) -> list[str]:
    assert client.app is not None
    return [info.key async for info in client.app[STORAGE].list()]


# --- sizes, formats, pixels ------------------------------------------------------------------


async def test_sizes_and_formats(client: Client, alice: str, clean_db: str) -> None:
    (image,) = (await upload(client, alice, [("wide.jpg", make_image("JPEG", (2400, 1200)))])
                )["images"]
    assert image["thumbnail_url"] == f"/images/{image['id']}/thumbnail?size=256&v=1"
    assert image["preview_url"] == f"/images/{image['id']}/thumbnail?size=1024&v=1"
    # The small one was made with the upload; the large one is not there yet.
    made = await rows(clean_db, "select size, width, height from image_thumbnails")
    assert [tuple(r) for r in made] == [(256, 256, 128)]

    resp, body = await get_thumb(client, image["thumbnail_url"], alice)
    assert resp.status == 200 and resp.headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(body)).size == (256, 128)
    assert resp.headers["Content-Length"] == str(len(body))
    assert 'filename="wide-256.webp"' in resp.headers["Content-Disposition"]

    resp, body = await get_thumb(client, image["preview_url"], alice)
    assert resp.status == 200 and Image.open(io.BytesIO(body)).size == (1024, 512)
    made = await rows(clean_db, "select size from image_thumbnails order by size")
    assert [r["size"] for r in made] == [256, 1024]  # kept for the next request
    again_resp, again = await get_thumb(client, image["preview_url"], alice)
    assert again == body and again_resp.headers["ETag"] == resp.headers["ETag"]

    # A client that does not take WebP gets a JPEG of the same picture.
    for accept in ("image/jpeg", "image/webp;q=0, */*", "image/png,image/*;q=0.8,image/webp;q=0"):
        resp, body = await get_thumb(client, image["thumbnail_url"], alice, Accept=accept)
        assert resp.headers["Content-Type"] == "image/jpeg", accept
        assert body[:3] == b"\xff\xd8\xff" and Image.open(io.BytesIO(body)).size == (256, 128)
        assert resp.headers["ETag"].endswith('-jpeg"')
        assert "Accept" in resp.headers["Vary"]
    resp, _ = await get_thumb(client, image["thumbnail_url"], alice, Accept="text/html,*/*;q=0.8")
    assert resp.headers["Content-Type"] == "image/webp"

    for bad in ("size=300", "size=x", "size=256&v=" + "9" * 17):
        resp, _ = await get_thumb(client, f"/images/{image['id']}/thumbnail?{bad}", alice)
        assert resp.status == 422, bad


def test_accept_negotiation() -> None:
    assert accepts_webp(None) and accepts_webp("") and accepts_webp("*/*")
    assert accepts_webp("image/avif,image/webp,*/*;q=0.8")
    assert not accepts_webp("image/jpeg") and not accepts_webp("image/webp;q=0")
    assert not accepts_webp("image/*;q=0.8, image/webp;q=0.0")
    assert accepts_webp("image/webp;q=0.1, */*;q=0")
    assert not accepts_webp("image/webp;q=zero")


async def test_never_enlarged_orientation_alpha_and_first_frame(
    client: Client, alice: str
) -> None:
    small = make_image("PNG", (100, 40))
    # Stored 400x200 landscape, EXIF orientation 6: upright it is a 200x400 portrait.
    rotated = make_image("JPEG", (200, 400), exif_orientation=6)
    alpha = make_image("PNG", (300, 300), mode="RGBA", transparent=True, seed=4)
    gif = make_animated_gif((120, 90), frames=3, seed=7)
    body = await upload(client, alice, [("s.png", small), ("r.jpg", rotated),
                                        ("a.png", alpha), ("g.gif", gif)])
    thumbs = []
    for image in body["images"]:
        resp, data = await get_thumb(client, image["thumbnail_url"], alice)
        assert resp.status == 200
        thumbs.append(Image.open(io.BytesIO(data)))
    assert thumbs[0].size == (100, 40)  # smaller than 256: as it is
    assert thumbs[1].size == (128, 256)  # upright
    upright = Image.open(io.BytesIO(rotated))
    assert upright.size == (400, 200) and upright.getexif()[0x0112] == 6

    # Alpha is kept in the WebP, and flattened onto white in the JPEG.
    source = Image.open(io.BytesIO(alpha)).convert("RGBA")
    clear = next((x, y) for x in range(0, 300, 3) for y in range(0, 300, 3)
                 if source.getpixel((x, y))[3] == 0)  # type: ignore[index]
    thumb = thumbs[2].convert("RGBA")
    assert thumb.getpixel((clear[0] * 256 // 300, clear[1] * 256 // 300))[3] < 30  # type: ignore[index]
    resp, data = await get_thumb(client, body["images"][2]["thumbnail_url"], alice,
                                 Accept="image/jpeg")
    flat = Image.open(io.BytesIO(data)).convert("RGB")
    assert min(flat.getpixel((clear[0] * 256 // 300, clear[1] * 256 // 300))) > 225  # type: ignore[arg-type]

    # An animated GIF: its first frame.
    first = picture((120, 90), 7).convert("RGB")
    got = thumbs[3].convert("RGB")
    assert got.size == (120, 90)
    diff = np.abs(np.asarray(first, np.int16) - np.asarray(got, np.int16)).mean()
    assert diff < 12, diff


async def test_no_metadata_at_all(client: Client, alice: str) -> None:
    with_gps = jpeg_with((1600, 1200), app1(gps_exif(orientation=1)))
    xmp = jpeg_xmp("attributes")
    out = io.BytesIO()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    picture((700, 500), seed=2).save(out, "JPEG", icc_profile=srgb)
    body = await upload(client, alice, [("gps.jpg", with_gps), ("xmp.jpg", xmp),
                                        ("icc.jpg", out.getvalue())], visibility="public")
    for image in body["images"]:
        for url in (image["thumbnail_url"], image["preview_url"]):
            resp, data = await get_thumb(client, url)  # anonymous, as anyone would
            assert resp.status == 200
            assert set(riff_chunks(data)) <= {b"VP8 ", b"VP8L", b"VP8X", b"ALPH"}, url
            assert find_location(data) == []
            resp, data = await get_thumb(client, url, Accept="image/jpeg")
            markers = {data[i + 1] for i in range(len(data) - 1) if data[i] == 0xFF}
            assert 0xE1 not in markers and 0xE2 not in markers  # no EXIF, XMP or ICC
            assert find_location(data) == []


# --- visibility and caching ------------------------------------------------------------------


async def test_a_weak_etag_revalidates_the_thumbnail(client: Client, alice: str) -> None:
    (image,) = (await upload(client, alice, [("w.png", make_image("PNG", (640, 480)))])
                )["images"]
    for accept in ("image/webp", "image/jpeg"):
        resp, data = await get_thumb(client, image["thumbnail_url"], alice, Accept=accept)
        assert resp.status == 200 and data
        etag = resp.headers["ETag"]
        assert not etag.startswith("W/")
        for header in (f"W/{etag}", f'"a", W/{etag}'):
            resp, data = await get_thumb(client, image["thumbnail_url"], alice, Accept=accept,
                                         **{"If-None-Match": header})
            assert resp.status == 304 and data == b"", (accept, header)
            assert resp.headers["ETag"] == etag
        resp, data = await get_thumb(client, image["thumbnail_url"], alice, Accept=accept,
                                     **{"If-None-Match": 'W/"a"'})
        assert resp.status == 200 and data


async def test_visibility_and_caching(client: Client, alice: str, bob: str) -> None:
    png = make_image("PNG", (500, 300))
    public = (await upload(client, alice, [("p.png", png)], visibility="public"))["images"][0]
    private = (await upload(client, alice, [("q.png", png)]))["images"][0]

    for key in (None, bob):  # others' private thumbnails do not exist for them
        for url in (private["thumbnail_url"], private["preview_url"]):
            resp, _ = await get_thumb(client, url, key)
            assert resp.status == 404, (key, url)
    resp, _ = await get_thumb(client, private["thumbnail_url"], alice)
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "private, max-age=31536000, immutable"

    # Anyone but the owner keeps a public picture's thumbnail PUBLIC_CACHE_SECONDS at most
    # (default 300), never `immutable`: it must not outlive a switch to private by long.
    resp, body = await get_thumb(client, public["thumbnail_url"])
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    assert resp.headers["Vary"] == "Accept, Authorization, X-API-Key"
    resp_key, _ = await get_thumb(client, public["thumbnail_url"], bob)
    assert resp_key.headers["Cache-Control"] == "private, max-age=300"
    resp_own, _ = await get_thumb(client, public["thumbnail_url"], alice)
    assert resp_own.headers["Cache-Control"] == "private, max-age=31536000, immutable"
    resp_old, _ = await get_thumb(client, f"/images/{public['id']}/thumbnail?size=256")
    assert resp_old.headers["Cache-Control"] == "public, max-age=300"

    etag = resp.headers["ETag"]
    resp, data = await get_thumb(client, public["thumbnail_url"], **{"If-None-Match": etag})
    assert resp.status == 304 and data == b"" and resp.headers["ETag"] == etag
    resp, data = await get_thumb(client, public["thumbnail_url"],
                                 **{"If-None-Match": etag, "Accept": "image/jpeg"})
    assert resp.status == 200 and data[:2] == b"\xff\xd8"  # another representation

    resp = await client.head(public["thumbnail_url"])
    assert resp.status == 200 and await resp.read() == b""
    assert resp.headers["Content-Length"] == str(len(body))
    resp = await client.patch(f"/images/{public['id']}", headers=bearer(alice),
                              json={"visibility": "private"})
    assert resp.status == 200
    resp, _ = await get_thumb(client, public["thumbnail_url"])
    assert resp.status == 404


# --- lifecycle: all or nothing, deletion, sweep, lost objects, races --------------------------


async def test_a_failed_batch_leaves_no_thumbnail(
    client: Client, alice: str, clean_db: str
) -> None:
    good = make_image("JPEG", (800, 600))
    corrupt = make_image("PNG", (300, 300))[:200]
    body = await upload(client, alice, [("a.jpg", good), ("b.jpg", good), ("c.png", corrupt)],
                        status=422)
    assert "file 3" in body["error"]["message"]
    await asyncio.sleep(0.1)
    assert await object_keys(client) == []
    assert await rows(clean_db, "select * from image_thumbnails") == []


async def test_deletion_removes_every_thumbnail(client: Client, alice: str) -> None:
    files = [(f"{i}.png", make_image("PNG", (1200, 900), seed=i)) for i in range(3)]
    images = (await upload(client, alice, files))["images"]
    for image in images:
        assert (await get_thumb(client, image["preview_url"], alice))[0].status == 200
    assert len(await object_keys(client)) == 3 * 3
    resp = await client.delete(f"/images/{images[0]['id']}", headers=bearer(alice))
    assert resp.status == 204
    assert len(await object_keys(client)) == 2 * 3
    resp = await client.post("/images/delete", headers=bearer(alice),
                             json={"ids": [images[1]["id"]]})
    assert resp.status == 200
    assert len(await object_keys(client)) == 1 * 3
    resp = await client.delete("/users/me", headers=basic("alice"))
    assert resp.status == 204
    assert await object_keys(client) == []


async def test_sweep_knows_thumbnails(client: Client, alice: str) -> None:
    assert client.app is not None
    app = client.app
    images = (await upload(client, alice, [("a.png", make_image("PNG", (600, 400)))]))["images"]
    assert (await get_thumb(client, images[0]["preview_url"], alice))[0].status == 200

    async def chunks() -> Any:
        yield b"RIFF"

    orphan = "0c6a8f54-orphan-256-0011223344556677.webp"  # made, but its row never written
    await app[STORAGE].put(orphan, chunks())
    report = await sweep(app[POOL], app[QUERIES], app[STORAGE], grace=timedelta(0))
    assert report.orphans_removed == [orphan]
    assert report.rows_without_object == []
    assert report.objects_seen == 4  # original, two thumbnails, the orphan


async def test_a_lost_thumbnail_is_made_again(
    client: Client, alice: str, clean_db: str
) -> None:
    assert client.app is not None
    image = (await upload(client, alice, [("a.jpg", make_image("JPEG", (640, 480)))])
             )["images"][0]
    resp, before = await get_thumb(client, image["thumbnail_url"], alice)
    (row,) = await rows(clean_db, "select storage_key from image_thumbnails")
    await client.app[STORAGE].delete(row["storage_key"])
    resp, after = await get_thumb(client, image["thumbnail_url"], alice)
    assert resp.status == 200 and after == before  # the same picture, made the same way
    (new,) = await rows(clean_db, "select storage_key from image_thumbnails")
    assert new["storage_key"] != row["storage_key"]

    # Thumbnails are written without fsync: one a crash cut short is noticed and remade.
    async def cut_short() -> Any:
        yield after[: len(after) // 2]

    await client.app[STORAGE].put(new["storage_key"], cut_short())
    resp, again = await get_thumb(client, image["thumbnail_url"], alice)
    assert resp.status == 200 and again == before
    assert new["storage_key"] not in await object_keys(client)  # the damaged one is gone


async def test_concurrent_first_requests_make_one_thumbnail(
    client: Client, alice: str, clean_db: str
) -> None:
    image = (await upload(client, alice, [("a.jpg", make_image("JPEG", (2000, 1500)))])
             )["images"][0]
    answers = await asyncio.gather(*(get_thumb(client, image["preview_url"], alice)
                                     for _ in range(6)))
    assert {resp.status for resp, _ in answers} == {200}
    assert len({data for _, data in answers}) == 1
    made = await rows(clean_db, "select storage_key from image_thumbnails where size = 1024")
    assert len(made) == 1
    await asyncio.sleep(0.2)  # the losers' objects are removed after their answers
    keys = await object_keys(client)
    previews = [k for k in keys if k.endswith("-1024.webp")]
    assert len(previews) == 1 and made[0]["storage_key"] in keys


# --- backfill ----------------------------------------------------------------------------------


@pytest.fixture
def upload_thumbnails() -> bool:
    return True


@pytest.fixture
def config(config: Config, upload_thumbnails: bool) -> Config:
    return dataclasses.replace(config, upload_thumbnails=upload_thumbnails)


async def test_backfill_resumes_after_an_interruption(
    client: Client, alice: str, clean_db: str, config: Config
) -> None:
    assert client.app is not None
    files = [(f"{i}.png", make_image("PNG", (400, 300), seed=i)) for i in range(12)]
    await upload(client, alice, files[:6])
    await upload(client, alice, files[6:])
    # As images uploaded before thumbnails existed: no rows, no objects.
    for row in await rows(clean_db, "delete from image_thumbnails returning storage_key"):
        await client.app[STORAGE].delete(row["storage_key"])

    class Watched(Progress):
        halfway = asyncio.Event()

        def advance(self, done: int = 1, failed: int = 0) -> None:
            super().advance(done, failed)
            if self.done >= 5:
                self.halfway.set()

    pool = await create_pool(clean_db, max_size=2)
    try:
        with ThreadPoolExecutor(2) as cpu:
            # Interrupted as Ctrl-C interrupts it: the running task is cancelled.
            run = asyncio.ensure_future(backfill(
                pool, load_queries(), client.app[STORAGE], cpu, workers=2,
                progress=Watched(12, "thumbnails", out=io.StringIO())))
            await Watched.halfway.wait()
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run
            done = len(await rows(clean_db, "select 1 from image_thumbnails"))
            assert 5 <= done < 12
            out = io.StringIO()
            report = await backfill(pool, load_queries(), client.app[STORAGE], cpu,
                                    progress=Progress(12 - done, "thumbnails", out=out))
            assert (report.done, report.failed) == (12 - done, 0)
            assert f"{12 - done}/{12 - done} (100%)" in out.getvalue()
    finally:
        await pool.close()
    assert len(await rows(clean_db, "select 1 from image_thumbnails where size = 256")) == 12
    report_sweep = await sweep(client.app[POOL], client.app[QUERIES], client.app[STORAGE],
                               grace=timedelta(0), dry_run=True)
    assert report_sweep.orphans_removed == []  # every stored thumbnail has its row


async def test_uploads_without_thumbnails_and_the_backfill_command(
    client: Client, alice: str, clean_db: str, config: Config, tmp_path: Path
) -> None:
    assert client.app is not None
    files = [(f"{i}.jpg", make_image("JPEG", (900, 600), seed=i)) for i in range(3)]
    body = await upload(client, alice, files)
    for row in await rows(clean_db, "delete from image_thumbnails returning storage_key"):
        await client.app[STORAGE].delete(row["storage_key"])
    lost = body["images"][0]["id"]  # one original lost: skipped, not a failure
    await client.app[STORAGE].delete((await rows(
        clean_db, f"select storage_key from images where id = '{lost}'"))[0]["storage_key"])
    env = {**os.environ, "DATABASE_URL": clean_db, "STORAGE_URL": config.storage_url,
           "DATA_DIR": str(config.data_dir)}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "server", "thumbnails", "--size", "256",
                         "--size", "1024"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "thumbnails 256px: made 2; skipped 1" in result.stdout
    assert "thumbnails 1024px: made 2; skipped 1" in result.stdout
    assert "thumbnails 256px [" in result.stderr  # the progress line
    for image in body["images"][1:]:
        resp, _ = await get_thumb(client, image["preview_url"], alice)
        assert resp.status == 200


@pytest.mark.parametrize("upload_thumbnails", [False])
async def test_uploads_can_leave_thumbnails_to_their_first_request(
    client: Client, clean_db: str
) -> None:
    key = str((await sign_up(client, "carol"))["api_key"])
    image = (await upload(client, key, [("a.jpg", make_image("JPEG", (900, 600)))]))["images"][0]
    assert await rows(clean_db, "select 1 from image_thumbnails") == []
    resp, data = await get_thumb(client, image["thumbnail_url"], key)
    assert resp.status == 200 and Image.open(io.BytesIO(data)).size == (256, 171)
    assert len(await rows(clean_db, "select 1 from image_thumbnails")) == 1
