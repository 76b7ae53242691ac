"""Robust search by image on real photographs (skimage.data ships them): edits that the
whole-picture pHash missed (a caption band, a 20% crop, letterbox bars, a small tilt) find the
original first; unrelated photos and others' private images never come back; the rehash
backfill brings old rows over, and search works across the transition."""

from __future__ import annotations

import asyncio
import io
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image, ImageDraw

from server.backfill import Progress
from server.config import Config
from server.db.pool import create_pool, init_connection
from server.db.queries import load_queries
from server.imaging import HASH_VERSION, hamming, to_signed
from server.imaging.signals import REGIONS, Signal, radius_of
from server.keys import STORAGE
from server.services import matching
from server.services.rehash import BATCH, rehash
from tests.conftest import bearer, sign_up
from tests.images import make_image
from tests.test_similar import search_image, upload

skimage_data = pytest.importorskip("skimage.data")
Client = TestClient[web.Request, web.Application]
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skimage_data, name)()).convert("RGB")


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def caption_band(image: Image.Image) -> Image.Image:
    out = image.copy()
    draw = ImageDraw.Draw(out)
    w, h = out.size
    draw.rectangle((0, round(h * 0.87), w, h), fill=(0, 0, 0))
    draw.text((round(w * 0.04), round(h * 0.9)), "(c) 2026 somebody else", fill=(255, 255, 255))
    return out


def crop_one_side(image: Image.Image) -> Image.Image:
    w, h = image.size
    return image.crop((round(w * 0.2), 0, w, h))  # 20% of the area cut from the left


def letterbox(image: Image.Image) -> Image.Image:
    w, h = image.size
    canvas = Image.new("RGB", (w, round(h / 0.76)), (0, 0, 0))  # bars of 12% of the height
    canvas.paste(image, (0, (canvas.height - h) // 2))
    return canvas


def tilt(image: Image.Image) -> Image.Image:
    return image.rotate(4, resample=Image.Resampling.BICUBIC)


EDITS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "caption band": caption_band, "20% crop": crop_one_side, "letterbox": letterbox,
    "tilt 4°": tilt,
}


@pytest.fixture
async def photos(client: Client) -> dict[str, Any]:
    key = (await sign_up(client, "photographer"))["api_key"]
    uploaded = {name: await upload(client, key, jpeg(photo(name), 90), name)
                for name in PHOTOS}
    return {"key": key, "images": uploaded}


@pytest.mark.parametrize("edit", list(EDITS))
async def test_edited_photos_find_their_original_first(
    client: Client, photos: dict[str, Any], edit: str
) -> None:
    for name in PHOTOS:
        query = jpeg(EDITS[edit](photo(name)))
        body = await search_image(client, query)
        ids = [r["id"] for r in body["results"]]
        assert ids[:1] == [photos["images"][name]["id"]], (name, edit, body["results"])
        assert len(ids) == 1, "an unrelated photo came back"  # the others are all unrelated
        best = body["results"][0]
        assert 0 < best["score"] <= 1 and best["matched_by"]["signal"] in ("whole", "region")


async def test_the_whole_picture_phash_alone_misses_them(
    client: Client, photos: dict[str, Any]
) -> None:
    """What these cases held before robust matching (and still hold with match=exact)."""
    missed = 0
    for name in PHOTOS:
        for edit in ("caption band", "20% crop"):
            body = await search_image(client, jpeg(EDITS[edit](photo(name))), match="exact")
            missed += photos["images"][name]["id"] not in [r["id"] for r in body["results"]]
    assert missed >= 6


async def test_never_someone_elses_private_photo(client: Client, photos: dict[str, Any]) -> None:
    other = (await sign_up(client, "secretive"))["api_key"]
    private = await upload(client, other, jpeg(photo("horse"), 90), "mine", "private")
    query = jpeg(crop_one_side(photo("horse")))
    for key in (None, photos["key"]):
        body = await search_image(client, query, key)
        assert private["id"] not in [r["id"] for r in body["results"]]
    body = await search_image(client, query, other)
    assert [r["id"] for r in body["results"]] == [private["id"]]
    # A stored copy's "similar" and an upload's near duplicates: the same rule.
    copy = await upload(client, photos["key"], query, "copy")
    assert copy["near_duplicates"] == []
    resp = await client.get(f"/images/{copy['id']}/similar", headers=bearer(photos["key"]))
    assert (await resp.json())["results"] == []


async def test_similar_and_near_duplicates_use_the_same_matching(
    client: Client, photos: dict[str, Any]
) -> None:
    edited = await upload(client, photos["key"], jpeg(caption_band(photo("coffee"))), "caption")
    assert [d["id"] for d in edited["near_duplicates"]] == [photos["images"]["coffee"]["id"]]
    assert edited["near_duplicates"][0]["matched_by"]["signal"] == "region"
    resp = await client.get(f"/images/{edited['id']}/similar")
    assert [r["id"] for r in (await resp.json())["results"]] == [photos["images"]["coffee"]["id"]]


async def _make_old(dsn: str) -> None:
    """Rows as the previous pipeline left them: no signals, hash_version 1."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("delete from image_signals; update images set hash_version = 1")
    finally:
        await conn.close()


async def test_rehash_brings_old_rows_over_and_search_works_throughout(
    client: Client, photos: dict[str, Any], clean_db: str, config: Config
) -> None:
    await _make_old(clean_db)
    chelsea = photos["images"]["chelsea"]["id"]
    # Not rehashed yet: a re-encoded copy is still found (whole-picture pHash), a crop is not.
    body = await search_image(client, jpeg(photo("chelsea"), 40))
    assert [r["id"] for r in body["results"]] == [chelsea]
    crop = jpeg(crop_one_side(photo("chelsea")))
    assert (await search_image(client, crop))["results"] == []

    assert client.app is not None
    pool = await create_pool(clean_db, max_size=2)
    out = io.StringIO()
    try:
        with ThreadPoolExecutor(2) as cpu:
            report = await rehash(pool, load_queries(), client.app[STORAGE], cpu,
                                  progress=Progress(len(PHOTOS), "rehash", out=out))
            assert (report.done, report.skipped, report.failed) == (len(PHOTOS), 0, 0)
            again = await rehash(pool, load_queries(), client.app[STORAGE], cpu,
                                 progress=Progress(0, "rehash", out=io.StringIO()))
            assert again.done == 0  # resumable: nothing left to do
    finally:
        await pool.close()
    assert f"{len(PHOTOS)}/{len(PHOTOS)} (100%)" in out.getvalue()
    assert "/s" in out.getvalue()
    body = await search_image(client, crop)
    assert [r["id"] for r in body["results"]] == [chelsea]
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("select count(*) from images where hash_version < 2") == 0
        assert await conn.fetchval("select count(distinct image_id) from image_signals") == 4
    finally:
        await conn.close()


async def test_rehash_over_more_than_one_batch_leaves_none_behind(
    client: Client, clean_db: str
) -> None:
    """More images than one batch of the backfill: every one gets its hashes recomputed
    (zeroed first, so a row left behind shows) and its signals."""
    count = BATCH + 6
    key = (await sign_up(client, "many"))["api_key"]
    form = FormData()
    for i in range(count):
        form.add_field("file", io.BytesIO(make_image("PNG", (64, 48), seed=100 + i)),
                       filename=f"{i}.png")
    resp = await client.post("/images", data=form, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    conn = await asyncpg.connect(clean_db)
    try:
        hashes = "select id, phash, dhash, ahash, whash, colorhash from images order by id"
        before = await conn.fetch(hashes)
        assert len(before) == count
        await conn.execute("delete from image_signals; update images set hash_version = 1,"
                           " phash = 0, dhash = 0, ahash = 0, whash = 0, colorhash = ''")
    finally:
        await conn.close()
    assert client.app is not None
    pool = await create_pool(clean_db, max_size=2)
    try:
        with ThreadPoolExecutor(2) as cpu:
            report = await rehash(pool, load_queries(), client.app[STORAGE], cpu,
                                  progress=Progress(count, "rehash", out=io.StringIO()))
    finally:
        await pool.close()
    assert (report.done, report.skipped, report.failed) == (count, 0, 0)
    conn = await asyncpg.connect(clean_db)
    try:
        assert [tuple(r) for r in await conn.fetch(hashes)] == [tuple(r) for r in before]
        assert await conn.fetchval("select count(*) from images where hash_version <> $1",
                                   HASH_VERSION) == 0
        assert await conn.fetchval("select count(distinct image_id) from image_signals") == count
    finally:
        await conn.close()


async def test_rehash_command_skips_what_is_gone(
    client: Client, photos: dict[str, Any], clean_db: str, config: Config
) -> None:
    await _make_old(clean_db)
    assert client.app is not None
    storage = client.app[STORAGE]
    await storage.delete(await _key_of(clean_db, photos["images"]["rocket"]["id"]))
    env = {**os.environ, "DATABASE_URL": clean_db, "STORAGE_URL": config.storage_url,
           "DATA_DIR": str(config.data_dir)}
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "server", "rehash"], env=env,
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "rehashed 3; skipped 1" in result.stdout
    assert "rehash [" in result.stderr  # the progress line


async def _key_of(dsn: str, image_id: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("select storage_key from images where id = $1::uuid",
                                       image_id))
    finally:
        await conn.close()


async def test_signal_probes_equal_brute_force(clean_db: str) -> None:
    """The probes find exactly the stored signals of the variant's region within its radius:
    clustered hashes (as real ones are), random variants, every radius the service uses."""
    rng = random.Random(5)
    conn = await asyncpg.connect(clean_db)
    await init_connection(conn)
    try:
        owner = await conn.fetchval("insert into users (username, password_hash) values "
                                    "('probe', '$2b$04$' || repeat('x', 53)) returning id")
        centres = [rng.getrandbits(64) for _ in range(20)]
        stored: list[tuple[uuid.UUID, int, int]] = []  # (image, region, unsigned pHash)
        for k in range(600):
            image_id = await conn.fetchval(
                "insert into images (owner_id, content_type, width, height, size_bytes, sha256,"
                " phash, dhash, ahash, whash, colorhash, hash_version, storage_key, visibility)"
                " values ($1, 'image/png', 1, 1, 1, $2, 0, 0, 0, 0, '', 2, $3, 'public')"
                " returning id", owner, bytes(32), f"k{k}")
            for region in range(len(REGIONS)):
                value = rng.choice(centres)
                for bit in rng.sample(range(64), rng.randrange(0, 10)):
                    value ^= 1 << bit
                stored.append((image_id, region, value))
                await conn.execute("insert into image_signals (image_id, region, phash, dhash,"
                                   " thumb) values ($1, $2, $3, 0, $4)", image_id, region,
                                   to_signed(value), bytes(256))
        queries = load_queries()
        for _ in range(20):
            variants = [Signal(rng.choice(REGIONS), to_signed(rng.choice(centres) ^ (
                1 << rng.randrange(64))), 0, bytes(256)) for _ in range(6)]
            rows = [r async for r in queries.signal_candidates(
                conn, viewer_id=None, **matching.candidate_params(variants))]
            found = {(r["image_id"], r["region"], r["variant"]) for r in rows}
            expected = {(image_id, region, n)
                        for n, v in enumerate(variants, start=1)
                        for image_id, region, value in stored
                        if region == REGIONS.index(v.region)
                        and hamming(value, v.phash) <= radius_of(v)}
            assert found == expected
            assert expected  # the clusters make hits likely: the check is not vacuous
    finally:
        await conn.close()
