"""Copy detection by local features (issue 22): the families the region signals cannot reach
(crops, overlays, colour filters, combinations) found on real photographs over HTTP, with
where the picture lies; the inverted file in PostgreSQL against brute force, before and after
a merge; and visibility on every path that uses the features (search by image, similar, near
duplicates)."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import asyncpg
import numpy as np
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image

from server.db.pool import Connection, create_pool
from server.db.queries import load_queries
from server.imaging import analyse
from server.imaging import features as ft
from server.services import copies
from tests import copy_edits as ce
from tests.conftest import bearer, sign_up
from tests.images import encode, picture
from tests.test_copy_search import corner_error, search_each_copy, upload_all
from tests.test_similar import search_image

Client = TestClient[web.Request, web.Application]

# (photo, instance): one development and one held-out photo per family where the features find
# the picture (bench/copy_features.py measures the families as a whole).
FOUND = {
    "crop": (("coffee", 0), ("camera", 1)),
    "overlay": (("hubble_deep_field", 1), ("chelsea", 0)),
    "colour": (("astronaut", 0), ("moon", 0)),
    "combined": (("coins", 1), ("immunohistochemistry", 0)),
}
CORNER_TOLERANCE = 0.03  # of the query's diagonal


@pytest.mark.parametrize("family", list(FOUND))
async def test_local_features_find_what_the_region_signals_cannot(
    client: Client, family: str
) -> None:
    for c, results in await search_each_copy(client, family, FOUND[family]):
        for name in c.answers:
            matched = results[name]["matched_by"]
            assert matched["inliers"] >= ft.MIN_INLIERS, matched
            if matched["signal"] != "features" or c.corners is None:
                continue
            size = Image.open(io.BytesIO(c.data)).size
            truth = c.corners[c.answers.index(name)]
            assert corner_error(matched["corners"], truth, size) < CORNER_TOLERANCE, (
                name, matched["corners"], truth.tolist())


async def test_a_crop_is_found_by_features_with_the_picture_beyond_the_query(
    client: Client
) -> None:
    """A 4:5 crop of a landscape's middle (no region signal holds it), enlarged: the
    stored picture holds the query, so its corners lie partly outside the query's frame,
    where the crop cut it."""
    key = (await sign_up(client, "archivist"))["api_key"]
    picture_ = ce.photo("coffee")
    picture_ = picture_.resize((picture_.width * 2, picture_.height * 2))  # a large upload
    [stored] = (await upload_all(client, key, {"coffee": encode(picture_, "JPEG")})).values()
    height = picture_.height
    width = height * 4 // 5  # 53% of the picture, from its middle
    left = (picture_.width - width) // 2
    crop = picture_.crop((left, 0, left + width, height))
    # Enlarged past the size queries are analysed at: corners come back in its own pixels.
    crop = crop.resize((width * 3 // 2, height * 3 // 2), Image.Resampling.BICUBIC)
    width, height = crop.size
    assert max(crop.size) > ft.QUERY_SIDE
    body = await search_image(client, encode(crop, "JPEG"), key)
    [result] = body["results"]
    assert result["id"] == stored
    matched = result["matched_by"]
    assert (matched["signal"], matched["region"], matched["query_part"]) == (
        "features", "features", "region")
    xs = [x for x, _ in matched["corners"]]
    ys = [y for _, y in matched["corners"]]
    assert min(xs) < -0.35 * width and max(xs) > 1.35 * width  # cut off on both sides
    assert abs(min(ys)) < 0.03 * height and abs(max(ys) - height) < 0.03 * height


async def test_a_mirror_image_is_found_only_when_asked_for(client: Client) -> None:
    """Mirrored, a picture is another picture to ORB; with orientations=all the query's
    features are mirrored too, and the corners say where the picture lies in the query as
    posted (its left edge on the right)."""
    key = (await sign_up(client, "archivist"))["api_key"]
    [stored] = (await upload_all(client, key, {"coffee": ce.stored_bytes("coffee")})).values()
    mirrored = ce.stored_picture("coffee").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    crop = mirrored.crop((0, 0, mirrored.width * 3 // 4, mirrored.height))
    assert (await search_image(client, encode(crop, "JPEG"), key))["results"] == []
    body = await search_image(client, encode(crop, "JPEG"), key, orientations="all")
    [result] = body["results"]
    matched = result["matched_by"]
    assert (result["id"], matched["variant"]) == (stored, "local features, mirrored")
    width, height = crop.size
    top_left, top_right, _, bottom_left = matched["corners"]
    # The picture's own top-left corner is at the query's top right (beyond the crop, which
    # kept the picture's right three quarters, mirrored to the left).
    assert top_left[0] == pytest.approx(mirrored.width, abs=0.03 * width)
    assert top_right[0] == pytest.approx(0, abs=0.03 * width)
    assert top_left[1] == pytest.approx(0, abs=0.03 * height)
    assert bottom_left[1] == pytest.approx(height, abs=0.03 * height)


# --- visibility on every path that uses the features -------------------------------------------


async def test_features_never_reveal_someone_elses_private_picture(client: Client) -> None:
    alice = (await sign_up(client, "alice"))["api_key"]
    bob = (await sign_up(client, "bob"))["api_key"]
    c = ce.copy("crop", "coffee", 0)
    [secret] = (await upload_all(client, alice, {"coffee": ce.stored_bytes("coffee")},
                                 "private")).values()
    for key in (bob, None):  # search by image
        assert (await search_image(client, c.data, key))["results"] == [], key
    assert [r["id"] for r in (await search_image(client, c.data, alice))["results"]] == [secret]
    # Bob's own public crop: his similar list and his upload's near duplicates stay his.
    data = FormData()
    data.add_field("file", io.BytesIO(c.data), filename="crop.jpg")
    data.add_field("visibility", "public")
    resp = await client.post("/images", data=data, headers=bearer(bob))
    assert resp.status == 201
    [mine] = (await resp.json())["images"]
    assert mine["near_duplicates"] == []
    for key in (bob, None):
        resp = await client.get(f"/images/{mine['id']}/similar",
                                headers=bearer(key) if key else {})
        assert resp.status == 200
        assert (await resp.json())["results"] == [], key
    # Alice sees both ways: her private picture holds Bob's public crop.
    resp = await client.get(f"/images/{secret}/similar", headers=bearer(alice))
    assert [r["id"] for r in (await resp.json())["results"]] == [mine["id"]]
    assert (await resp.json())["results"][0]["matched_by"]["signal"] == "features"


async def test_an_upload_lists_a_crop_it_holds_among_its_near_duplicates(
    client: Client
) -> None:
    key = (await sign_up(client, "archivist"))["api_key"]
    c = ce.copy("crop", "camera", 1)
    [crop] = (await upload_all(client, key, {"crop": c.data})).values()
    data = FormData()
    data.add_field("file", io.BytesIO(ce.stored_bytes("camera")), filename="camera.jpg")
    resp = await client.post("/images", data=data, headers=bearer(key))
    [uploaded] = (await resp.json())["images"]
    found = uploaded["near_duplicates"]
    assert [d["id"] for d in found] == [crop]
    assert found[0]["matched_by"]["inliers"] >= ft.MIN_INLIERS


# --- the inverted file against brute force ------------------------------------------------------


async def _upload_pictures(client: Client, key: str, seeds: range) -> None:
    data = FormData()
    for seed in seeds:
        data.add_field("file", io.BytesIO(encode(picture((320, 240), seed), "PNG")),
                       filename=f"p{seed}.png")
    data.add_field("visibility", "public")
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()


async def _brute_force(conn: Connection, query_keys: set[int],
                       min_votes: int) -> list[tuple[UUID, int]]:
    votes = []
    for row in await conn.fetch("select image_id, points, descriptors, width, height "
                                "from image_features"):
        stored = ft.Features.unpacked(row["points"], row["descriptors"],
                                      (row["width"], row["height"]))
        shared = len(query_keys & set(ft.keys(stored.descriptors)))
        if shared >= min_votes:
            votes.append((row["image_id"], shared))
    return sorted(votes, key=lambda v: (-v[1], v[0]))


async def _candidates(conn: Connection, query_keys: list[int],
                      min_votes: int) -> list[tuple[UUID, int]]:
    with ThreadPoolExecutor(1) as cpu:
        found = await copies.candidates(conn, load_queries(), cpu, query_keys, None,
                                        max_df=10**9, min_votes=min_votes, limit=10_000)
    return [(c.image_id, c.votes) for c in found]


async def test_candidates_equal_brute_force_across_a_merge(client: Client, clean_db: str) -> None:
    """Vote counting in PostgreSQL equals counting shared keys in Python, whether the
    postings wait in the recent table, were merged, or both; a merge moves every posting
    once (two merges at once: one waits its turn or finds nothing left)."""
    key = (await sign_up(client, "archivist"))["api_key"]
    await _upload_pictures(client, key, range(300, 330))
    pool = await create_pool(clean_db, max_size=3)
    try:
        async with pool.acquire() as conn:
            recent = await conn.fetchval("select count(*) from feature_postings_recent")
            assert recent > 30 * 50  # ~2 keys a feature, ~100 features a picture
            queries_ = [analyse(encode(picture((320, 240), seed), "JPEG"), max_pixels=10**8,
                                query=True).features for seed in (305, 317, 999)]
            keys_of = [ft.keys(q.descriptors) for q in queries_ if q is not None]
            before = [await _candidates(conn, k, 2) for k in keys_of]
            for k, found in zip(keys_of, before, strict=True):
                assert found == await _brute_force(conn, set(k), 2)
                assert found  # some pictures share keys: the comparison is not vacuous
        moved = await asyncio.gather(copies.merge(pool, load_queries()),
                                     copies.merge(pool, load_queries()))
        assert sum(moved) == recent
        async with pool.acquire() as conn:
            assert await conn.fetchval("select sum(df) from feature_postings") == recent
        # New pictures, some of them copies of merged ones (keys that have arrays already):
        # unmerged, then merged into the existing arrays.
        await _upload_pictures(client, key, range(300, 310))
        await _upload_pictures(client, key, range(330, 340))
        for merge_now in (False, True):
            if merge_now:
                assert await copies.merge(pool, load_queries()) > 0
            async with pool.acquire() as conn:
                for k in keys_of:
                    assert await _candidates(conn, k, 2) == await _brute_force(conn, set(k), 2)
        async with pool.acquire() as conn:
            total = await conn.fetchval("select count(*) from feature_postings_recent")
            assert total == 0
            assert await conn.fetchval(
                "select count(*) from feature_postings where df <> cardinality(seqs)") == 0
            assert await conn.fetchval(
                "select count(*) from feature_postings where cardinality(seqs) > 1") > 0
    finally:
        await pool.close()


async def test_votes_count_both_postings_tables_and_skip_keys_held_too_widely(
    clean_db: str,
) -> None:
    """The postings come back in two binary layouts (merged arrays with their length words,
    recent seqs bare) and are counted as one; a merged key held by more than max_df images
    is not read; ties rank by number, the limit keeps the most voted."""
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("insert into feature_postings (key, df, seqs) values "
                           "(1, 3, '{5,6,7}'), (2, 2, '{5,6}'), (3, 1, '{900000}')")
        await conn.execute("insert into feature_postings_recent (key, seq) values "
                           "(1, 8), (2, 5), (4, 6)")
        queries = load_queries()

        async def votes(max_df: int, min_votes: int = 1, limit: int = 10,
                        region: tuple[int, ...] = ()) -> tuple[list[int], list[int]]:
            row = await queries.feature_postings_of(conn, keys=[1, 2, 3, 4], max_df=max_df)
            postings = copies.Postings.of(row)
            seqs = postings.holding(region) if region else postings.seqs
            return copies.top_votes(seqs, min_votes, limit)

        assert await votes(3) == ([5, 6, 7, 8, 900000], [3, 3, 1, 1, 1])
        assert await votes(2) == ([5, 6, 8, 900000], [2, 2, 1, 1])  # key 1's array unread
        assert await votes(3, min_votes=2) == ([5, 6], [3, 3])
        assert await votes(3, limit=1) == ([5], [3])
        assert await votes(0) == ([5, 6, 8], [1, 1, 1])  # the recent table alone
        # A region's keys alone: the postings of keys 2 and 4, merged and recent.
        assert await votes(3, region=(2, 4)) == ([5, 6], [2, 2])
        assert await votes(3, region=(1, 3)) == ([5, 6, 7, 8, 900000], [1, 1, 1, 1, 1])
        row = await queries.feature_postings_of(conn, keys=[99], max_df=10)
        assert copies.top_votes(copies.Postings.of(row).seqs, 1, 10) == ([], [])
    finally:
        await conn.close()


async def test_every_candidate_is_verified_not_only_the_best_voted(
    client: Client, clean_db: str
) -> None:
    """Four stored pictures side by side in one query: the features alone (no region
    signals) find and place each of them, whichever half of the candidates it ranks in."""
    names = ("astronaut", "coffee", "rocket", "coins")
    key = (await sign_up(client, "archivist"))["api_key"]
    ids = await upload_all(client, key, {n: ce.stored_bytes(n) for n in names})
    sheet = Image.new("RGB", (960, 720), "white")
    centres = []
    for i, name in enumerate(names):  # each fit to its quarter, keeping its shape
        tile = ce.stored_picture(name).convert("RGB")
        scale = min(470 / tile.width, 350 / tile.height)
        tile = tile.resize((round(tile.width * scale), round(tile.height * scale)))
        x, y = 480 * (i % 2) + (480 - tile.width) // 2, 360 * (i // 2) + (360 - tile.height) // 2
        sheet.paste(tile, (x, y))
        centres.append((x + tile.width / 2, y + tile.height / 2))
    query = analyse(encode(sheet, "JPEG"), max_pixels=10**8, query=True).features
    assert query is not None
    conn = await asyncpg.connect(clean_db)
    try:
        with ThreadPoolExecutor(2) as cpu:
            found = await copies.find(conn, load_queries(), cpu, query, None, size=(960, 720))
    finally:
        await conn.close()
    where = {str(f.image_id): np.array(f.corners).mean(axis=0) for f in found}
    assert set(where) == {ids[n] for n in names}
    for name, centre in zip(names, centres, strict=True):
        assert np.abs(where[ids[name]] - centre).max() < 20, (name, where[ids[name]], centre)


async def test_a_picture_in_a_post_is_not_outvoted_by_other_posts_of_the_app(
    client: Client, clean_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posts of the same app share its bars, icons and text layout: by the whole query's
    votes they outrank the picture the query holds (here: not among the best two). The
    picture's region votes on its own and brings it in."""
    key = (await sign_up(client, "archivist"))["api_key"]
    ids = await upload_all(client, key, {"astronaut": ce.stored_bytes("astronaut")})
    await upload_all(client, key, {f"d{i}": ce.distractor(i).data
                                   for i in (2945, 9585, 2915, 4025, 1195, 9945)})
    query = analyse(ce.copy("post", "astronaut", 0).data, max_pixels=10**8,
                    query=True).features
    assert query is not None and query.regions
    regions = [ft.keys(query.descriptors[m]) for m in query.regions]
    conn = await asyncpg.connect(clean_db)
    try:
        with ThreadPoolExecutor(1) as cpu:
            async def best(with_regions: bool) -> list[str]:
                found = await copies.candidates(
                    conn, load_queries(), cpu, ft.keys(query.descriptors), None,
                    regions=regions if with_regions else (), limit=2, region_limit=1)
                return [str(c.image_id) for c in found]

            assert ids["astronaut"] not in await best(with_regions=False)
            with_regions = await best(with_regions=True)
            assert ids["astronaut"] in with_regions and len(with_regions) == 3
            # The search itself, with as few candidates: the picture is found.
            monkeypatch.setattr(copies, "CANDIDATES", 2)
            monkeypatch.setattr(copies, "REGION_CANDIDATES", 1)
            found = await copies.find(conn, load_queries(), cpu, query, None, size=query.size)
    finally:
        await conn.close()
    assert [str(f.image_id) for f in found] == [ids["astronaut"]]


def test_region_masks_hold_the_features_inside_each_picture_region() -> None:
    rng = np.random.default_rng(3)
    points = rng.uniform(0, 400, (500, 2)).astype(np.float32)
    f = ft.Features(points, np.zeros((500, 32), np.uint8), (400, 400))
    square = ((100.0, 100.0), (300.0, 100.0), (300.0, 300.0), (100.0, 300.0))
    tilted = ((200.0, 0.0), (400.0, 200.0), (200.0, 400.0), (0.0, 200.0))
    tiny = ((0.0, 0.0), (20.0, 0.0), (20.0, 20.0), (0.0, 20.0))
    most = ((0.0, 0.0), (400.0, 0.0), (400.0, 320.0), (0.0, 320.0))  # 80% of the query
    found = ft.in_regions(f, [most, square, tiny, tilted[::-1], square, square])
    x, y = points[:, 0], points[:, 1]
    in_square = (x >= 100) & (x <= 300) & (y >= 100) & (y <= 300)
    in_tilted = np.abs(x - 200) + np.abs(y - 200) <= 200
    # The whole query (or most of it) and a region with too few features say nothing of
    # their own; either winding counts; at most MAX_REGIONS.
    assert len(found.regions) == ft.MAX_REGIONS
    assert [m.tolist() for m in found.regions] == [in_square.tolist(), in_tilted.tolist(),
                                                   in_square.tolist()]
    assert found == f and ft.in_regions(f, []).regions == ()


async def test_a_deleted_image_is_never_a_candidate(client: Client, clean_db: str) -> None:
    key = (await sign_up(client, "archivist"))["api_key"]
    ids = await upload_all(client, key, {"coffee": ce.stored_bytes("coffee")})
    pool = await create_pool(clean_db, max_size=2)
    try:
        await copies.merge(pool, load_queries())  # its postings now in the merged arrays
    finally:
        await pool.close()
    c = ce.copy("crop", "coffee", 0)
    assert len((await search_image(client, c.data, key))["results"]) == 1
    resp = await client.delete(f"/images/{ids['coffee']}", headers=bearer(key))
    assert resp.status == 204
    assert (await search_image(client, c.data, key))["results"] == []


# --- the features themselves --------------------------------------------------------------------


def test_stored_features_are_spread_over_the_picture_and_fit_the_budget() -> None:
    facts = analyse(ce.stored_bytes("astronaut"), max_pixels=10**8)
    assert facts.features is not None
    f = facts.features
    assert 100 <= len(f) <= ft.STORED_COUNT and max(f.size) <= ft.STORED_SIDE
    points, descriptors = f.packed()
    assert len(points) + len(descriptors) <= ft.STORED_COUNT * 36
    again = ft.Features.unpacked(points, descriptors, f.size)
    assert np.abs(again.points - f.points).max() <= 0.25 and again == ft.Features(
        again.points, f.descriptors, f.size)
    # Every quarter of the picture keeps a share: a crop of any half still has features.
    w, h = f.size
    for qx, qy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        x, y = f.points[:, 0] * 2 // w, f.points[:, 1] * 2 // h
        assert ((x == qx) & (y == qy)).sum() >= len(f) // 12, (qx, qy)


def test_keys_are_the_sampled_bits_of_each_table() -> None:
    rng = np.random.default_rng(5)
    desc = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    found = ft.keys(desc)
    bits = np.unpackbits(desc, axis=1)
    expected = set()
    for table, positions in enumerate(ft.KEY_BIT_POSITIONS):
        for row in bits:
            value = int("".join(str(b) for b in row[list(positions)]), 2)
            expected.add((table << ft.KEY_BITS) | value)
    assert found == sorted(expected) and all(0 <= k < 2**31 for k in found)
    assert len({b for p in ft.KEY_BIT_POSITIONS for b in p}) == ft.KEY_BITS * ft.KEY_TABLES


def test_other_views_of_the_scene_are_not_verified() -> None:
    """The hard negatives (other windows of the photo, overlapping the stored one by less
    than a third) never pass the geometry against the stored picture's copy."""
    query = analyse(ce.stored_bytes("chelsea"), max_pixels=10**8, query=True).features
    assert query is not None
    for _, data in ce.hard_negatives("chelsea"):
        stored = analyse(data, max_pixels=10**8).features
        assert stored is not None
        assert ft.verify(stored, query) is None
    itself = analyse(ce.stored_bytes("chelsea"), max_pixels=10**8).features
    assert itself is not None
    found = ft.verify(itself, query)
    assert found is not None and found.inliers >= 2 * ft.MIN_INLIERS


def _correspondences(stored_points: np.ndarray, size: tuple[int, int],
                     matrix: np.ndarray, query_size: tuple[int, int],
                     clutter: int = 300) -> tuple[ft.Features, ft.Features]:
    """A stored picture's features and a query holding those of them that `matrix` (2x3)
    puts inside the query's frame, exactly, among random clutter: only the geometry decides."""
    rng = np.random.default_rng(9)
    desc = rng.integers(0, 256, (len(stored_points), 32), dtype=np.uint8)
    stored = ft.Features(stored_points.astype(np.float32), desc, size)
    moved = stored_points @ matrix[:, :2].T + matrix[:, 2]
    inside = ((moved >= 0) & (moved < np.array(query_size))).all(axis=1)
    noise = rng.uniform(0, 1, (clutter, 2)) * np.array(query_size)
    query = ft.Features(
        np.vstack([moved[inside], noise]).astype(np.float32),
        np.vstack([desc[inside], rng.integers(0, 256, (clutter, 32), dtype=np.uint8)]),
        query_size)
    return stored, query


def _grid(x0: float, y0: float, x1: float, y1: float, n: int = 10) -> np.ndarray:
    xs, ys = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    jitter = np.random.default_rng(4).uniform(-2, 2, (n * n, 2))
    return np.column_stack([xs.ravel(), ys.ravel()]) + jitter


def test_the_geometry_accepts_a_copy_and_a_big_crop() -> None:
    size = (600, 400)
    points = _grid(10, 10, 590, 390)
    scaled = np.array([[1.5, 0, 40], [0, 1.5, 30]])  # inset, larger, in a bigger query
    stored, query = _correspondences(points, size, scaled, (1000, 700))
    found = ft.verify(stored, query)
    assert found is not None and found.inliers == 100
    assert np.allclose(found.corners, [(40, 30), (940, 30), (940, 630), (40, 630)], atol=1)
    crop = np.array([[2.0, 0, -400], [0, 2.0, -100]])  # 60% x 75% of it, enlarged
    stored, query = _correspondences(points, size, crop, (720, 600))
    found = ft.verify(stored, query)
    assert found is not None and found.corners[0] == pytest.approx((-400, -100), abs=1)


def test_a_clump_of_shared_detail_is_not_a_copy() -> None:
    """A logo or a watermark that two pictures share: many exact matches, all in one small
    place of the stored picture (spread < MIN_SPREAD of it), refused even where the pixels
    would agree."""
    size = (600, 400)
    clump = _grid(450, 300, 590, 390)  # 5% of the picture
    stored, query = _correspondences(clump, size, np.array([[1.0, 0, 0], [0, 1.0, 0]]), size)
    smooth = np.random.default_rng(2).integers(0, 256, (4, 6), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(smooth).resize(size, Image.Resampling.BICUBIC))
    thumb = Image.fromarray(pixels).resize((ft.THUMB, ft.THUMB), Image.Resampling.BOX)
    stored = ft.Features(stored.points, stored.descriptors, size, thumb.tobytes())
    query = ft.Features(query.points, query.descriptors, size, pixels=pixels)
    assert ft.verify(stored, query) is None
    ft_spread = ft.MIN_SPREAD
    try:  # the control: without the floor the pixels would let it through
        ft.MIN_SPREAD = 0.0
        found = ft.verify(stored, query)
        assert found is not None and found.ncc >= ft.MIN_NCC
    finally:
        ft.MIN_SPREAD = ft_spread


def test_a_sliver_of_the_scene_is_not_a_copy() -> None:
    """A query showing a quarter-wide strip of the stored picture (another view of the scene
    overlapping it by less than a third): the matches are many and spread along the strip,
    but most of the stored picture would lie outside the query."""
    size = (600, 400)
    points = _grid(10, 10, 590, 390, n=14)
    strip = np.array([[2.0, 0, 0], [0, 2.0, 0]])  # the left 150 px, doubled
    stored, query = _correspondences(points, size, strip, (300, 800))
    assert ft.verify(stored, query) is None
    half = np.array([[1.0, 0, 0], [0, 1.0, 0]])  # the left half: a crop that is a copy
    stored, query = _correspondences(points, size, half, (330, 400))
    assert ft.verify(stored, query) is not None
    # The share inside the frame, with corners on the frame's edges (where OpenCV's convex
    # intersection once gave 38% of the right area).
    picture = np.array([[-4.9e-14, -7.4e-14], [1200, 3.5e-15], [1200, 800], [1.6e-13, 800]])
    assert ft._area_inside(picture, (300, 800)) == pytest.approx(240_000)


def test_a_picture_without_texture_has_no_features_and_no_row() -> None:
    flat = Image.new("RGB", (400, 300), (120, 130, 140))
    facts = analyse(encode(flat, "PNG"), max_pixels=10**8)
    assert facts.features is not None and len(facts.features) == 0
    assert ft.keys(np.zeros((0, 32), np.uint8)) == []  # nothing to index


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (1, 1000), (5000, 2), (6000, 20), (15, 15)])
@pytest.mark.parametrize("query", [False, True])
def test_tiny_and_thin_pictures_have_no_features_and_no_error(
    size: tuple[int, int], query: bool
) -> None:
    """OpenCV's ORB asserts on images too small for its pyramid (a 1x1 PNG once made an
    upload answer 500): such pictures simply have no features."""
    noise = np.random.default_rng(1).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    facts = analyse(encode(Image.fromarray(noise), "PNG"), max_pixels=10**8, query=query,
                    variants=query)
    assert facts.features is not None and len(facts.features) == 0



def test_where_the_inliers_cover_little_the_pixels_decide() -> None:
    """Inliers over a small part of the stored picture: another view of the scene (a
    distractor of the stream, matched by a framed copy with 38 inliers) is refused because
    the framed query does not look like the rest of it; a crop (the query shows only part of
    the picture, where the matches cluster) is accepted because it does."""
    view = analyse(ce.distractor(491).data, max_pixels=10**8).features
    framed = analyse(ce.copy("frame", "immunohistochemistry", 1).data, max_pixels=10**8,
                     query=True).features
    camera = analyse(ce.stored_bytes("camera"), max_pixels=10**8).features
    crop = analyse(ce.copy("crop", "camera", 0).data, max_pixels=10**8, query=True).features
    assert view is not None and framed is not None and camera is not None and crop is not None
    assert ft.verify(view, framed) is None
    found = ft.verify(camera, crop)
    assert found is not None and found.spread < ft.SURE_SPREAD and found.ncc >= ft.MIN_NCC


async def test_a_slow_candidate_query_is_cut_off_and_the_search_still_answers(
    client: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Past CANDIDATES_TIMEOUT PostgreSQL cancels the features' query: the search answers
    with what the region signals find (here: nothing for a crop), not a 500, and says so in
    the log."""
    key = (await sign_up(client, "archivist"))["api_key"]
    await upload_all(client, key, {"coffee": ce.stored_bytes("coffee")})
    c = ce.copy("crop", "coffee", 0)
    assert len((await search_image(client, c.data, key))["results"]) == 1
    monkeypatch.setattr(copies, "CANDIDATES_TIMEOUT", 0.05)
    # A query of two million keys: seconds of index probes, on any PostgreSQL.
    monkeypatch.setattr(copies, "query_keys", lambda query: (list(range(2_000_000)), []))
    assert (await search_image(client, c.data, key))["results"] == []
    assert "feature candidates took over" in caplog.text


async def test_a_guess_is_not_enough_where_features_disagree(
    client: Client, clean_db: str
) -> None:
    """A resized copy of a plain photo (the clock) also matched another view of its scene
    through a guessed edit (its centre "rotated -2.5° and cropped"): where the stored images
    have local features, a guess must be confirmed by them. An image not yet given features
    (before `rehash`) keeps the guesses."""
    key = (await sign_up(client, "archivist"))["api_key"]
    ids = await upload_all(client, key, {"clock": ce.stored_bytes("clock"),
                                         "view": ce.distractor(7372).data}, "public")
    query = ce.copy("edit:resize", "clock", 0).data
    body = await search_image(client, query, key)
    assert [r["id"] for r in body["results"]] == [ids["clock"]]
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("delete from image_features where image_id = $1", ids["view"])
    finally:
        await conn.close()
    body = await search_image(client, query, key)
    guessed = {r["id"]: r["matched_by"]["variant"] for r in body["results"]}
    assert guessed.get(ids["view"], "").startswith("rotated"), guessed


async def test_a_page_is_not_matched_by_its_corners(client: Client, clean_db: str) -> None:
    """Two posts of the same app share their bars and buttons, so their corners look alike:
    a post as the query is matched by the picture it holds, never by its corners (even
    where the stored posts have no features yet to refuse such a guess)."""
    key = (await sign_up(client, "archivist"))["api_key"]
    files = {"chelsea": ce.stored_bytes("chelsea")}
    files |= {f"post {n}": ce.distractor(n).data for n in (635, 1495)}
    ids = await upload_all(client, key, files, "public")
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("delete from image_features where image_id <> $1", ids["chelsea"])
    finally:
        await conn.close()
    by_id = {image_id: title for title, image_id in ids.items()}
    body = await search_image(client, ce.copy("post", "chelsea", 1).data, key)
    assert not [by_id[r["id"]] for r in body["results"] if r["id"] != ids["chelsea"]]
