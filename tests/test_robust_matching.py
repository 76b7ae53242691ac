"""Robust search by image on real photographs (skimage.data ships them): edits that the
whole-picture pHash missed (a caption band, a 20% crop, letterbox bars, a small tilt) find the
original first; unrelated photos and others' private images never come back; the rehash
backfill brings old rows over, and search works across the transition."""

from __future__ import annotations

import asyncio
import io
import math
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import numpy as np
import pytest
import scipy.fft
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from PIL import Image, ImageDraw

from server.backfill import Progress
from server.config import Config
from server.db.pool import create_pool, init_connection
from server.db.queries import load_queries
from server.imaging import HASH_VERSION, hamming, to_signed
from server.imaging.signals import (
    DHASH_MAX,
    NCC_MIN,
    REGIONS,
    THUMB,
    Signal,
    ncc,
    query_signals,
    radius_of,
    stored_signals,
    verify,
)
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
        assert 0 < best["score"] <= 1
        assert best["matched_by"]["signal"] in ("whole", "region", "features")


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
    """Rows as the pipeline before signals left them: no signals, no local features,
    hash_version 1."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("delete from image_signals; delete from image_features; "
                           "update images set hash_version = 1")
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
        assert await conn.fetchval("select count(*) from image_features") == 4
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
                conn, viewer_id=None, within=None, **matching.candidate_params(variants))]
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


# --- verification: a pHash that agrees is not enough ------------------------------------------


def _thumb(pixels: np.ndarray) -> bytes:
    """A THUMB x THUMB thumbnail of a zero-mean pattern: gray levels about 128 +- 40."""
    levels = np.rint(128 + 40 * pixels / pixels.std()).clip(0, 255).astype(np.uint8)
    return bytes(levels.tobytes())


def _correlated(x: np.ndarray, r: float, seed: int) -> np.ndarray:
    """A zero-mean pattern whose correlation with the zero-mean `x` is exactly r."""
    z = np.random.default_rng(seed).normal(size=x.shape)
    z -= z.mean()
    z -= x * (z * x).sum() / (x * x).sum()
    return r * x / np.linalg.norm(x) + math.sqrt(1 - r * r) * z / np.linalg.norm(z)


def test_verification_needs_the_dhash_and_the_thumbnail_to_agree() -> None:
    x = np.random.default_rng(1).normal(size=(THUMB, THUMB))
    x -= x.mean()
    thumb = _thumb(x)
    for region in ("whole", "centre"):
        variant = Signal(region, to_signed(0x0123456789ABCDEF), 0, thumb)
        assert verify(variant, 0, 0, thumb) == 1.0
        assert verify(variant, radius_of(variant), 0, thumb) is not None
        assert verify(variant, radius_of(variant) + 2, 0, thumb) is None
        # The dHash: DHASH_MAX bits off is still the same picture, one more is not.
        assert verify(variant, 2, (1 << DHASH_MAX) - 1, thumb) == 1 - (2 + DHASH_MAX) / 128
        assert verify(variant, 0, (1 << (DHASH_MAX + 1)) - 1, thumb) is None
        assert verify(variant, 0, -1, thumb) is None  # all 64 bits
        # The thumbnail, with pHash and dHash identical: correlation NCC_MIN or more.
        close, far = _thumb(_correlated(x, NCC_MIN + 0.02, 2)), _thumb(
            _correlated(x, NCC_MIN - 0.02, 3))
        assert NCC_MIN < ncc(thumb, close) < NCC_MIN + 0.03
        assert NCC_MIN - 0.03 < ncc(thumb, far) < NCC_MIN
        assert verify(variant, 0, 0, close) is not None
        assert verify(variant, 0, 0, far) is None
        unrelated = _thumb(_correlated(x, 0.0, 4))
        negative = bytes(255 - b for b in thumb)
        flat = bytes([128]) * (THUMB * THUMB)  # proves nothing
        for other in (unrelated, negative, flat):
            assert verify(variant, 0, 0, other) is None


def _png(coefficients: np.ndarray) -> bytes:
    """A 32 x 32 gray picture from its orthonormal DCT: at that size the stored and the
    query's "whole" regions are the picture itself, pixel for pixel."""
    pixels = scipy.fft.idctn(coefficients, norm="ortho") + 128
    assert 20 < pixels.min() and pixels.max() < 235  # no clipping, no bar to trim
    out = io.BytesIO()
    Image.fromarray(np.rint(pixels).astype(np.uint8), "L").save(out, "PNG")
    return out.getvalue()


def pictures_with_the_same_phash() -> tuple[bytes, bytes, bytes, bytes]:
    """(a, b1, a2, b2): pairs of different pictures whose pHashes agree (it reads only the
    lowest 8 x 8 DCT frequencies). b1 adds detail at vertical frequency 8, which the dHash's
    4-pixel rows average away but the thumbnail keeps: only the thumbnail tells b1 from a.
    b2 adds faint horizontal detail to a2's strong vertical shading: the thumbnails still
    correlate, and only the dHash (left-right differences) tells them apart."""
    rng = np.random.default_rng(0)
    low = np.zeros((32, 32))
    low[:8, :8] = rng.normal(0, 60, (8, 8))
    low[0, 0] = 0
    b1 = low.copy()
    b1[8, :8] = rng.normal(0, 250, 8)
    shading = np.zeros((32, 32))
    shading[:8, 0] = rng.normal(0, 250, 8)
    shading[0, 0] = 0
    shading[:8, 1:8] = rng.normal(0, 10, (8, 7))
    b2 = shading.copy()
    b2[:4, 8:12] = rng.normal(0, 50, (4, 4))
    return _png(low), _png(b1), _png(shading), _png(b2)


def _whole(data: bytes, query: bool) -> Signal:
    with Image.open(io.BytesIO(data)) as image:
        gray = image.convert("L")
    signals = query_signals(gray) if query else stored_signals(gray)
    return next(s for s in signals if s.region == "whole")


def test_the_crafted_pictures_reach_verification_and_fail_it() -> None:
    """The premise of the search test below: each query's pHash is within the probe's radius
    of its stored picture, and one check each refuses the pair."""
    a, b1, a2, b2 = pictures_with_the_same_phash()
    for stored, query, failing in ((a, b1, "thumbnail"), (a2, b2, "dhash")):
        s, q = _whole(stored, False), _whole(query, True)
        distance = hamming(s.phash, q.phash)
        assert distance <= radius_of(q)
        dhash_bits, correlation = hamming(s.dhash, q.dhash), ncc(s.thumb, q.thumb)
        if failing == "thumbnail":
            assert dhash_bits <= DHASH_MAX and correlation < NCC_MIN - 0.2
        else:
            assert dhash_bits > DHASH_MAX + 4 and correlation > NCC_MIN + 0.05
        assert verify(q, distance, s.dhash, s.thumb) is None


async def test_pictures_that_only_share_a_phash_are_not_found(client: Client) -> None:
    """Search by image with the crafted pictures: the candidates the probes find are refused
    by verification, so nothing comes back; the stored pictures themselves are found."""
    key = (await sign_up(client, "crafter"))["api_key"]
    a, b1, a2, b2 = pictures_with_the_same_phash()
    stored = {name: (await upload(client, key, data, name))["id"]
              for name, data in (("a", a), ("a2", a2))}
    for name, data in (("a", a), ("a2", a2)):
        body = await search_image(client, data)
        assert [r["id"] for r in body["results"]] == [stored[name]]
    for query in (b1, b2):
        body = await search_image(client, query)
        assert body["results"] == []
        body = await search_image(client, query, key)
        assert body["results"] == []
