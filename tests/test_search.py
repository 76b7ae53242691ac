"""Text search over HTTP on a real PostgreSQL: syntax, ranking, filters, pages, odd input."""

from __future__ import annotations

import io
import uuid
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.db.queries import positional_args, sql_of
from server.services import search as search_service
from tests.conftest import bearer, sign_up
from tests.images import make_image

Client = TestClient[web.Request, web.Application]
PNG = make_image("PNG", (16, 16), seed=1)


async def add(client: Client, key: str, title: str, description: str = "", tags: str = "",
              visibility: str = "public") -> str:
    data = FormData()
    data.add_field("file", io.BytesIO(PNG), filename="x.png")
    for name, value in (("title", title), ("description", description), ("tags", tags),
                        ("visibility", visibility)):
        data.add_field(name, value)
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["images"][0]["id"])


async def search(client: Client, q: str, key: str | None = None, **params: str) -> Any:
    resp = await client.get("/search", params={"q": q, **params},
                            headers=bearer(key) if key else {})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def titles(client: Client, q: str, key: str | None = None, **params: str) -> list[str]:
    return [r["title"] for r in (await search(client, q, key, **params))["results"]]


@pytest.fixture
async def corpus(client: Client) -> dict[str, str]:
    alice = (await sign_up(client, "alice"))["api_key"]
    bob = (await sign_up(client, "bob"))["api_key"]
    await add(client, alice, "Sunset over the harbour", "Boats at dusk", "sea, evening")
    await add(client, alice, "Red car in the city", "A fast red car parked downtown", "cars")
    await add(client, alice, "City lights", "the car was red, the night blue", "night")
    await add(client, alice, "Garden", "Sunflowers and a sunset in the background", "sunflower")
    await add(client, alice, "Kittens", "Two small cats asleep", "cat, pets")
    await add(client, alice, "Москва зимой", "Красная площадь под снегом", "город")
    await add(client, alice, "東京タワー", "夜景", "tokyo")
    await add(client, alice, "Private sunset", "only mine", "", visibility="private")
    await add(client, bob, "Bob's sunset", "secret", "", visibility="private")
    return {"alice": alice, "bob": bob}


async def test_title_matches_rank_above_description_matches(
    client: Client, corpus: dict[str, str]
) -> None:
    body = await search(client, "sunset")
    found = [r["title"] for r in body["results"]]
    assert found == ["Sunset over the harbour", "Garden"]
    first = body["results"][0]
    assert first["score"] > body["results"][1]["score"]
    assert "<mark>Sunset</mark>" in first["headline"]
    assert {"id", "owner", "hashes", "file_url"} <= set(first)


async def test_web_search_syntax(client: Client, corpus: dict[str, str]) -> None:
    assert await titles(client, '"red car"') == ["Red car in the city"]
    assert set(await titles(client, "red car")) == {"Red car in the city", "City lights"}
    assert await titles(client, "car -night") == ["Red car in the city"]
    assert set(await titles(client, "kittens or harbour")) == {
        "Kittens", "Sunset over the harbour"}


async def test_the_last_word_matches_as_a_prefix(client: Client, corpus: dict[str, str]) -> None:
    assert await titles(client, "sunse") == ["Sunset over the harbour", "Garden"]
    assert await titles(client, "harb") == ["Sunset over the harbour"]
    assert await titles(client, "harb ") == []  # a finished word is a whole word
    assert await titles(client, "boats harb") == ["Sunset over the harbour"]


async def test_tags_match_as_whole_words_and_stemmed(
    client: Client, corpus: dict[str, str]
) -> None:
    assert await titles(client, "sunflower") == ["Garden"]
    assert await titles(client, "pets") == ["Kittens"]
    assert await titles(client, "cat") == ["Kittens"]


async def test_non_latin_scripts(client: Client, corpus: dict[str, str]) -> None:
    assert await titles(client, "москва") == ["Москва зимой"]
    assert await titles(client, "площадь") == ["Москва зимой"]
    assert await titles(client, "東京タワー") == ["東京タワー"]


async def test_stop_words_alone_give_an_empty_result(
    client: Client, corpus: dict[str, str]
) -> None:
    for q in ("the", "the and of", "the ", "a"):
        assert await titles(client, q) == [], q


@pytest.mark.parametrize("q", [
    '"', '"""', "'", ":*", "a:*", "&|!", "!!!", "(", ")", "<->", "\\", "\\\\x", "-", "--",
    "or", "or or", "-or", "a & b | !c", "'; drop table images; --", "%", "_", "*", "\u200b",
    "🙂", "e\u0301", "x" * 1000, "sunset:*", "sun:A", "!sunset", "\t\n",
])
async def test_odd_queries_never_fail(client: Client, corpus: dict[str, str], q: str) -> None:
    resp = await client.get("/search", params={"q": q})
    assert resp.status == 200, (q, await resp.text())


@pytest.mark.parametrize(("q", "field"), [("a\x00b", "q"), ("x" * 1001, "q"), ("x" * 5000, "q")])
async def test_unacceptable_queries_are_422(
    client: Client, corpus: dict[str, str], q: str, field: str
) -> None:
    resp = await client.get("/search", params={"q": q})
    assert resp.status == 422
    assert field in (await resp.json())["error"]["details"]


async def test_visibility_is_part_of_the_query(client: Client, corpus: dict[str, str]) -> None:
    assert "Private sunset" not in await titles(client, "sunset")
    assert "Private sunset" in await titles(client, "sunset", corpus["alice"])
    assert "Bob's sunset" not in await titles(client, "sunset", corpus["alice"])
    assert await titles(client, "sunset", corpus["bob"], owner="me") == ["Bob's sunset"]


async def test_filters(client: Client, corpus: dict[str, str], clean_db: str) -> None:
    alice = corpus["alice"]
    assert await titles(client, "sunset", alice, tag="SEA") == ["Sunset over the harbour"]
    assert await titles(client, "sunset", alice, visibility="private") == ["Private sunset"]
    assert await titles(client, "sunset", owner="bob") == []
    assert await titles(client, "sunset", owner="nobody") == []
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("update images set created_at = '2020-06-01Z' where title = 'Garden'")
    finally:
        await conn.close()
    assert await titles(client, "sunset", created_before="2021-01-01T00:00:00Z") == ["Garden"]
    assert await titles(client, "sunset", created_after="2021-01-01T00:00:00+00:00") == [
        "Sunset over the harbour"]
    for params in ({"created_after": "yesterday"}, {"limit": "0"}, {"limit": "101"},
                   {"cursor": "nope"}, {"visibility": "all"},
                   {"created_after": "2022-01-01T00:00:00Z",
                    "created_before": "2021-01-01T00:00:00Z"}):
        resp = await client.get("/search", params={"q": "sunset", **params})
        assert resp.status == 422, params
    resp = await client.get("/search")
    assert resp.status == 422


@pytest.mark.parametrize("mode", ["exact", "head", "recent"])
async def test_pages_cover_every_match_once_in_order(
    client: Client, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    if mode != "exact":  # force the plans that frequent words take
        monkeypatch.setattr(search_service, "EXACT_RANKING_LIMIT", -1)
        monkeypatch.setattr(search_service, "HEAD_RANKING_MINIMUM",
                            -1 if mode == "head" else 10**9)
    key = (await sign_up(client, "carol"))["api_key"]
    for i in range(7):
        await add(client, key, f"boat {i}" if i % 2 else f"picture {i}",
                  description="a boat on a lake")
    everything = await search(client, "boat", limit="100")
    expected = [r["id"] for r in everything["results"]]
    # The head plan answers with the title and tag matches only.
    assert len(expected) == (3 if mode == "head" else 7)
    scores = [r["score"] for r in everything["results"]]
    assert scores == sorted(scores, reverse=True)

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        page = await search(client, "boat", **params)
        seen += [r["id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected


async def test_a_search_cursor_is_bound_to_who_asked(
    client: Client, corpus: dict[str, str]
) -> None:
    """bob's or an anonymous replay of alice's cursor is refused, and shows nobody alice's
    private sunset."""
    first = await search(client, "sunset", corpus["alice"], limit="1")
    assert first["next_cursor"] is not None
    params = {"q": "sunset", "limit": "10", "cursor": first["next_cursor"]}
    rest = await search(client, "sunset", corpus["alice"], limit="10",
                        cursor=first["next_cursor"])
    assert "Private sunset" in [r["title"] for r in first["results"] + rest["results"]]
    for headers in (bearer(corpus["bob"]), {}):
        resp = await client.get("/search", params=params, headers=headers)
        body = await resp.json()
        assert "Private sunset" not in [r["title"] for r in body.get("results", [])]
        assert resp.status == 422, body
        assert list(body["error"]["details"]) == ["cursor"]


async def test_the_head_plan_falls_back_when_no_title_matches(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_service, "EXACT_RANKING_LIMIT", -1)
    monkeypatch.setattr(search_service, "HEAD_RANKING_MINIMUM", -1)
    key = (await sign_up(client, "ellen"))["api_key"]
    await add(client, key, "A picture", description="a kayak on a lake")
    assert await titles(client, "kayak") == ["A picture"]


@pytest.mark.parametrize(("in_head", "index"), [(False, "images_search"),
                                               (True, "images_search_head")])
async def test_the_ranked_query_uses_the_gin_index(
    client: Client, clean_db: str, in_head: bool, index: str
) -> None:
    assert client.app is not None
    from server.keys import QUERIES

    await sign_up(client, "dora")
    sql = sql_of(client.app[QUERIES], "search_ranked")
    conn = await asyncpg.connect(clean_db)
    try:
        # 5,000 images, 10 of which mention a rare word; then real statistics.
        await conn.execute("""
            insert into images (owner_id, title, description, content_type, width, height,
                                size_bytes, sha256, phash, dhash, ahash, whash, colorhash,
                                hash_version, storage_key, visibility)
            select (select id from users), case when n % 500 = 0 then 'zebra crossing'
                   else 'street photo ' || n end, 'a picture', 'image/png', 1, 1, 1,
                   sha256(n::text::bytea), n, n, n, n, '', 1, 'k' || n, 'public'
            from generate_series(1, 5000) as n""")
        await conn.execute("analyze images")
        # At this size a sequential scan is cheapest; at a million rows (bench/text_search.py
        # prints those plans) the planner needs no nudge.
        await conn.execute("set enable_seqscan = off; set plan_cache_mode = force_custom_plan")
        args = positional_args(
            client.app[QUERIES], "search_ranked", q="zebra", head="", last_word="zebra",
            in_head=in_head, viewer_id=uuid.uuid4(), owner_id=None, tag=None, visibility=None,
            within=None,
            created_after=None, created_before=None, after_rank=None, after_created=None,
            after_id=None, limit=20)
        plan = "\n".join(r[0] for r in await conn.fetch("explain " + sql, *args))
        assert f"Bitmap Index Scan on {index} " in plan + " ", plan
        assert ("images_search_head" in plan) == in_head, plan
    finally:
        await conn.close()


async def test_search_is_documented(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    params = {p["name"] for p in spec["paths"]["/search"]["get"]["parameters"]}
    assert {"q", "tag", "owner", "visibility", "created_after", "created_before", "limit",
            "cursor"} <= params
