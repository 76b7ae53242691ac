"""Idempotency-Key on POST /images, and POST /images/known: safe retries, over HTTP and raw
sockets, against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import io
import socket
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.keys import STORAGE
from tests.conftest import bearer, sign_up
from tests.images import make_image
from tests.raw_http import form as raw_form

Client = TestClient[web.Request, web.Application]
JPEG = make_image("JPEG", (320, 240), seed=1)
PNG = make_image("PNG", (320, 240), seed=2)


def upload_form(*files: tuple[str, bytes], **fields: str) -> FormData:
    data = FormData(default_to_multipart=True)
    for name, value in fields.items():
        data.add_field(name, value)
    for filename, content in files:
        data.add_field("file", io.BytesIO(content), filename=filename,
                       content_type="application/octet-stream")
    return data


async def post(client: Client, key: str, idem: str | None, *files: tuple[str, bytes],
               **fields: str) -> tuple[int, Any, Any]:
    headers = {**bearer(key), **({"Idempotency-Key": idem} if idem is not None else {})}
    resp = await client.post("/images", data=upload_form(*files, **fields), headers=headers)
    return resp.status, await resp.json(), resp.headers


async def count(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def objects(client: Client) -> int:
    assert client.app is not None
    return len([k async for k in client.app[STORAGE].list()])


async def test_the_same_request_again_gets_the_first_answer(
    client: Client, alice: str, clean_db: str
) -> None:
    key = str(uuid.uuid4())
    status, first, headers = await post(client, alice, key, ("a.jpg", JPEG), ("b.png", PNG),
                                        visibility="public")
    assert status == 201 and "Idempotent-Replayed" not in headers
    stored = await objects(client)
    status, again, headers = await post(client, alice, key, ("a.jpg", JPEG), ("b.png", PNG),
                                        visibility="public")
    assert status == 201 and headers["Idempotent-Replayed"] == "true"
    assert again == first
    assert await count(clean_db, "select count(*) from images") == 2
    assert await objects(client) == stored  # nothing stored twice, not even for a moment
    # Without a key (or with another), the same files are uploaded again: keys are opt-in.
    status, _, _ = await post(client, alice, None, ("a.jpg", JPEG))
    assert status == 201
    assert await count(clean_db, "select count(*) from images") == 3


async def test_the_same_key_with_another_request_is_422(
    client: Client, alice: str, clean_db: str
) -> None:
    key = "retry-me"
    assert (await post(client, alice, key, ("a.jpg", JPEG)))[0] == 201
    for files, fields in ((("a.jpg", PNG),), {}), ((("b.jpg", JPEG),), {}), \
            ((("a.jpg", JPEG),), {"title": "other"}), \
            ((("a.jpg", JPEG), ("a.jpg", JPEG)), {}):
        status, body, _ = await post(client, alice, key, *files, **fields)
        assert status == 422, (files, fields)
        assert "Idempotency-Key" in body["error"]["details"]
    assert await count(clean_db, "select count(*) from images") == 1
    # Keys belong to their user: bob's "retry-me" is his own.
    bob = str((await sign_up(client, "bob"))["api_key"])
    assert (await post(client, bob, key, ("x.png", PNG)))[0] == 201


async def test_a_failed_request_frees_its_key(client: Client, alice: str, clean_db: str) -> None:
    status, body, _ = await post(client, alice, "k1", ("a.jpg", JPEG[:300]))
    assert status == 422
    status, body, _ = await post(client, alice, "k1", ("a.jpg", JPEG))
    assert status == 201
    assert await count(clean_db, "select count(*) from images") == 1


async def test_keys_expire_after_a_day(client: Client, alice: str, clean_db: str) -> None:
    assert (await post(client, alice, "old", ("a.jpg", JPEG)))[0] == 201
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("update idempotency_keys set created_at = now() - interval '25 hours'")
    finally:
        await conn.close()
    status, _, headers = await post(client, alice, "old", ("b.png", PNG))
    assert status == 201 and "Idempotent-Replayed" not in headers
    assert await count(clean_db, "select count(*) from images") == 2


@pytest.mark.parametrize("key", ["", "with space", "x" * 256, "naïve"])
async def test_malformed_keys_are_400(client: Client, alice: str, key: str) -> None:
    headers = {**bearer(alice), "Idempotency-Key": key}
    resp = await client.post("/images", data=upload_form(("a.jpg", JPEG)), headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == "bad_request"


async def test_a_concurrent_duplicate_gets_409_then_the_answer(
    client: Client, alice: str, clean_db: str
) -> None:
    release = asyncio.Event()
    boundary = "b0undary"
    head, tail = raw_form([("a.jpg", JPEG)], boundary=boundary).split(JPEG[:10], 1)

    async def slow_body() -> AsyncIterator[bytes]:
        yield head
        await release.wait()  # the first request is in flight until the test lets it go
        yield JPEG[:10] + tail

    headers = {**bearer(alice), "Idempotency-Key": "same",
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    first = asyncio.ensure_future(client.post("/images", data=slow_body(), headers=headers))
    for _ in range(100):
        if await count(clean_db, "select count(*) from idempotency_keys") == 1:
            break
        await asyncio.sleep(0.02)
    status, body, response_headers = await post(client, alice, "same", ("a.jpg", JPEG))
    assert status == 409 and body["error"]["code"] == "idempotency_key_in_use"
    assert response_headers["Retry-After"] == "1"
    release.set()
    resp = await first
    assert resp.status == 201
    first_body = await resp.json()
    status, again, response_headers = await post(client, alice, "same", ("a.jpg", JPEG))
    assert status == 201 and again == first_body
    assert await count(clean_db, "select count(*) from images") == 1


async def test_a_retry_after_a_lost_answer_stores_nothing_twice(
    client: Client, alice: str, clean_db: str
) -> None:
    """The client sends the whole request and hangs up before reading the answer (a timeout,
    a dropped connection); its retry with the same key gets that answer."""
    boundary = "lost4nswer"
    body = raw_form([("a.jpg", JPEG)], boundary=boundary)
    request = (f"POST /images HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\n"
               f"Idempotency-Key: lost\r\nContent-Length: {len(body)}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode() + body
    sock = socket.create_connection((client.host, client.port))
    await asyncio.to_thread(sock.sendall, request)
    for _ in range(200):
        if await count(clean_db, "select count(*) from idempotency_keys "
                                 "where status is not null") == 1:
            break
        await asyncio.sleep(0.02)
    sock.close()  # the answer is never read
    status, answer, headers = await post(client, alice, "lost", ("a.jpg", JPEG))
    assert status == 201 and headers["Idempotent-Replayed"] == "true"
    assert await count(clean_db, "select count(*) from images") == 1
    assert answer["images"][0]["sha256"] == hashlib.sha256(JPEG).hexdigest()


async def test_known_images_are_the_callers_own(client: Client, alice: str) -> None:
    bob = str((await sign_up(client, "bob"))["api_key"])
    assert (await post(client, alice, None, ("a.jpg", JPEG)))[0] == 201
    assert (await post(client, bob, None, ("b.png", PNG)))[0] == 201
    digests = [hashlib.sha256(d).hexdigest() for d in (JPEG, PNG, b"nothing")]
    resp = await client.post("/images/known", json={"sha256": digests + digests[:1]},
                             headers=bearer(alice))
    assert resp.status == 200
    (known,) = (await resp.json())["known"]
    assert known["sha256"] == digests[0]
    payloads: list[dict[str, Any]] = [{"sha256": []}, {"sha256": ["ABC"]},
                                      {"sha256": ["0" * 64] * 1001}, {}]
    for payload in payloads:
        resp = await client.post("/images/known", json=payload, headers=bearer(alice))
        assert resp.status == 422, payload
    resp = await client.post("/images/known", json={"sha256": digests})
    assert resp.status == 401
    assert (await client.patch("/images/known", json={}, headers=bearer(alice))).status == 405


async def test_keys_are_scoped_per_user(client: Client, alice: str, clean_db: str) -> None:
    """Two keys of one user are two uploads; one key value shared by three users is three
    uploads, each replayed to its own user only (no 409, 422 or answer across users)."""
    first = await post(client, alice, "k1", ("a.jpg", JPEG))
    second = await post(client, alice, "k2", ("a.jpg", JPEG))
    for status, _, headers in (first, second):
        assert status == 201 and "Idempotent-Replayed" not in headers
    assert first[1]["images"][0]["id"] != second[1]["images"][0]["id"]

    bob = str((await sign_up(client, "bob"))["api_key"])
    carol = str((await sign_up(client, "carol"))["api_key"])
    # bob sends alice's very request, carol another one, both under alice's key value.
    requests = {alice: (("a.jpg", JPEG),), bob: (("a.jpg", JPEG),), carol: (("b.png", PNG),)}
    answers = {}
    for (user, files), owner in zip(requests.items(), ("alice", "bob", "carol"), strict=True):
        status, body, headers = await post(client, user, "shared", *files)
        assert status == 201 and "Idempotent-Replayed" not in headers, (owner, body)
        assert body["images"][0]["owner"] == owner
        answers[user] = body
    assert len({body["images"][0]["id"] for body in answers.values()}) == 3
    for user, files in requests.items():
        status, body, headers = await post(client, user, "shared", *files)
        assert status == 201 and headers["Idempotent-Replayed"] == "true", body
        assert body == answers[user]
    assert await count(clean_db, "select count(*) from images") == 5


def metadata_form(metadata: str) -> FormData:
    data = FormData(default_to_multipart=True)
    data.add_field("file", io.BytesIO(JPEG), filename="a.jpg",
                   content_type="application/octet-stream")
    data.add_field("metadata", metadata, content_type="application/json")
    return data


async def test_changed_per_file_metadata_is_another_request(
    client: Client, alice: str, clean_db: str
) -> None:
    headers = {**bearer(alice), "Idempotency-Key": "with-metadata"}
    resp = await client.post("/images", data=metadata_form('[{"title": "Beach"}]'),
                             headers=headers)
    assert resp.status == 201
    first = await resp.json()
    assert first["images"][0]["title"] == "Beach"
    resp = await client.post("/images", data=metadata_form('[{"title": "Beach"}]'),
                             headers=headers)
    assert resp.status == 201 and resp.headers["Idempotent-Replayed"] == "true"
    assert await resp.json() == first
    for changed in ('[{"title": "Mountain"}]', '[{"title": "Beach", "tags": ["sea"]}]'):
        resp = await client.post("/images", data=metadata_form(changed), headers=headers)
        assert resp.status == 422, changed
        assert "Idempotency-Key" in (await resp.json())["error"]["details"]
    assert await count(clean_db, "select count(*) from images") == 1


async def test_known_images_leave_out_others_public_images(
    client: Client, alice: str, bob: str
) -> None:
    status, body, _ = await post(client, bob, None, ("b.png", PNG), visibility="public")
    assert status == 201 and body["images"][0]["visibility"] == "public"
    digest = hashlib.sha256(PNG).hexdigest()
    resp = await client.post("/images/known", json={"sha256": [digest]}, headers=bearer(alice))
    assert resp.status == 200
    assert (await resp.json())["known"] == []
    # bob's own lookup does see it: the empty answer above is not an accident of the query.
    resp = await client.post("/images/known", json={"sha256": [digest]}, headers=bearer(bob))
    assert [k["sha256"] for k in (await resp.json())["known"]] == [digest]
