"""Search by image over HTTP on a real PostgreSQL, and the exactness of the Hamming search."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.db.pool import init_connection
from server.db.queries import load_queries, positional_args, sql_of
from server.imaging import hamming, to_signed
from server.keys import STORAGE
from server.services import similar
from server.services.cursors import Cursors
from tests.conftest import bearer, sign_up
from tests.families import EDITS, edited, original

Client = TestClient[web.Request, web.Application]


async def upload(client: Client, key: str, content: bytes, title: str = "x",
                 visibility: str = "public") -> dict[str, Any]:
    data = FormData()
    data.add_field("file", io.BytesIO(content), filename=f"{title}.jpg")
    data.add_field("title", title)
    data.add_field("visibility", visibility)
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    image: dict[str, Any] = (await resp.json())["images"][0]
    return image


async def search_image(client: Client, content: bytes, key: str | None = None,
                       status: int = 200, **fields: str) -> Any:
    data = FormData(default_to_multipart=True)
    data.add_field("file", io.BytesIO(content), filename="query.jpg")
    for name, value in fields.items():
        data.add_field(name, value)
    resp = await client.post("/search/image", data=data, headers=bearer(key) if key else {})
    body = await resp.json()
    assert resp.status == status, body
    return body


@pytest.fixture
async def gallery(client: Client) -> dict[str, Any]:
    alice = (await sign_up(client, "alice"))["api_key"]
    bob = (await sign_up(client, "bob"))["api_key"]
    images = {
        "sunset": await upload(client, alice, original(10), "sunset"),
        "other1": await upload(client, alice, original(11), "other one"),
        "other2": await upload(client, alice, original(12), "other two"),
        "bob private": await upload(client, bob, original(10), "bob's copy", "private"),
    }
    return {"alice": alice, "bob": bob, "images": images}


# --- behaviour over HTTP ------------------------------------------------------------------


@pytest.mark.parametrize("edit", [e for e, (_, needs_all) in EDITS.items()
                                  if not needs_all and e != "text overlay"])
async def test_edited_copies_find_the_original(
    client: Client, gallery: dict[str, Any], edit: str
) -> None:
    body = await search_image(client, edited(10, edit), gallery["alice"])
    results = body["results"]
    assert [r["title"] for r in results] == ["sunset"], edit
    assert 0 <= results[0]["distance"] <= 10
    assert len(body["query"]["hashes"]["phash"]) == 16


async def test_rotations_and_mirrors_need_orientations_all(
    client: Client, gallery: dict[str, Any]
) -> None:
    for edit in ("rotate 90", "rotate 180", "mirror"):
        query = edited(10, edit)
        exact = await search_image(client, query, gallery["alice"], match="exact")
        assert exact["results"] == []
        body = await search_image(client, query, gallery["alice"], orientations="all")
        assert [r["title"] for r in body["results"]] == ["sunset"], edit
    # A mirror image is another picture to local features; a rotation is not (ORB's keypoints
    # carry their orientation): robust search finds turned copies even without asking.
    mirrored = await search_image(client, edited(10, "mirror"), gallery["alice"])
    assert mirrored["results"] == []
    turned = await search_image(client, edited(10, "rotate 90"), gallery["alice"])
    assert [(r["title"], r["matched_by"]["signal"]) for r in turned["results"]] == [
        ("sunset", "features")]


async def test_never_someone_elses_private_image(client: Client, gallery: dict[str, Any]) -> None:
    for key in (gallery["alice"], None):
        titles = [r["title"] for r in (await search_image(client, original(10), key))["results"]]
        assert "bob's copy" not in titles
    body = await search_image(client, original(10), gallery["bob"])
    assert {(r["title"], r["distance"]) for r in body["results"]} == {
        ("sunset", 0), ("bob's copy", 0)}


@pytest.mark.parametrize("match", ["exact", "robust"])
async def test_results_are_sorted_and_pages_are_stable(client: Client, match: str) -> None:
    key = (await sign_up(client, "carol"))["api_key"]
    for i, edit in enumerate(("recompress", "brightness", "crop 2%", "png", "resize")):
        await upload(client, key, edited(20, edit), f"copy {i}")
    everything = (await search_image(client, original(20), key, limit="100",
                                     match=match))["results"]
    assert len(everything) == 5
    if match == "exact":  # nearest first
        order: list[tuple[float, str]] = [(r["distance"], r["id"]) for r in everything]
        assert all(r["distance"] % 2 == 0 for r in everything)  # pHash sets half its bits
    else:  # best score first
        order = [(-r["score"], r["id"]) for r in everything]
    assert order == sorted(order)

    seen: list[str] = []
    cursor: str | None = None
    while True:
        fields = {"limit": "2", "match": match, **({"cursor": cursor} if cursor else {})}
        page = await search_image(client, original(20), key, 200, **fields)
        seen += [r["id"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [r["id"] for r in everything]


async def test_max_distance_and_filters(client: Client, gallery: dict[str, Any]) -> None:
    alice = gallery["alice"]
    query = edited(10, "crop 5%")
    exact = await search_image(client, query, alice, max_distance="0", match="exact")
    assert exact["results"] == []
    found = await search_image(client, query, alice, max_distance="12", match="exact")
    assert len(found["results"]) == 1
    assert (await search_image(client, query, alice, q="sunset"))["results"]
    assert (await search_image(client, query, alice, q="harbour"))["results"] == []
    assert (await search_image(client, query, alice, owner="bob"))["results"] == []
    assert (await search_image(client, query, alice, owner="me"))["results"]
    assert (await search_image(client, query, alice, tag="nothing"))["results"] == []
    wide = await search_image(client, original(11), alice, max_distance="32")
    assert [r["title"] for r in wide["results"]][0] == "other one"


@pytest.mark.parametrize(("fields", "name"), [
    ({"max_distance": "33"}, "max_distance"), ({"max_distance": "-1"}, "max_distance"),
    ({"max_distance": "ten"}, "max_distance"), ({"limit": "0"}, "limit"),
    ({"limit": "101"}, "limit"), ({"orientations": "some"}, "orientations"),
    ({"colour": "red"}, "colour"), ({"cursor": "garbage"}, "cursor"),
])
async def test_invalid_parameters_are_422_naming_the_field(
    client: Client, gallery: dict[str, Any], fields: dict[str, str], name: str
) -> None:
    body = await search_image(client, original(10), status=422, **fields)
    assert name in body["error"]["details"]


async def test_bad_query_images(client: Client, gallery: dict[str, Any], clean_db: str) -> None:
    body = await search_image(client, b"not an image at all" * 10, status=415)
    assert body["error"]["code"] == "unsupported_media_type"
    body = await search_image(client, original(10)[:2000], status=422)
    assert body["error"]["code"] == "validation_error"
    resp = await client.post("/search/image", json={"file": "x"})
    assert resp.status == 415
    data = FormData(default_to_multipart=True)
    data.add_field("max_distance", "4")
    resp = await client.post("/search/image", data=data)
    assert resp.status == 422 and "file" in (await resp.json())["error"]["details"]
    data = FormData()
    for _ in range(2):
        data.add_field("file", io.BytesIO(original(10)), filename="a.jpg")
    resp = await client.post("/search/image", data=data)
    assert resp.status == 422


async def test_a_query_image_is_never_stored(
    client: Client, gallery: dict[str, Any], clean_db: str
) -> None:
    assert client.app is not None
    before = [info.key async for info in client.app[STORAGE].list()]
    await search_image(client, edited(10, "recompress"), gallery["alice"])
    assert [info.key async for info in client.app[STORAGE].list()] == before
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("select count(*) from images") == 4
    finally:
        await conn.close()


async def test_similar_to_a_stored_image(client: Client, gallery: dict[str, Any]) -> None:
    alice = gallery["alice"]
    copy = await upload(client, alice, edited(10, "brightness"), "brighter")
    sunset = gallery["images"]["sunset"]
    resp = await client.get(f"/images/{sunset['id']}/similar", headers=bearer(alice))
    body = await resp.json()
    assert [r["id"] for r in body["results"]] == [copy["id"]]  # itself left out
    assert body["query"]["hashes"]["phash"] == sunset["hashes"]["phash"]
    private = gallery["images"]["bob private"]
    resp = await client.get(f"/images/{private['id']}/similar", headers=bearer(alice))
    assert resp.status == 404
    resp = await client.get(f"/images/{sunset['id']}/similar", params={"max_distance": "40"})
    assert resp.status == 422


async def test_uploads_list_their_near_duplicates(client: Client, gallery: dict[str, Any]) -> None:
    alice = gallery["alice"]
    copy = await upload(client, alice, edited(10, "recompress"), "again")
    assert [d["id"] for d in copy["near_duplicates"]] == [gallery["images"]["sunset"]["id"]]
    assert copy["near_duplicates"][0]["score"] > 0.9
    fresh = await upload(client, alice, original(13), "new")
    assert fresh["near_duplicates"] == []


# --- exactness of the SQL -------------------------------------------------------------------


def test_probe_counts_match_the_pigeonhole_enumeration() -> None:
    counts = {r: sum(map(len, similar.probe_values([random.getrandbits(64)], r)))
              for r in (4, 8, 12)}
    assert counts == {4: 20, 8: 188, 12: 1108}


def test_every_hash_within_the_radius_hits_a_probe() -> None:
    rng = random.Random(5)
    for _ in range(2000):
        radius = rng.randrange(0, 17)
        query = rng.getrandbits(64)
        flips = rng.sample(range(64), rng.randrange(0, radius + 1))
        target = query ^ sum(1 << b for b in flips)
        probes = similar.probe_values([to_signed(query)], radius)
        chunks = similar.chunks_of(target)
        assert any(chunks[i] in probes[i] for i in range(4)), (radius, flips)


def _flip(value: int, bits: int, rng: random.Random) -> int:
    return value ^ sum(1 << b for b in rng.sample(range(64), bits))


@pytest.fixture
async def hash_table(client: Client, clean_db: str) -> tuple[str, list[tuple[uuid.UUID, int, str]]]:
    """3,000 images with clustered hashes (families with 0-14 bits flipped), half public."""
    owner = uuid.UUID((await sign_up(client, "erin"))["id"])
    rng = random.Random(11)
    centres = [rng.getrandbits(64) for _ in range(60)]
    rows = []
    for i in range(3000):
        value = to_signed(_flip(rng.choice(centres), rng.randrange(0, 15), rng))
        rows.append((uuid.uuid4(), value, "public" if i % 2 else "private"))
    conn = await asyncpg.connect(clean_db)
    try:
        other = await conn.fetchval(
            "insert into users (username, password_hash) values ('zed', '$2b$04$x') returning id")
        await conn.copy_records_to_table(
            "images",
            columns=["id", "owner_id", "content_type", "width", "height", "size_bytes", "sha256",
                     "phash", "dhash", "ahash", "whash", "colorhash", "hash_version",
                     "storage_key", "visibility"],
            records=[(i, owner if n % 3 == 0 else other, "image/png", 1, 1, 1, bytes(32), v, 0,
                      0, 0, "", 1, f"k{n}", vis) for n, (i, v, vis) in enumerate(rows)])
        await conn.execute("vacuum analyze images")
    finally:
        await conn.close()
    visible = [(i, v, vis) for n, (i, v, vis) in enumerate(rows) if vis == "public" or n % 3 == 0]
    return str(owner), visible


async def test_radius_search_equals_brute_force(
    clean_db: str, hash_table: tuple[str, list[tuple[uuid.UUID, int, str]]]
) -> None:
    owner, visible = hash_table
    rng = random.Random(3)
    queries = load_queries()
    conn = await asyncpg.connect(clean_db)
    await init_connection(conn)
    try:
        for radius in (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 24):
            for _ in range(5):
                query = rng.choice(visible)[1] if rng.random() < 0.7 else to_signed(
                    rng.getrandbits(64))
                hashes = [query, to_signed(rng.getrandbits(64))]
                rows, _ = await similar.within(
                    conn, queries, Cursors(b"k" * 32), hashes, viewer_id=uuid.UUID(owner),
                    max_distance=radius, filters=similar.SimilarFilters(), limit=100)
                expected = sorted(
                    (min(hamming(v, h) for h in hashes), i) for i, v, _ in visible
                    if min(hamming(v, h) for h in hashes) <= radius)[:100]
                assert [(r["distance"], r["id"]) for r in rows] == expected, radius
    finally:
        await conn.close()


async def test_nearest_k_equals_brute_force(
    clean_db: str, hash_table: tuple[str, list[tuple[uuid.UUID, int, str]]]
) -> None:
    owner, visible = hash_table
    rng = random.Random(4)
    conn = await asyncpg.connect(clean_db)
    await init_connection(conn)
    try:
        for _ in range(10):
            query = to_signed(rng.getrandbits(64))
            rows = await similar.nearest(conn, load_queries(), [query],
                                         viewer_id=uuid.UUID(owner), k=10,
                                         filters=similar.SimilarFilters())
            expected = sorted((hamming(v, query), i) for i, v, _ in visible)[:10]
            assert [(r["distance"], r["id"]) for r in rows] == expected
    finally:
        await conn.close()


async def test_probes_are_index_only_scans(
    clean_db: str, hash_table: tuple[str, list[tuple[uuid.UUID, int, str]]]
) -> None:
    owner, visible = hash_table
    queries = load_queries()
    hashes: Sequence[int] = [visible[0][1]]
    c0, c1, c2, c3 = similar.probe_values(hashes, 8)
    args = positional_args(
        queries, "similar_probe", query=hashes[0], others=[], c0=c0, c1=c1, c2=c2, c3=c3,
        viewer_id=uuid.UUID(owner), max_distance=8, exclude_id=None, q=None, head=None,
        last_word=None, tag=None, owner_id=None, within=None, after_distance=None, after_id=None,
        limit=21)
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("set enable_seqscan = off; set enable_bitmapscan = off")
        plan = "\n".join(r[0] for r in await conn.fetch(
            "explain " + sql_of(queries, "similar_probe"), *args))
    finally:
        await conn.close()
    for chunk in range(4):
        assert f"Index Only Scan using images_phash_c{chunk}" in plan, plan
