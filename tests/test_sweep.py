"""The sweep: orphan objects removed, rows without an object reported, uploads left alone."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.keys import POOL, QUERIES, STORAGE
from server.services.sweep import sweep
from tests.conftest import bearer, sign_up, storage_url_of
from tests.images import make_image

Client = TestClient[web.Request, web.Application]


@pytest.fixture(params=["local", "s3"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return storage_url_of(request, tmp_path, "")


async def one_chunk(data: bytes):  # type: ignore[no-untyped-def]
    yield data


async def test_sweep(client: Client) -> None:
    assert client.app is not None
    app = client.app
    key = (await sign_up(client, "sam"))["api_key"]
    data = FormData()
    for i in range(3):
        data.add_field("file", io.BytesIO(make_image("PNG", (20, 20), seed=i)), filename="a.png")
    resp = await client.post("/images", data=data, headers=bearer(key))
    images = (await resp.json())["images"]
    storage = app[STORAGE]
    for i in range(2):
        await storage.put(f"orphan-{i}", one_chunk(b"left behind"))
    # A row whose object went missing.
    async with app[POOL].acquire() as conn:
        broken_key = await conn.fetchval("select storage_key from images where id = $1",
                                         uuid.UUID(images[0]["id"]))
    await storage.delete(broken_key)

    # Young orphans may be uploads whose rows are coming: left alone.
    report = await sweep(app[POOL], app[QUERIES], storage, grace=timedelta(hours=1))
    assert report.orphans_removed == [] and report.orphans_kept_young == 2
    assert report.rows_without_object == [uuid.UUID(images[0]["id"])]

    report = await sweep(app[POOL], app[QUERIES], storage, grace=timedelta(0), dry_run=True)
    assert sorted(report.orphans_removed) == ["orphan-0", "orphan-1"]
    assert await storage.exists("orphan-0")

    report = await sweep(app[POOL], app[QUERIES], storage, grace=timedelta(0))
    assert sorted(report.orphans_removed) == ["orphan-0", "orphan-1"]
    # Two orphans, two originals (the third was lost) and three thumbnails.
    assert report.objects_seen == 2 + 2 + 3
    assert not await storage.exists("orphan-0")
    # The images with their objects are untouched.
    for image in images[1:]:
        resp = await client.get(image["file_url"], headers=bearer(key))
        assert resp.status == 200
