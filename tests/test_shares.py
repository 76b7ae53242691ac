"""Share links (issue 26): a token shows one image (or one album) to whoever holds it, and
nothing else; revoking, expiry, deleting and making the picture private again end it at
once, on every process; answers are never stored by shared caches."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from tests.conftest import basic, bearer, sign_up
from tests.images import make_image
from tests.test_images import form
from tests.test_privacy import gps_of, with_gps

Client = TestClient[web.Request, web.Application]


def share_token(token: str) -> dict[str, str]:
    return {"X-Share-Token": token}


async def upload(client: Client, key: str, data: bytes, *, title: str,
                 visibility: str = "private", name: str = "photo.jpg") -> dict[str, Any]:
    resp = await client.post("/images", headers=bearer(key), data=form(
        [(name, data)], [("title", title), ("visibility", visibility)]))
    body = await resp.json()
    assert resp.status == 201, body
    image: dict[str, Any] = body["images"][0]
    return image


async def share(client: Client, key: str, status: int = 201, *, image_id: str | None = None,
                album_id: str | None = None, **body: Any) -> dict[str, Any]:
    path = f"/images/{image_id}/shares" if album_id is None else f"/albums/{album_id}/shares"
    resp = await client.post(path, headers=bearer(key), json=body)
    answer: dict[str, Any] = await resp.json()
    assert resp.status == status, answer
    return answer


async def shared_status(client: Client, token: str, path: str = "/shared") -> int:
    resp = await client.get(path, headers=share_token(token))
    await resp.read()
    return resp.status


@pytest.fixture
async def library(client: Client, alice: str, bob: str) -> dict[str, Any]:
    """Alice's private and public pictures, and Bob's private one: what a link must not show."""
    return {
        "secret": await upload(client, alice, make_image("JPEG", seed=1), title="lake secret"),
        "other": await upload(client, alice, make_image("JPEG", seed=2), title="lake other"),
        "public": await upload(client, alice, make_image("JPEG", seed=3), title="lake public",
                               visibility="public"),
        "bobs": await upload(client, bob, make_image("JPEG", seed=4), title="lake bob"),
    }


async def test_a_link_shows_its_private_image_to_anyone_holding_it(
    client: Client, alice: str, library: dict[str, Any], database_url: str,
) -> None:
    secret = library["secret"]
    link = await share(client, alice, image_id=secret["id"])
    token = link["token"]
    assert token.startswith("irs_") and len(token) >= 4 + 43  # 256 bits, base64url
    assert link["url"] == f"/#share={token}" and link["kind"] == "image"
    assert link["image_id"] == secret["id"] and link["album_id"] is None
    assert link["allow_download"] is False and link["expires_at"] is None

    resp = await client.get("/shared", headers=share_token(token))
    body = await resp.json()
    assert resp.status == 200, body
    assert body["kind"] == "image" and body["owner"] == "alice" and body["album"] is None
    assert body["image"]["id"] == secret["id"] and body["image"]["title"] == "lake secret"
    assert body["image"]["thumbnail_url"].startswith(f"/shared/images/{secret['id']}/thumbnail")
    assert body["image"]["file_url"] == f"/shared/images/{secret['id']}/file"
    assert resp.headers["Cache-Control"] == "private, no-store"
    assert "X-Share-Token" in resp.headers["Vary"]

    listed = await client.get("/shared/images", headers=share_token(token))
    assert [i["id"] for i in (await listed.json())["images"]] == [secret["id"]]
    thumb = await client.get(body["image"]["thumbnail_url"], headers=share_token(token))
    assert thumb.status == 200 and thumb.content_type == "image/webp"
    assert thumb.headers["Cache-Control"] == "private, no-store"
    assert "X-Share-Token" in thumb.headers["Vary"]

    # The token is shown once: the database keeps its digest, the list never the token.
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow("select * from share_links")
    finally:
        await conn.close()
    assert row is not None and row["digest"] == hashlib.sha256(token.encode()).digest()
    assert token not in repr(dict(row))
    listed_links = await (await client.get("/shares", headers=bearer(alice))).json()
    assert [s["id"] for s in listed_links["shares"]] == [link["id"]]
    assert "token" not in listed_links["shares"][0] and "url" not in listed_links["shares"][0]
    assert listed_links["shares"][0]["active"] is True


async def test_a_link_to_one_image_reveals_nothing_else(
    client: Client, alice: str, library: dict[str, Any],
) -> None:
    token = (await share(client, alice, image_id=library["secret"]["id"]))["token"]
    for other in ("other", "public", "bobs"):
        image_id = library[other]["id"]
        for path in (f"/shared/images/{image_id}", f"/shared/images/{image_id}/thumbnail"):
            assert await shared_status(client, token, path) == 404, (other, path)
    # Everywhere else the token is no credential: an anonymous caller sees public images only.
    for path, field in (("/images", "images"), ("/search?q=lake", "results")):
        resp = await client.get(path, headers=share_token(token))
        found = (await resp.json())[field]
        assert [i["id"] for i in found] == [library["public"]["id"]], path
    for image_id in (library["secret"]["id"], library["other"]["id"]):
        assert await shared_status(client, token, f"/images/{image_id}") == 404
        assert await shared_status(client, token, f"/images/{image_id}/similar") == 404
    search = await client.post("/search/image", headers=share_token(token), data=form(
        [("q.jpg", make_image("JPEG", seed=1))]))
    assert search.status == 200
    found = (await search.json())["results"]
    assert library["secret"]["id"] not in [i["id"] for i in found]


async def test_the_file_only_with_download_allowed_and_never_the_gps_original(
    client: Client, alice: str,
) -> None:
    original = with_gps("JPEG")
    image = await upload(client, alice, original, title="where I live")
    viewing = (await share(client, alice, image_id=image["id"]))["token"]
    resp = await client.get(f"/shared/images/{image['id']}/file", headers=share_token(viewing))
    body = await resp.json()
    assert resp.status == 403 and body["error"]["code"] == "download_not_allowed"
    assert resp.headers["Cache-Control"] == "private, no-store"

    downloading = await share(client, alice, image_id=image["id"], allow_download=True)
    assert downloading["allow_download"] is True
    resp = await client.get(f"/shared/images/{image['id']}/file",
                            headers=share_token(downloading["token"]))
    data = await resp.read()
    assert resp.status == 200 and data and data != original
    assert gps_of(data) == {}  # the copy without location, never the original
    assert resp.headers["Cache-Control"] == "private, no-store"
    shown = await (await client.get("/shared", headers=share_token(downloading["token"]))).json()
    assert shown["image"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert shown["image"]["size_bytes"] == len(data)
    ranged = await client.get(f"/shared/images/{image['id']}/file",
                              headers={**share_token(downloading["token"]), "Range": "bytes=0-9"})
    assert ranged.status == 206 and await ranged.read() == data[:10]


async def test_missing_unknown_revoked_and_foreign_tokens(
    client: Client, alice: str, bob: str, library: dict[str, Any],
) -> None:
    resp = await client.get("/shared")
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    assert resp.headers["Cache-Control"] == "private, no-store"
    for bogus in ("irs_" + "A" * 43, "nonsense", "irk_" + "A" * 43, alice):
        assert await shared_status(client, bogus) == 404, bogus
    link = await share(client, alice, image_id=library["secret"]["id"])
    # Bob cannot revoke, see or list Alice's link, nor share her images (public or not).
    resp = await client.delete(f"/shares/{link['id']}", headers=bearer(bob))
    assert resp.status == 404
    assert (await (await client.get("/shares", headers=bearer(bob))).json())["shares"] == []
    for name in ("secret", "public"):
        await share(client, bob, 404, image_id=library[name]["id"])
    assert await shared_status(client, link["token"]) == 200
    resp = await client.delete(f"/shares/{link['id']}", headers=bearer(alice))
    assert resp.status == 204
    assert await shared_status(client, link["token"]) == 404
    assert await shared_status(client, link["token"], "/shared/images") == 404
    resp = await client.delete(f"/shares/{link['id']}", headers=bearer(alice))
    assert resp.status == 404


async def test_request_rules_are_checked(client: Client, alice: str,
                                         library: dict[str, Any]) -> None:
    image_id = library["secret"]["id"]
    for body in ({"expires_in_seconds": 59}, {"expires_in_seconds": 10 * 366 * 24 * 3600 + 1},
                 {"allow_download": "perhaps"}, {"album_id": image_id}):
        resp = await client.post(f"/images/{image_id}/shares", headers=bearer(alice), json=body)
        assert resp.status == 422, body
        assert (await resp.json())["error"]["code"] == "validation_error", body
    await share(client, alice, 422, image_id="not-a-uuid")
    for path in (f"/images/{image_id}/shares", f"/albums/{image_id}/shares"):
        resp = await client.post(path, headers=bearer(alice), data="{}")  # not JSON typed
        assert resp.status == 415, path
    resp = await client.post(f"/images/{image_id}/shares", json={})
    assert resp.status == 401
    # An API key, not the password: a link is made by a key with `share` (and `read`).
    resp = await client.post(f"/images/{image_id}/shares", headers=basic("alice"), json={})
    assert resp.status == 401
    # An album id is not an image's, nor the other way round.
    await share(client, alice, 404, album_id=image_id)


async def test_expiry_ends_a_link(client: Client, alice: str, library: dict[str, Any],
                                  database_url: str) -> None:
    link = await share(client, alice, image_id=library["secret"]["id"], expires_in_seconds=3600)
    assert link["expires_at"] is not None and link["expired"] is False
    assert await shared_status(client, link["token"]) == 200
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("update share_links set created_at = now() - interval '2 hours', "
                           "expires_at = now() - interval '1 second'")
    finally:
        await conn.close()
    assert await shared_status(client, link["token"]) == 404
    (listed,) = (await (await client.get("/shares", headers=bearer(alice))).json())["shares"]
    assert listed["expired"] is True and listed["active"] is False


async def test_deleting_or_making_private_again_ends_every_link(
    client: Client, alice: str, library: dict[str, Any],
) -> None:
    public = library["public"]
    first = await share(client, alice, image_id=public["id"])
    second = await share(client, alice, image_id=public["id"], allow_download=True)
    # A change that keeps it public (or any other field) leaves the links alone.
    resp = await client.patch(f"/images/{public['id']}", headers=bearer(alice),
                              json={"title": "renamed", "visibility": "public"})
    assert resp.status == 200
    assert await shared_status(client, first["token"]) == 200
    resp = await client.patch(f"/images/{public['id']}", headers=bearer(alice),
                              json={"visibility": "private"})
    assert resp.status == 200
    for link in (first, second):
        assert await shared_status(client, link["token"]) == 404
    # Saving a private image's form again (visibility still private) keeps a newer link.
    third = await share(client, alice, image_id=public["id"])
    resp = await client.patch(f"/images/{public['id']}", headers=bearer(alice),
                              json={"title": "again", "visibility": "private"})
    assert await shared_status(client, third["token"]) == 200
    listed = (await (await client.get(f"/shares?image_id={public['id']}",
                                      headers=bearer(alice))).json())["shares"]
    assert {s["id"]: s["active"] for s in listed} == {
        first["id"]: False, second["id"]: False, third["id"]: True}

    secret = library["secret"]
    link = await share(client, alice, image_id=secret["id"])
    resp = await client.delete(f"/images/{secret['id']}", headers=bearer(alice))
    assert resp.status == 204
    assert await shared_status(client, link["token"]) == 404


async def test_scopes_a_key_cannot_escalate_through_a_link(
    client: Client, library: dict[str, Any],
) -> None:
    async def key_with(scopes: list[str]) -> str:
        resp = await client.post("/keys", headers=basic("alice"), json={"scopes": scopes})
        return str((await resp.json())["api_key"])

    image_id = library["secret"]["id"]
    share_only = await key_with(["share"])  # could make links, but not read what they show
    answer = await share(client, share_only, 403, image_id=image_id)
    assert answer["error"]["details"] == {"missing_scope": "read"}
    read_only = await key_with(["read"])
    answer = await share(client, read_only, 403, image_id=image_id)
    assert answer["error"]["details"] == {"missing_scope": "share"}
    for method, path in (("get", "/shares"), ("delete", f"/shares/{image_id}")):
        resp = await client.request(method, path, headers=bearer(read_only))
        assert resp.status == 403, path
    both = await key_with(["read", "share"])
    await share(client, both, image_id=image_id)


@pytest.fixture
async def two_processes(
    config: Config, aiohttp_client: AiohttpClient,
) -> tuple[Client, Client]:
    """Two apps on one database, as two processes (or hosts) of a deployment would be."""
    first = await aiohttp_client(create_app(config))
    second = await aiohttp_client(create_app(config))
    return first, second


async def test_a_revoke_on_one_process_is_seen_by_the_other_at_once(
    two_processes: tuple[Client, Client],
) -> None:
    one, other = two_processes
    key = str((await sign_up(one, "carol"))["api_key"])
    image = await upload(one, key, make_image("JPEG", seed=9), title="mine")
    link = await share(one, key, image_id=image["id"], allow_download=True)
    file_path = f"/shared/images/{image['id']}/file"
    assert await shared_status(other, link["token"], file_path) == 200
    resp = await one.delete(f"/shares/{link['id']}", headers=bearer(key))
    assert resp.status == 204
    assert await shared_status(other, link["token"], file_path) == 404
    assert await shared_status(other, link["token"]) == 404


async def test_revoking_while_the_link_is_in_use(client: Client, alice: str) -> None:
    """Requests racing a revoke: each is whole (200 with the file, or 404), never a 500 or a
    half answer; and every request sent after the revoke answered is 404."""
    data = make_image("PNG", size=(640, 480), seed=5)
    image = await upload(client, alice, data, title="busy", name="busy.png")
    link = await share(client, alice, image_id=image["id"], allow_download=True)
    headers = share_token(link["token"])
    path = f"/shared/images/{image['id']}/file"
    expected = (await (await client.get(path, headers=headers)).read())

    async def use() -> int:
        resp = await client.get(path, headers=headers)
        body = await resp.read()
        assert resp.status in (200, 404)
        if resp.status == 200:
            assert body == expected
        return resp.status

    async def revoke() -> None:
        await asyncio.sleep(0.01)
        resp = await client.delete(f"/shares/{link['id']}", headers=bearer(alice))
        assert resp.status == 204

    results = await asyncio.gather(*[use() for _ in range(30)], revoke())
    assert set(results[:-1]) <= {200, 404}
    after = await asyncio.gather(*[use() for _ in range(10)])
    assert after == [404] * 10


async def new_album(client: Client, key: str, image_ids: list[str],
                    visibility: str = "private") -> str:
    resp = await client.post("/albums", headers=bearer(key),
                             json={"title": "Lake trip", "visibility": visibility})
    album_id = str((await resp.json())["id"])
    resp = await client.post(f"/albums/{album_id}/images", headers=bearer(key),
                             json={"image_ids": image_ids})
    assert resp.status == 200, await resp.text()
    return album_id


async def shared_ids(client: Client, token: str, path: str = "/shared/images",
                     field: str = "images", **params: str) -> list[str]:
    resp = await client.get(path, headers=share_token(token), params=params)
    body = await resp.json()
    assert resp.status == 200, body
    return [i["id"] for i in body[field]]


async def test_an_album_link_shows_its_images_in_order_and_nothing_else(
    client: Client, alice: str, library: dict[str, Any],
) -> None:
    """With the owner's other images and another user's private ones present, alike in words
    and in picture, as data each of these reads would otherwise return."""
    first = await upload(client, alice, make_image("JPEG", seed=11), title="lake first")
    album_id = await new_album(client, alice, [first["id"], library["secret"]["id"]])
    link = await share(client, alice, album_id=album_id)
    assert link["kind"] == "album" and link["album_id"] == album_id
    token = link["token"]

    shown = await (await client.get("/shared", headers=share_token(token))).json()
    assert shown["kind"] == "album" and shown["image"] is None
    assert shown["album"]["id"] == album_id and shown["album"]["title"] == "Lake trip"
    assert shown["album"]["image_count"] == 2 and shown["album"]["owner"] == "alice"
    assert shown["album"]["visibility"] == "private"
    in_order = [first["id"], library["secret"]["id"]]
    assert await shared_ids(client, token) == in_order
    page = await (await client.get("/shared/images", headers=share_token(token),
                                   params={"limit": "1"})).json()
    assert [i["id"] for i in page["images"]] == in_order[:1] and page["images"][0]["position"]
    assert await shared_ids(client, token, cursor=page["next_cursor"], limit="1") == in_order[1:]
    for name in ("other", "public", "bobs"):
        assert await shared_status(client, token, f"/shared/images/{library[name]['id']}") == 404

    # Searches inside the link find only its images: "lake" is in every title, and Bob's and
    # Alice's other pictures share the words and, for these two, the very picture.
    bobs_copy = await upload(client, str((await sign_up(client, "bobby"))["api_key"]),
                             make_image("JPEG", seed=11), title="lake first")
    found = await shared_ids(client, token, "/shared/search", "results", q="lake")
    assert sorted(found) == sorted(in_order)
    for seed, expected in ((11, [first["id"]]), (2, [])):
        resp = await client.post("/shared/search/image", headers=share_token(token),
                                 data=form([("q.jpg", make_image("JPEG", seed=seed))]))
        body = await resp.json()
        assert resp.status == 200, body
        ids = [r["id"] for r in body["results"]]
        assert ids[:1] == expected and bobs_copy["id"] not in ids
        assert set(ids) <= set(in_order), seed  # seed 2 is Alice's "other": not in the album
        for result in body["results"]:
            assert result["file_url"].startswith("/shared/images/")
    resp = await client.post("/shared/search/image", headers=share_token(token),
                             data=form([("q.jpg", make_image("JPEG", seed=11))],
                                       [("album", album_id)]))
    assert resp.status == 422  # no `album` or `owner` inside a link: it is one set already

    # Places among what the link shows, not the album's positions, whose gaps would tell where
    # images it no longer shows lie.
    resp = await client.post(f"/albums/{album_id}/images/remove", headers=bearer(alice),
                             json={"image_ids": [first["id"]]})
    assert resp.status == 200
    listed = await (await client.get("/shared/images", headers=share_token(token))).json()
    assert [(i["id"], i["position"]) for i in listed["images"]] == [(library["secret"]["id"], 1)]


async def test_an_album_link_follows_the_album(
    client: Client, alice: str, library: dict[str, Any],
) -> None:
    """Removing an image, making one private again, or the album private again, and deleting
    the album: each ends what the link shows, at once. Adding one shows it."""
    public, secret = library["public"], library["secret"]
    album_id = await new_album(client, alice, [public["id"], secret["id"]], "public")
    token = (await share(client, alice, album_id=album_id))["token"]
    assert await shared_ids(client, token) == [public["id"], secret["id"]]

    resp = await client.post(f"/albums/{album_id}/images/remove", headers=bearer(alice),
                             json={"image_ids": [secret["id"]]})
    assert resp.status == 200
    assert await shared_ids(client, token) == [public["id"]]
    assert await shared_status(client, token, f"/shared/images/{secret['id']}") == 404

    resp = await client.patch(f"/images/{public['id']}", headers=bearer(alice),
                              json={"visibility": "private"})
    assert resp.status == 200
    assert await shared_ids(client, token) == []  # made private after it was shared
    assert await shared_status(client, token, f"/shared/images/{public['id']}") == 404
    # Moving it within the album shares nothing; taken out and put in again after that, it is
    # shared again, by the owner's choice.
    resp = await client.post(f"/albums/{album_id}/images", headers=bearer(alice),
                             json={"image_ids": [public["id"]], "before": None})
    assert resp.status == 200 and await shared_ids(client, token) == []
    resp = await client.post(f"/albums/{album_id}/images/remove", headers=bearer(alice),
                             json={"image_ids": [public["id"]]})
    for image in (secret, public):
        resp = await client.post(f"/albums/{album_id}/images", headers=bearer(alice),
                                 json={"image_ids": [image["id"]]})
        assert resp.status == 200
    assert sorted(await shared_ids(client, token)) == sorted([secret["id"], public["id"]])

    resp = await client.patch(f"/albums/{album_id}", headers=bearer(alice),
                              json={"visibility": "private"})
    assert resp.status == 200
    assert await shared_status(client, token) == 404
    assert await shared_status(client, token, f"/shared/images/{secret['id']}") == 404
    again = (await share(client, alice, album_id=album_id))["token"]
    assert await shared_status(client, again) == 200
    resp = await client.delete(f"/albums/{album_id}", headers=bearer(alice))
    assert resp.status == 204
    assert await shared_status(client, again) == 404
    # The album's images stay, and stay Alice's only.
    assert await shared_status(client, "", f"/images/{secret['id']}") == 404
    resp = await client.get(f"/images/{secret['id']}", headers=bearer(alice))
    assert resp.status == 200
