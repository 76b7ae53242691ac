"""Images over HTTP, on a real PostgreSQL and on both storage back-ends."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import struct
import time
import uuid
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image

from server.config import Config
from server.keys import STORAGE
from tests.conftest import bearer, storage_url_of
from tests.images import make_image

Client = TestClient[web.Request, web.Application]
Fields = Sequence[tuple[str, str]]


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test here runs on the local folder and on S3 (moto's server on loopback)."""
    return storage_url_of(request, tmp_path, "originals")


MAX_BYTES = 1024 * 1024


@pytest.fixture
def config(config: Config) -> Config:
    """Small limits, so that the tests can reach them cheaply."""
    return dataclasses.replace(config, max_upload_bytes=MAX_BYTES, max_files_per_request=3,
                               max_image_pixels=4_000_000)


def noise_png(width: int, height: int) -> bytes:
    """A PNG that does not compress: random pixels."""
    out = io.BytesIO()
    Image.frombytes("RGB", (width, height), os.urandom(width * height * 3)).save(out, "PNG")
    return out.getvalue()


def huge_png_header(width: int, height: int) -> bytes:
    """A few hundred bytes claiming width x height pixels: a decompression bomb's header."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def form(files: Sequence[tuple[str, bytes]], fields: Fields = (), after: Fields = ()) -> FormData:
    data = FormData(default_to_multipart=True)
    for name, value in fields:
        data.add_field(name, value)
    for filename, content in files:
        data.add_field("file", io.BytesIO(content), filename=filename,
                       content_type="application/octet-stream")
    for name, value in after:
        data.add_field(name, value)
    return data


async def upload(
    client: Client, key: str, files: Sequence[tuple[str, bytes]], fields: Fields = (),
    after: Fields = (), status: int = 201,
) -> Any:
    resp = await client.post("/images", data=form(files, fields, after), headers=bearer(key))
    body = await resp.json()
    assert resp.status == status, body
    return body


async def stored_keys(client: Client) -> list[str]:
    assert client.app is not None
    return [info.key async for info in client.app[STORAGE].list()]


async def image_count(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval("select count(*) from images"))
    finally:
        await conn.close()


async def assert_nothing_stored(client: Client, dsn: str) -> None:
    assert await stored_keys(client) == []
    assert await image_count(dsn) == 0


JPEG = make_image("JPEG", (640, 480), seed=1)
PNG = make_image("PNG", (320, 240), seed=2)


# --- upload ------------------------------------------------------------------------------


async def test_upload_one_image(client: Client, alice: str) -> None:
    body = await upload(client, alice, [("holiday.photo.jpg", JPEG)])
    (image,) = body["images"]
    assert set(image) == {
        "id", "owner", "title", "description", "tags", "visibility", "filename", "content_type",
        "width", "height", "size_bytes", "sha256", "hashes", "created_at", "updated_at",
        "file_url", "thumbnail_url", "preview_url", "near_duplicates",
    }
    assert image["near_duplicates"] == []
    assert image["owner"] == "alice"
    assert image["title"] == "holiday.photo"
    assert image["filename"] == "holiday.photo.jpg"
    assert image["visibility"] == "private"
    assert image["tags"] == [] and image["description"] == ""
    assert image["content_type"] == "image/jpeg"
    assert (image["width"], image["height"]) == (640, 480)
    assert image["size_bytes"] == len(JPEG)
    assert image["sha256"] == hashlib.sha256(JPEG).hexdigest()
    assert set(image["hashes"]) == {"phash", "dhash", "ahash", "whash", "colorhash"}
    assert all(len(image["hashes"][h]) == 16 for h in ("phash", "dhash", "ahash", "whash"))
    assert image["file_url"] == f"/images/{image['id']}/file"

    resp = await client.get(f"/images/{image['id']}", headers=bearer(alice))
    assert await resp.json() == {k: v for k, v in image.items() if k != "near_duplicates"}
    resp = await client.get(image["file_url"], headers=bearer(alice))
    assert resp.status == 200
    assert await resp.read() == JPEG
    assert resp.headers["Content-Type"] == "image/jpeg"
    assert resp.headers["ETag"] == f'"{image["sha256"]}"'
    # Object keys are random, never the client's file name nor the image id: the original
    # and its small thumbnail.
    keys = await stored_keys(client)
    assert len(keys) == 2 and sum(k.endswith(".webp") for k in keys) == 1
    assert not any("holiday" in key or image["id"] in key for key in keys)


async def test_upload_many_with_fields_before_and_after(client: Client, alice: str) -> None:
    files = [("a.jpg", JPEG), ("b.png", PNG), ("c.webp", make_image("WEBP", (64, 48), seed=3))]
    body = await upload(
        client, alice, files,
        fields=[("tags", " Sunset, beach ,SUNSET"), ("visibility", "public")],
        after=[("tags", "Holiday"), ("description", "Line one\nline two"), ("title", "Trip")],
    )
    images = body["images"]
    assert [i["filename"] for i in images] == ["a.jpg", "b.png", "c.webp"]
    assert [i["content_type"] for i in images] == ["image/jpeg", "image/png", "image/webp"]
    for image in images:
        assert image["tags"] == ["sunset", "beach", "holiday"]
        assert image["visibility"] == "public"
        assert image["title"] == "Trip"
        assert image["description"] == "Line one\nline two"
    assert len(await stored_keys(client)) == 3 * 2  # originals and their thumbnails


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF"])
async def test_every_accepted_format(client: Client, alice: str, fmt: str) -> None:
    content = make_image(fmt, (50, 40), seed=4)
    (image,) = (await upload(client, alice, [("x.bin", content)]))["images"]
    assert image["content_type"] == f"image/{fmt.lower()}"
    assert (image["width"], image["height"]) == (50, 40)


async def test_the_format_comes_from_the_bytes(client: Client, alice: str, clean_db: str) -> None:
    (image,) = (await upload(client, alice, [("really-a-png.jpg", PNG)]))["images"]
    assert image["content_type"] == "image/png"

    body = await upload(client, alice, [("evil.jpg", b"<svg xmlns='...'></svg>" * 10)],
                        status=415)
    assert body["error"]["code"] == "unsupported_media_type"
    assert "evil.jpg" in body["error"]["details"]["part"]
    assert await image_count(clean_db) == 1


async def test_a_bad_part_rejects_the_whole_batch(
    client: Client, alice: str, clean_db: str
) -> None:
    truncated = JPEG[: len(JPEG) // 2]
    body = await upload(client, alice, [("good.jpg", JPEG), ("broken.jpg", truncated),
                                        ("good2.png", PNG)], status=422)
    error = body["error"]
    assert error["code"] == "validation_error"
    assert list(error["details"]["parts"]) == ['file 2 ("broken.jpg")']
    await assert_nothing_stored(client, clean_db)


async def test_an_unsupported_part_after_good_ones_leaves_nothing(
    client: Client, alice: str, clean_db: str
) -> None:
    body = await upload(client, alice, [("good.jpg", JPEG), ("notes.txt", b"hello " * 100)],
                        status=415)
    assert body["error"]["details"]["part"] == 'file 2 ("notes.txt")'
    await assert_nothing_stored(client, clean_db)


async def test_invalid_fields_after_the_files_leave_nothing(
    client: Client, alice: str, clean_db: str
) -> None:
    for after, field in [
        ([("visibility", "friends")], "visibility"),
        ([("tags", ",".join(f"t{i}" for i in range(31)))], "tags"),
        ([("tags", "x" * 51)], "tags"),
        ([("title", "a" * 201)], "title"),
        ([("title", "one"), ("title", "two")], "title"),
        ([("colour", "red")], "colour"),
    ]:
        body = await upload(client, alice, [("a.jpg", JPEG)], after=after, status=422)
        assert field in body["error"]["details"], body
    await assert_nothing_stored(client, clean_db)


async def test_limits(client: Client, alice: str, clean_db: str) -> None:
    big = noise_png(800, 800)
    assert len(big) > MAX_BYTES
    body = await upload(client, alice, [("big.png", big)], status=413)
    assert body["error"]["code"] == "payload_too_large"
    await assert_nothing_stored(client, clean_db)


async def test_too_many_files_is_413(client: Client, alice: str, clean_db: str) -> None:
    tiny = make_image("PNG", (8, 8), seed=6)
    body = await upload(client, alice, [(f"{i}.png", tiny) for i in range(4)], status=413)
    assert body["error"]["details"]["max_files"] == 3
    await assert_nothing_stored(client, clean_db)


async def test_too_many_pixels_is_refused_before_decoding(
    client: Client, alice: str, clean_db: str
) -> None:
    bomb = huge_png_header(30_000, 30_000)
    start = time.perf_counter()
    body = await upload(client, alice, [("bomb.png", bomb)], status=413)
    assert time.perf_counter() - start < 1.0
    assert body["error"]["details"]["max_pixels"] == 4_000_000
    await assert_nothing_stored(client, clean_db)


async def test_upload_needs_a_key_a_file_and_multipart(client: Client, alice: str) -> None:
    resp = await client.post("/images", data=form([("a.jpg", JPEG)]))
    assert resp.status == 401
    resp = await client.post("/images", data=form([], fields=[("title", "x")]),
                             headers=bearer(alice))
    assert resp.status == 422
    assert "file" in (await resp.json())["error"]["details"]
    resp = await client.post("/images", json={"file": "x"}, headers=bearer(alice))
    assert resp.status == 415


def raw_multipart(filename: bytes, content: bytes, param: bytes = b"") -> tuple[bytes, str]:
    """One file part whose name holds bytes a well-behaved client would never send."""
    boundary = "b0undary7f3a"
    name_param = param or b'filename="' + filename + b'"'
    body = (b"--" + boundary.encode() + b"\r\n"
            b'Content-Disposition: form-data; name="file"; ' + name_param + b"\r\n"
            b"Content-Type: image/jpeg\r\n\r\n" + content + b"\r\n--" + boundary.encode()
            + b"--\r\n")
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(("raw", "expected"), [
    (b"../../etc/passwd.jpg", "passwd.jpg"),
    (b"C:\\\\Users\\\\me\\\\photo.jpg", "photo.jpg"),  # quoted-string escapes
    (b"caf\xc3\xa9.jpg", "café.jpg"),
    (b"bad\xff\xfeutf8.jpg", "bad\ufffd\ufffdutf8.jpg"),
    (b"", "image-1"),
])
async def test_filenames_are_sanitised(
    client: Client, alice: str, raw: bytes, expected: str
) -> None:
    body, content_type = raw_multipart(raw, JPEG)
    resp = await client.post("/images", data=body,
                             headers={**bearer(alice), "Content-Type": content_type})
    assert resp.status == 201, await resp.text()
    (image,) = (await resp.json())["images"]
    assert image["filename"] == expected


async def test_control_characters_in_part_headers_are_400(client: Client, alice: str) -> None:
    body, content_type = raw_multipart(b"pass\x01wd.jpg", JPEG)
    resp = await client.post("/images", data=body,
                             headers={**bearer(alice), "Content-Type": content_type})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"


# --- reading ------------------------------------------------------------------------------


async def test_visibility_rules(client: Client, alice: str, bob: str) -> None:
    private = (await upload(client, alice, [("p.jpg", JPEG)]))["images"][0]
    public = (await upload(client, alice, [("q.png", PNG)], fields=[("visibility", "public")])
              )["images"][0]

    for headers in (bearer(bob), {}):
        for path in (f"/images/{private['id']}", f"/images/{private['id']}/file"):
            assert (await client.get(path, headers=headers)).status == 404
        assert (await client.get(f"/images/{public['id']}", headers=headers)).status == 200
        listed = await (await client.get("/images", headers=headers)).json()
        assert [i["id"] for i in listed["images"]] == [public["id"]]

    # Someone else's private image is 404 for every verb; a public one is 403 for changes.
    for method in ("PATCH", "DELETE"):
        resp = await client.request(method, f"/images/{private['id']}", headers=bearer(bob),
                                    json={"title": "mine"})
        assert resp.status == 404
        resp = await client.request(method, f"/images/{public['id']}", headers=bearer(bob),
                                    json={"title": "mine"})
        assert resp.status == 403
    listed = await (await client.get("/images", headers=bearer(alice))).json()
    assert [i["id"] for i in listed["images"]] == [public["id"], private["id"]]


async def test_list_filters_and_pagination(client: Client, alice: str, bob: str) -> None:
    ids = []
    for i in range(5):
        fields = [("tags", "even" if i % 2 == 0 else "odd"), ("visibility", "public")]
        ids.append((await upload(client, alice, [(f"{i}.png", PNG)], fields=fields)
                    )["images"][0]["id"])
    await upload(client, bob, [("bob.png", PNG)])

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", "owner": "alice", **({"cursor": cursor} if cursor else {})}
        page = await (await client.get("/images", params=params, headers=bearer(bob))).json()
        seen += [i["id"] for i in page["images"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    async def listed(params: dict[str, str], key: str = alice) -> list[str]:
        resp = await client.get("/images", params=params, headers=bearer(key))
        assert resp.status == 200
        return [i["id"] for i in (await resp.json())["images"]]

    assert await listed({"tag": "EVEN"}) == [ids[4], ids[2], ids[0]]
    assert len(await listed({"owner": "me"}, key=bob)) == 1
    assert len(await listed({"owner": "BOB"}, key=bob)) == 1
    assert await listed({"owner": "nobody"}) == []
    assert await listed({"visibility": "private"}) == []
    assert len(await listed({"visibility": "private"}, key=bob)) == 1

    for params in ({"limit": "0"}, {"limit": "101"}, {"cursor": "garbage!"},
                   {"visibility": "secret"}, {"limit": "x"}):
        resp = await client.get("/images", params=params, headers=bearer(alice))
        assert resp.status == 422, params
    resp = await client.get("/images", params={"owner": "me"})
    assert resp.status == 422


async def test_a_list_cursor_is_bound_to_who_asked(client: Client, alice: str, bob: str) -> None:
    """bob, or anyone without a key, replaying alice's cursor is refused: a cursor continues
    the listing of the viewer it was issued to, and never shows them alice's private images."""
    private = [(await upload(client, alice, [(f"p{i}.png", PNG)]))["images"][0]["id"]
               for i in range(3)]
    public = (await upload(client, alice, [("q.png", PNG)], fields=[("visibility", "public")])
              )["images"][0]["id"]
    first = await (await client.get("/images", params={"limit": "1"},
                                    headers=bearer(alice))).json()
    assert [i["id"] for i in first["images"]] == [public]
    params = {"limit": "1", "cursor": first["next_cursor"]}
    resp = await client.get("/images", params=params, headers=bearer(alice))
    assert [i["id"] for i in (await resp.json())["images"]] == [private[-1]]
    for headers in (bearer(bob), {}):
        resp = await client.get("/images", params=params, headers=headers)
        body = await resp.json()
        assert not set(private) & {i["id"] for i in body.get("images", [])}
        assert resp.status == 422, body
        assert body["error"]["details"] == {
            "cursor": ["Not a cursor this service issued for this request."]}


@pytest.mark.parametrize("image_id", ["nope", "123", "00000000-0000-0000-0000-00000000000z"])
async def test_malformed_ids_are_422(client: Client, alice: str, image_id: str) -> None:
    for method, path in (("GET", f"/images/{image_id}"), ("GET", f"/images/{image_id}/file"),
                         ("PATCH", f"/images/{image_id}"), ("DELETE", f"/images/{image_id}")):
        resp = await client.request(method, path, headers=bearer(alice), json={"title": "x"})
        assert resp.status == 422, (method, path)


async def test_a_weak_etag_revalidates_the_file(client: Client, alice: str) -> None:
    """If-None-Match compares weakly (RFC 9110 §13.1.2): a cache that stored the ETag as
    W/"..." (a proxy that compressed it, a browser) still gets 304."""
    image = (await upload(client, alice, [("w.jpg", JPEG)]))["images"][0]
    url = image["file_url"]
    etag = (await client.get(url, headers=bearer(alice))).headers["ETag"]
    assert etag == f'"{image["sha256"]}"'
    for header in (f"W/{etag}", f'"a", W/{etag}', f'W/"a",W/{etag}'):
        resp = await client.get(url, headers={**bearer(alice), "If-None-Match": header})
        assert resp.status == 304, header
        assert resp.headers["ETag"] == etag and await resp.read() == b""
    resp = await client.get(url, headers={**bearer(alice), "If-None-Match": 'W/"a"'})
    assert resp.status == 200 and await resp.read() == JPEG


async def test_download_conditional_and_ranges(client: Client, alice: str) -> None:
    image = (await upload(client, alice, [("r.jpg", JPEG)]))["images"][0]
    url, size = image["file_url"], len(JPEG)
    etag = f'"{image["sha256"]}"'

    resp = await client.get(url, headers={**bearer(alice), "If-None-Match": etag})
    assert resp.status == 304
    resp = await client.get(url, headers={**bearer(alice), "If-None-Match": '"other", ' + etag})
    assert resp.status == 304

    resp = await client.get(url, headers={**bearer(alice), "Range": "bytes=10-99"})
    assert resp.status == 206
    assert resp.headers["Content-Range"] == f"bytes 10-99/{size}"
    assert await resp.read() == JPEG[10:100]

    resp = await client.get(url, headers={**bearer(alice), "Range": "bytes=-100"})
    assert resp.status == 206 and await resp.read() == JPEG[-100:]
    resp = await client.get(url, headers={**bearer(alice), "Range": f"bytes=100-{size * 2}"})
    assert resp.status == 206 and await resp.read() == JPEG[100:]

    resp = await client.get(url, headers={**bearer(alice), "Range": f"bytes={size}-"})
    assert resp.status == 416
    assert resp.headers["Content-Range"] == f"bytes */{size}"
    resp = await client.get(url, headers={**bearer(alice), "Range": "pages=1-2"})
    assert resp.status == 200 and await resp.read() == JPEG

    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Cache-Control"].startswith("private")


async def test_content_disposition_stays_well_formed(client: Client, alice: str) -> None:
    # RFC 5987 encoding is the one way a CR/LF can reach the server inside a file name.
    param = b"filename*=UTF-8''we%22ird%0D%0Aname%20%C3%BCn%C3%AF.jpg"
    body, content_type = raw_multipart(b"", JPEG, param)
    resp = await client.post("/images", data=body,
                             headers={**bearer(alice), "Content-Type": content_type})
    assert resp.status == 201, await resp.text()
    (image,) = (await resp.json())["images"]
    assert image["filename"] == 'we"irdname ünï.jpg'
    resp = await client.get(image["file_url"], headers=bearer(alice))
    header = resp.headers["Content-Disposition"]
    assert "\r" not in header and "\n" not in header
    assert header.startswith('inline; filename="we_ird')
    assert "filename*=UTF-8''we%22irdname%20%C3%BCn%C3%AF.jpg" in header


# --- changing and deleting ----------------------------------------------------------------


async def test_patch(client: Client, alice: str) -> None:
    image = (await upload(client, alice, [("p.jpg", JPEG)]))["images"][0]
    url = f"/images/{image['id']}"
    resp = await client.patch(url, headers=bearer(alice), json={
        "title": "  New title ", "tags": ["A", "b", "c", "a"], "visibility": "public",
    })
    assert resp.status == 200
    changed = await resp.json()
    assert changed["title"] == "New title"
    assert changed["tags"] == ["a", "b", "c"]
    assert changed["visibility"] == "public"
    assert changed["description"] == image["description"]
    assert changed["updated_at"] > image["updated_at"]

    for payload in ({}, {"visibility": "friends"}, {"tags": ["x" * 51]}, {"title": 5},
                    {"tags": [f"t{i}" for i in range(31)]}, {"owner": "bob"},
                    {"tags": ["b,c"]}):  # in JSON a tag is one tag: commas split form fields
        resp = await client.patch(url, headers=bearer(alice), json=payload)
        assert resp.status == 422, payload


async def test_delete_one_and_many(client: Client, alice: str, bob: str, clean_db: str) -> None:
    mine = [(await upload(client, alice, [(f"{i}.png", PNG)]))["images"][0]["id"]
            for i in range(3)]
    theirs = (await upload(client, bob, [("b.png", PNG)]))["images"][0]["id"]

    resp = await client.delete(f"/images/{mine[0]}", headers=bearer(alice))
    assert resp.status == 204
    assert (await client.get(f"/images/{mine[0]}", headers=bearer(alice))).status == 404
    assert len(await stored_keys(client)) == 3 * 2  # each original and its thumbnail

    missing = str(uuid.uuid4())
    resp = await client.post("/images/delete", headers=bearer(alice),
                             json={"ids": [mine[1], mine[2], theirs, missing, mine[0]]})
    assert resp.status == 200
    assert await resp.json() == {"deleted": [mine[1], mine[2]],
                                 "not_found": [theirs, missing, mine[0]]}
    assert len(await stored_keys(client)) == 1 * 2
    assert await image_count(clean_db) == 1

    payloads: list[dict[str, Any]] = [{"ids": []}, {"ids": ["x"]}, {"ids": [missing] * 101}, {}]
    for payload in payloads:
        resp = await client.post("/images/delete", headers=bearer(alice), json=payload)
        assert resp.status == 422


async def test_deleting_the_account_deletes_its_images(
    client: Client, alice: str, bob: str, clean_db: str
) -> None:
    await upload(client, alice, [("a.jpg", JPEG), ("b.png", PNG)])
    await upload(client, bob, [("c.png", PNG)])
    from tests.conftest import basic

    resp = await client.delete("/users/me", headers=basic("alice"))
    assert resp.status == 204
    assert len(await stored_keys(client)) == 1 * 2  # bob's original and thumbnail
    assert await image_count(clean_db) == 1


async def test_exif_orientation_gives_the_upright_size(client: Client, alice: str) -> None:
    # Stored as 100x200 pixels with orientation 6: upright it is 200x100.
    rotated = make_image("JPEG", (200, 100), seed=7, exif_orientation=6)
    assert Image.open(io.BytesIO(rotated)).size == (100, 200)
    (image,) = (await upload(client, alice, [("phone.jpg", rotated)]))["images"]
    assert (image["width"], image["height"]) == (200, 100)


async def test_upload_is_documented(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/images"]["post"]
    assert "multipart/form-data" in operation["requestBody"]["content"]
    assert {"201", "413", "415", "422"} <= set(operation["responses"])
