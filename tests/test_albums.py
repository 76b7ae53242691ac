"""Albums (issue 26) over HTTP on a real PostgreSQL: making and changing them, their order,
who may see them and their images, and search within one."""

from __future__ import annotations

import asyncio
import io
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.keys import CURSORS, POOL, QUERIES
from server.services.within import Within
from tests.conftest import bearer
from tests.families import edited, original
from tests.images import make_image

Client = TestClient[web.Request, web.Application]
FAKE_ID = "00000000-0000-4000-8000-000000000000"


async def upload(client: Client, key: str, title: str = "x", visibility: str = "public",
                 content: bytes | None = None, seed: int = 1, description: str = "") -> str:
    data = FormData()
    data.add_field("file", io.BytesIO(content or make_image("PNG", (16, 16), seed=seed)),
                   filename="x.png")
    for name, value in (("title", title), ("visibility", visibility),
                        ("description", description)):
        data.add_field(name, value)
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["images"][0]["id"])


async def uploads(client: Client, key: str, count: int, visibility: str = "public") -> list[str]:
    return [await upload(client, key, f"img{n}", visibility, seed=n) for n in range(count)]


async def call(client: Client, method: str, path: str, key: str | None = None,
               status: int = 200, **kwargs: Any) -> Any:
    resp = await client.request(method, path, headers=bearer(key) if key else {}, **kwargs)
    assert resp.status == status, await resp.text()
    return None if status == 204 else await resp.json()


async def new_album(client: Client, key: str, title: str = "Trip",
                    visibility: str = "private") -> str:
    body = await call(client, "POST", "/albums", key, 201,
                      json={"title": title, "visibility": visibility})
    return str(body["id"])


async def add(client: Client, key: str, album: str, ids: list[str], before: str | None = None,
              status: int = 200) -> Any:
    return await call(client, "POST", f"/albums/{album}/images", key, status,
                      json={"image_ids": ids, "before": before})


async def order(client: Client, key: str | None, album: str, limit: int = 100) -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = await call(client, "GET", f"/albums/{album}/images", key, params=params)
        assert [i["position"] for i in page["images"]] == list(
            range(len(ids) + 1, len(ids) + 1 + len(page["images"])))
        ids += [i["id"] for i in page["images"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def test_create_read_change_delete(client: Client, alice: str, bob: str) -> None:
    made = await call(client, "POST", "/albums", alice, 201,
                      json={"title": "  Summer  ", "description": "by the sea"})
    assert made["title"] == "Summer" and made["visibility"] == "private"
    assert made["owner"] == "alice" and made["image_count"] == 0 and made["cover"] is None
    album = made["id"]
    assert (await call(client, "GET", f"/albums/{album}", alice))["title"] == "Summer"
    # Someone else's private album is not found, exactly as a missing one.
    for key in (bob, None):
        missing = await call(client, "GET", f"/albums/{album}", key, 404)
        assert missing["error"]["code"] == "not_found"
    await call(client, "PATCH", f"/albums/{album}", bob, 404, json={"title": "Mine"})
    await call(client, "DELETE", f"/albums/{album}", bob, 404)
    changed = await call(client, "PATCH", f"/albums/{album}", alice,
                         json={"title": "Autumn", "visibility": "public"})
    assert changed["title"] == "Autumn" and changed["description"] == "by the sea"
    assert changed["visibility"] == "public" and changed["updated_at"] > made["updated_at"]
    assert (await call(client, "GET", f"/albums/{album}", bob))["title"] == "Autumn"
    await call(client, "PATCH", f"/albums/{album}", bob, 404, json={"title": "Mine"})
    await call(client, "DELETE", f"/albums/{album}", alice, 204)
    await call(client, "GET", f"/albums/{album}", alice, 404)
    await call(client, "DELETE", f"/albums/{album}", alice, 404)


async def test_requests_are_validated(client: Client, alice: str) -> None:
    for body in ({}, {"title": ""}, {"title": "   "}, {"title": "x" * 201},
                 {"title": "a", "description": "d" * 5001}, {"title": "a", "visibility": "x"},
                 {"title": "a\x01"}):
        error = await call(client, "POST", "/albums", alice, 422, json=body)
        assert error["error"]["code"] == "validation_error", body
    album = await new_album(client, alice)
    await call(client, "PATCH", f"/albums/{album}", alice, 422, json={})
    await call(client, "GET", "/albums/not-a-uuid", alice, 422)
    change: dict[str, Any]
    for change in ({"image_ids": []}, {"image_ids": [FAKE_ID] * 101}, {"image_ids": ["x"]},
                   {}):
        await call(client, "POST", f"/albums/{album}/images", alice, 422, json=change)
    await call(client, "POST", "/albums", None, 401, json={"title": "a"})


async def test_listing_public_and_own_newest_first(client: Client, alice: str,
                                                   bob: str) -> None:
    mine = [await new_album(client, alice, f"a{n}", "private") for n in range(3)]
    shown = [await new_album(client, bob, f"b{n}", "public") for n in range(2)]
    hidden = await new_album(client, bob, "secret", "private")
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await call(client, "GET", "/albums", alice, params=params)
        seen += [a["id"] for a in page["albums"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [*reversed(shown), *reversed(mine)]
    assert hidden not in seen
    own = await call(client, "GET", "/albums", alice, params={"owner": "me"})
    assert [a["id"] for a in own["albums"]] == list(reversed(mine))
    anonymous = await call(client, "GET", "/albums", params={"owner": "alice"})
    assert anonymous["albums"] == []
    bobs = await call(client, "GET", "/albums", params={"owner": "bob"})
    assert [a["id"] for a in bobs["albums"]] == list(reversed(shown))
    nobody = await call(client, "GET", "/albums", params={"owner": "nobody"})
    assert nobody == {"albums": [], "next_cursor": None}


async def test_order_add_before_move_remove(client: Client, alice: str) -> None:
    a, b, c, d, e = await uploads(client, alice, 5)
    album = await new_album(client, alice)
    assert await add(client, alice, album, [a, b, c]) == {
        "added": [a, b, c], "moved": [], "not_found": []}
    assert await order(client, alice, album) == [a, b, c]
    assert (await add(client, alice, album, [d, e], before=b))["added"] == [d, e]
    assert await order(client, alice, album) == [a, d, e, b, c]
    # Ones already in it move, in the order given; a new one joins them.
    assert await add(client, alice, album, [c, a], before=d) == {
        "added": [], "moved": [c, a], "not_found": []}
    assert await order(client, alice, album) == [c, a, d, e, b]
    assert (await add(client, alice, album, [c]))["moved"] == [c]  # to the end
    assert await order(client, alice, album) == [a, d, e, b, c]
    assert await order(client, alice, album, limit=2) == [a, d, e, b, c]
    removed = await call(client, "POST", f"/albums/{album}/images/remove", alice,
                         json={"image_ids": [d, b, FAKE_ID]})
    assert removed == {"removed": [d, b], "not_found": [FAKE_ID]}
    assert await order(client, alice, album) == [a, e, c]
    assert (await add(client, alice, album, [b], before=e))["added"] == [b]
    assert await order(client, alice, album) == [a, b, e, c]
    # `before` must be in the album, and not one of the images placed.
    assert (await add(client, alice, album, [d], before=d, status=422))["error"]["code"] == (
        "validation_error")
    await add(client, alice, album, [d], before=FAKE_ID, status=422)
    await add(client, alice, album, [d, a], before=a, status=422)
    assert await order(client, alice, album) == [a, b, e, c]
    shown = await call(client, "GET", f"/albums/{album}", alice)
    assert shown["image_count"] == 4 and shown["cover"]["id"] == a
    assert shown["cover"]["thumbnail_url"].startswith(f"/images/{a}/thumbnail?size=")


async def test_only_own_images_go_in(client: Client, alice: str, bob: str) -> None:
    own = await upload(client, alice, "mine")
    theirs_public = await upload(client, bob, "public", "public", seed=2)
    theirs_private = await upload(client, bob, "private", "private", seed=3)
    album = await new_album(client, alice)
    done = await add(client, alice, album, [theirs_private, own, theirs_public, FAKE_ID])
    # Others' images, public or not, and unknown ids get the same answer.
    assert done == {"added": [own], "moved": [],
                    "not_found": [theirs_private, theirs_public, FAKE_ID]}
    assert await order(client, alice, album) == [own]
    done = await add(client, alice, album, [theirs_public, theirs_private], before=own)
    assert done == {"added": [], "moved": [], "not_found": [theirs_public, theirs_private]}
    assert await order(client, alice, album) == [own]
    # Someone else's album is not found, for adding as for removing.
    await add(client, bob, album, [theirs_public], status=404)
    await call(client, "POST", f"/albums/{album}/images/remove", bob, 404,
               json={"image_ids": [own]})
    assert await order(client, alice, album) == [own]


async def test_deleting_an_album_keeps_its_images_and_deleting_an_image_leaves_albums(
    client: Client, alice: str,
) -> None:
    a, b = await uploads(client, alice, 2)
    first, second = await new_album(client, alice, "one"), await new_album(client, alice, "two")
    await add(client, alice, first, [a, b])
    await add(client, alice, second, [b, a])
    await call(client, "DELETE", f"/albums/{first}", alice, 204)
    await call(client, "GET", f"/images/{a}", alice)
    await call(client, "GET", f"/images/{b}", alice)
    await call(client, "DELETE", f"/images/{b}", alice, 204)
    assert await order(client, alice, second) == [a]
    assert (await call(client, "GET", f"/albums/{second}", alice))["image_count"] == 1


async def test_others_see_a_public_album_with_its_public_images_only(
    client: Client, alice: str, bob: str,
) -> None:
    hidden = await upload(client, alice, "hidden", "private", seed=1)
    shown = await upload(client, alice, "shown", "public", seed=2)
    album = await new_album(client, alice, visibility="public")
    await add(client, alice, album, [hidden, shown])
    for key in (bob, None):
        assert await order(client, key, album) == [shown]
        seen = await call(client, "GET", f"/albums/{album}", key)
        assert seen["image_count"] == 1 and seen["cover"]["id"] == shown
        listed = await call(client, "GET", "/albums", key, params={"owner": "alice"})
        assert listed["albums"][0]["image_count"] == 1
    assert await order(client, alice, album) == [hidden, shown]
    assert (await call(client, "GET", f"/albums/{album}", alice))["cover"]["id"] == hidden
    await call(client, "PATCH", f"/albums/{album}", alice, json={"visibility": "private"})
    for key in (bob, None):
        await call(client, "GET", f"/albums/{album}/images", key, 404)
        await call(client, "GET", f"/albums/{album}", key, 404)


async def test_making_an_album_private_stamps_privatised_at(
    client: Client, alice: str, clean_db: str,
) -> None:
    album = await new_album(client, alice, visibility="public")

    async def stamp() -> Any:
        conn = await asyncpg.connect(clean_db)
        try:
            return await conn.fetchval("select privatised_at from albums where id = $1",
                                       uuid.UUID(album))
        finally:
            await conn.close()

    assert await stamp() is None
    await call(client, "PATCH", f"/albums/{album}", alice, json={"title": "still public"})
    assert await stamp() is None
    await call(client, "PATCH", f"/albums/{album}", alice, json={"visibility": "private"})
    first = await stamp()
    assert first is not None
    await call(client, "PATCH", f"/albums/{album}", alice, json={"visibility": "public"})
    await call(client, "PATCH", f"/albums/{album}", alice, json={"visibility": "private"})
    assert await stamp() > first


async def test_concurrent_adds_keep_positions_distinct_and_complete(
    client: Client, alice: str, clean_db: str,
) -> None:
    ids = await uploads(client, alice, 12)
    album = await new_album(client, alice)
    await add(client, alice, album, ids[:2])
    batches = [[ids[n]] for n in range(2, 8)] + [ids[8:10], ids[10:]]
    befores = [None, ids[0], None, ids[1], None, ids[0], None, ids[1]]
    answers = await asyncio.gather(*(
        add(client, alice, album, batch, before=before)
        for batch, before in zip(batches, befores, strict=True)))
    assert sorted(i for a in answers for i in a["added"]) == sorted(ids[2:])
    shown = await order(client, alice, album)
    assert sorted(shown) == sorted(ids)
    for batch in batches:  # each batch stays together, in its order
        start = shown.index(batch[0])
        assert shown[start:start + len(batch)] == batch
    conn = await asyncpg.connect(clean_db)
    try:
        positions = await conn.fetch("select position from album_images")
    finally:
        await conn.close()
    assert len({p["position"] for p in positions}) == len(ids)


async def test_a_full_album_refuses_more(client: Client, alice: str, monkeypatch: Any) -> None:
    from server.services import albums
    monkeypatch.setattr(albums, "MAX_IMAGES", 3)
    a, b, c, d = await uploads(client, alice, 4)
    album = await new_album(client, alice)
    await add(client, alice, album, [a, b])
    error = await add(client, alice, album, [c, d], status=409)
    assert error["error"]["code"] == "album_full"
    assert await order(client, alice, album) == [a, b]
    assert (await add(client, alice, album, [c, a]))["added"] == [c]  # a moves: 3 in all
    assert (await add(client, alice, album, [b], before=c))["moved"] == [b]


async def test_album_images_cursor_is_bound_to_the_album(client: Client, alice: str) -> None:
    ids = await uploads(client, alice, 3)
    first, second = await new_album(client, alice), await new_album(client, alice)
    await add(client, alice, first, ids)
    await add(client, alice, second, ids)
    page = await call(client, "GET", f"/albums/{first}/images", alice, params={"limit": 1})
    await call(client, "GET", f"/albums/{second}/images", alice, 422,
               params={"cursor": page["next_cursor"]})


async def test_albums_are_documented(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    add_op = spec["paths"]["/albums/{id}/images"]["post"]
    assert {"403", "404", "409", "422"} <= set(add_op["responses"])
    body = spec["components"]["schemas"]["AddImages"]["properties"]["image_ids"]
    assert body["minItems"] == 1 and body["maxItems"] == 100
    new = spec["components"]["schemas"]["NewAlbum"]["properties"]
    assert new["title"]["maxLength"] == 200 and new["description"]["maxLength"] == 5000
    assert spec["paths"]["/albums/{id}"]["get"]["x-scope"] == "read"
    assert spec["paths"]["/albums/{id}"]["patch"]["x-scope"] == "write"


async def search_ids(client: Client, key: str | None, status: int = 200,
                     **params: str) -> Any:
    body = await call(client, "GET", "/search", key, status, params=params)
    return body if status != 200 else [r["id"] for r in body["results"]]


async def image_search_ids(client: Client, key: str | None, content: bytes, status: int = 200,
                           **fields: str) -> Any:
    data = FormData()
    data.add_field("file", io.BytesIO(content), filename="q.jpg")
    for name, value in fields.items():
        data.add_field(name, value)
    body = await call(client, "POST", "/search/image", key, status, data=data)
    return body if status != 200 else [r["id"] for r in body["results"]]


async def similar_ids(client: Client, key: str | None, image: str, status: int = 200,
                      **params: str) -> Any:
    body = await call(client, "GET", f"/images/{image}/similar", key, status, params=params)
    return body if status != 200 else [r["id"] for r in body["results"]]


async def test_search_within_an_album_finds_only_its_images_the_viewer_may_see(
    client: Client, alice: str, bob: str,
) -> None:
    """Every match outside the album, or in it but hidden from the viewer, is left out: the
    owner's other images with the same words and picture, and the viewer's own private
    ones (which the same search without `album` finds)."""
    picture = original(40)
    in_public = await upload(client, alice, "lighthouse", "public", content=picture)
    in_private = await upload(client, alice, "lighthouse", "private", content=picture)
    outside = await upload(client, alice, "lighthouse", "public", content=picture)
    bobs_private = await upload(client, bob, "lighthouse", "private", content=picture)
    bobs_public = await upload(client, bob, "lighthouse", "public", content=picture)
    album = await new_album(client, alice, visibility="public")
    await add(client, alice, album, [in_public, in_private])
    query = edited(40, "recompress")
    assert set(await search_ids(client, bob, q="lighthouse")) == {
        in_public, outside, bobs_private, bobs_public}
    assert set(await image_search_ids(client, bob, query)) == {
        in_public, outside, bobs_private, bobs_public}
    cases = {alice: {in_public, in_private}, bob: {in_public}, None: {in_public}}
    for key, expected in cases.items():
        assert set(await search_ids(client, key, q="lighthouse", album=album)) == expected
        assert set(await search_ids(client, key, q="lighth", album=album)) == expected
        for match in ("robust", "exact"):
            found = await image_search_ids(client, key, query, album=album, match=match)
            assert set(found) == expected, (key, match)
            found = await similar_ids(client, key, outside, album=album, match=match)
            assert set(found) == expected, (key, match)
        found = await similar_ids(client, key, in_public, album=album)
        assert set(found) == expected - {in_public}
    # The owner's own image outside the album, as a query: still only the album's.
    assert set(await similar_ids(client, bob, bobs_private, album=album)) == {in_public}
    await call(client, "PATCH", f"/albums/{album}", alice, json={"visibility": "private"})
    for key in (bob, None):
        assert (await search_ids(client, key, 404, q="lighthouse", album=album))["error"][
            "code"] == "not_found"
        await image_search_ids(client, key, query, 404, album=album)
        await similar_ids(client, key, outside, 404, album=album)
    await search_ids(client, bob, 404, q="lighthouse", album=FAKE_ID)
    assert set(await search_ids(client, alice, q="lighthouse", album=album)) == {
        in_public, in_private}


@pytest.mark.parametrize("plan", ["exact", "within"])
async def test_text_search_within_an_album_by_either_plan(
    client: Client, alice: str, bob: str, monkeypatch: pytest.MonkeyPatch, plan: str,
) -> None:
    """The word's index with the set as a filter, or the set's own rows (frequent words)."""
    from server.services import search
    monkeypatch.setattr(search, "WITHIN_FACTOR", 0 if plan == "within" else 10**9)
    in_public = await upload(client, alice, "pebble beach", "public", seed=1)
    in_private = await upload(client, alice, "pebble", "private", seed=2,
                              description="pebble pebble")
    outside = await upload(client, alice, "pebble", "public", seed=3)
    bobs_private = await upload(client, bob, "pebble", "private", seed=4)
    album = await new_album(client, alice, visibility="public")
    await add(client, alice, album, [in_public, in_private])
    assert set(await search_ids(client, bob, q="pebble")) == {in_public, outside, bobs_private}
    for key, expected in {alice: [in_private, in_public], bob: [in_public],
                          None: [in_public]}.items():
        assert await search_ids(client, key, q="pebble", album=album) == expected
    assert await search_ids(client, alice, q="pebble", album=album, visibility="private") == [
        in_private]
    assert await search_ids(client, alice, q="beach", album=album) == [in_public]
    pages: list[str] = []
    cursor = None
    while True:
        params = {"q": "pebble", "album": album, "limit": "1", **(
            {"cursor": cursor} if cursor else {})}
        page = await call(client, "GET", "/search", alice, params=params)
        pages += [r["id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [in_private, in_public]
    # The query applies visibility itself, whatever set it is handed (services/within.py):
    # a set holding private images, as a caller's mistake would, still shows only the public.
    handed = Within("album:handed", tuple(uuid.UUID(i) for i in (in_public, in_private,
                                                                 bobs_private)))
    async with client.app[POOL].acquire() as conn:
        rows, _ = await search.search(
            conn, client.app[QUERIES], client.app[CURSORS], viewer_id=None, q="pebble",
            filters=search.SearchFilters(within=handed), cursor=None, limit=10)
    assert [str(r["id"]) for r in rows] == [in_public]


async def test_a_search_cursor_does_not_cross_albums(client: Client, alice: str) -> None:
    ids = [await upload(client, alice, "harbour", seed=n) for n in range(3)]
    first, second = await new_album(client, alice), await new_album(client, alice)
    await add(client, alice, first, ids)
    await add(client, alice, second, ids)
    page = await call(client, "GET", "/search", alice,
                      params={"q": "harbour", "album": first, "limit": 1})
    assert page["next_cursor"]
    await call(client, "GET", "/search", alice, 422,
               params={"q": "harbour", "album": second, "cursor": page["next_cursor"]})
    await call(client, "GET", "/search", alice, 422,
               params={"q": "harbour", "cursor": page["next_cursor"]})
    seen = [r["id"] for r in page["results"]]
    cursor = page["next_cursor"]
    while cursor:
        page = await call(client, "GET", "/search", alice,
                          params={"q": "harbour", "album": first, "limit": 1, "cursor": cursor})
        seen += [r["id"] for r in page["results"]]
        cursor = page["next_cursor"]
    assert sorted(seen) == sorted(ids)


async def test_album_search_parameters_are_documented(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    for path, method in (("/search", "get"), ("/images/{id}/similar", "get")):
        operation = spec["paths"][path][method]
        names = {p["name"]: p for p in operation["parameters"]}
        assert names["album"]["schema"]["format"] == "uuid", path
        assert "404" in operation["responses"]
    body = spec["paths"]["/search/image"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["properties"]["album"]["format"] == "uuid"
