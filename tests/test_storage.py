"""One contract for every storage back-end, run against a temp folder and a real S3 server
(moto in a thread), plus a few back-end-specific checks. Nothing is mocked."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session

from server.storage import (
    CHUNK_SIZE,
    InvalidRange,
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageUnavailable,
    open_storage,
)
from tests.s3server import REGION, S3Server, closed_port

MIB = 1024 * 1024
PART = 5 * MIB  # the smallest part S3 allows, so multipart uploads happen with little data
BIG = os.urandom(2 * PART + MIB + 123)  # three parts on S3, the last one short
SMALL = bytes(range(256)) * 4  # 1024 bytes
# Enough to make S3 upload a whole part before a source stalls or fails.
FIRST_PART = BIG[: PART + CHUNK_SIZE]


# --- servers and fixtures ---------------------------------------------------------


@pytest.fixture
def bucket() -> str:
    return f"test-{uuid.uuid4().hex[:16]}"


@contextlib.asynccontextmanager
async def raw_client() -> AsyncIterator[Any]:
    """A plain S3 client, to look behind the storage's back."""
    async with get_session().create_client("s3", region_name=REGION) as client:
        yield client


async def empty_bucket(name: str) -> None:
    async with raw_client() as client:
        listing = await client.list_objects_v2(Bucket=name)
        for obj in listing.get("Contents", ()):
            await client.delete_object(Bucket=name, Key=obj["Key"])
        await client.delete_bucket(Bucket=name)


@pytest.fixture(params=["local", "s3"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, bucket: str
) -> AsyncIterator[Storage]:
    if request.param == "local":
        url = (tmp_path / "objects").as_uri()
    else:
        request.getfixturevalue("s3_env")
        url = f"s3://{bucket}/some/prefix"  # a prefix, so key mapping is exercised too
    async with open_storage(url, part_size=PART) as store:
        yield store
    if request.param == "s3":
        await empty_bucket(bucket)  # keep moto's memory flat over the session


# --- helpers ----------------------------------------------------------------------


async def chunks_of(data: bytes, size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    async with await storage.get(key, start=start, end=end) as reader:
        return b"".join([chunk async for chunk in reader])


async def keys(storage: Storage, prefix: str = "") -> list[str]:
    return sorted([info.key async for info in storage.list(prefix)])


async def leftovers(storage: Storage) -> list[str]:
    """Unfinished uploads: temp files (local) or open multipart uploads (S3)."""
    if isinstance(storage, LocalStorage):
        return [p.name for p in (storage.root / ".tmp").iterdir()]
    assert isinstance(storage, S3Storage)
    async with raw_client() as client:
        resp = await client.list_multipart_uploads(Bucket=storage.bucket)
    return [upload["Key"] for upload in resp.get("Uploads", ())]


# --- the contract -----------------------------------------------------------------


async def test_small_round_trip(storage: Storage) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)  # slack for coarse server clocks
    info = await storage.put("ab/cd/small", chunks_of(b"hello"), content_type="text/plain")
    assert (info.key, info.size) == ("ab/cd/small", 5)
    assert info.modified.tzinfo is not None and info.modified.utcoffset() == timedelta(0)
    assert before <= info.modified <= datetime.now(UTC) + timedelta(seconds=5)
    async with await storage.get("ab/cd/small") as reader:
        assert (reader.size, reader.start, reader.length) == (5, 0, 5)
        assert b"".join([chunk async for chunk in reader]) == b"hello"


async def test_multi_chunk_round_trip(storage: Storage) -> None:
    info = await storage.put("ab/cd/big", chunks_of(BIG))
    assert info.size == len(BIG)
    assert await read(storage, "ab/cd/big") == BIG
    # A range across the first part boundary of the multipart object.
    assert await read(storage, "ab/cd/big", PART - 10, PART + 9) == BIG[PART - 10 : PART + 10]


async def test_overwrite_replaces_content(storage: Storage) -> None:
    await storage.put("k/1", chunks_of(b"old content"))
    await storage.put("k/1", chunks_of(b"new"))
    assert await read(storage, "k/1") == b"new"


async def test_ranges(storage: Storage) -> None:
    await storage.put("r/1", chunks_of(SMALL, 100))
    assert await read(storage, "r/1", 1000) == SMALL[1000:]
    assert await read(storage, "r/1", 10, 19) == SMALL[10:20]
    assert await read(storage, "r/1", 1000, 5000) == SMALL[1000:]  # end clamped
    assert await read(storage, "r/1", 1023, 1023) == SMALL[1023:]
    async with await storage.get("r/1", start=10, end=19) as reader:
        assert (reader.size, reader.start, reader.length) == (1024, 10, 10)
    async with await storage.get("r/1", start=1000, end=5000) as reader:
        assert (reader.size, reader.start, reader.length) == (1024, 1000, 24)
    for start in (1024, 5000):
        with pytest.raises(InvalidRange):
            await storage.get("r/1", start=start)
    with pytest.raises(ValueError):
        await storage.get("r/1", start=20, end=10)


async def test_get_missing_raises(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.get("no/such/key")
    with pytest.raises(ObjectNotFound):
        await storage.get("no/such/key", start=5, end=10)


async def test_head_exists_delete(storage: Storage) -> None:
    assert await storage.head("h/1") is None
    assert not await storage.exists("h/1")
    await storage.put("h/1", chunks_of(SMALL))
    info = await storage.head("h/1")
    assert info is not None and (info.key, info.size) == ("h/1", len(SMALL))
    assert info.modified.utcoffset() == timedelta(0)
    assert await storage.exists("h/1")
    await storage.delete("h/1")
    assert not await storage.exists("h/1")
    await storage.delete("h/1")  # idempotent
    await storage.delete("never/there")
    with pytest.raises(ObjectNotFound):
        await storage.get("h/1")


async def test_list(storage: Storage) -> None:
    assert await keys(storage) == []
    for key in ("aa/bb/1", "aa/bc/2", "ab/cd/3", "top"):
        await storage.put(key, chunks_of(key.encode()))
    assert await keys(storage) == ["aa/bb/1", "aa/bc/2", "ab/cd/3", "top"]
    assert await keys(storage, "aa/") == ["aa/bb/1", "aa/bc/2"]
    assert await keys(storage, "aa/b") == ["aa/bb/1", "aa/bc/2"]
    assert await keys(storage, "aa/bb/") == ["aa/bb/1"]
    assert await keys(storage, "a") == ["aa/bb/1", "aa/bc/2", "ab/cd/3"]
    assert await keys(storage, "zz") == []
    infos = {info.key: info async for info in storage.list()}
    assert infos["top"].size == 3 and infos["top"].modified.utcoffset() == timedelta(0)


BAD_KEYS = ["", "/abs/key", "a/../b", "..", "a\\b", "a\x00b", "a//b", "a/", "./a"]


async def test_invalid_keys(storage: Storage) -> None:
    for key in BAD_KEYS:  # one loop, not a parameter: opening an S3 storage costs ~0.3 s
        with pytest.raises(ValueError):
            await storage.put(key, chunks_of(b"x"))
        with pytest.raises(ValueError):
            await storage.get(key)
        with pytest.raises(ValueError):
            await storage.head(key)
        with pytest.raises(ValueError):
            await storage.exists(key)
        with pytest.raises(ValueError):
            await storage.delete(key)
    assert await keys(storage) == []


@pytest.mark.parametrize("fail_after", ["start", "first_part"])
async def test_failing_source_leaves_nothing(storage: Storage, fail_after: str) -> None:
    sent = b"" if fail_after == "start" else FIRST_PART

    async def source() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(sent):
            yield chunk
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        await storage.put("f/1", source())
    assert not await storage.exists("f/1")
    assert await keys(storage) == []
    assert await leftovers(storage) == []


async def test_cancelled_put_leaves_nothing(storage: Storage) -> None:
    stalled, never = asyncio.Event(), asyncio.Event()

    async def source() -> AsyncIterator[bytes]:
        async for chunk in chunks_of(FIRST_PART):
            yield chunk
        stalled.set()
        await never.wait()  # a client that stops sending
        yield b"never sent"

    task = asyncio.create_task(storage.put("c/1", source()))
    await stalled.wait()
    # Mid-upload: the data is somewhere, but not visible as an object.
    assert len(await leftovers(storage)) == 1
    assert not await storage.exists("c/1")
    assert await keys(storage) == []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not await storage.exists("c/1")
    assert await keys(storage) == []
    assert await leftovers(storage) == []


async def test_empty_object(storage: Storage) -> None:
    info = await storage.put("e/1", chunks_of(b""))
    assert info.size == 0
    async with await storage.get("e/1") as reader:
        assert (reader.size, reader.start, reader.length) == (0, 0, 0)
        assert [chunk async for chunk in reader] == []
    head = await storage.head("e/1")
    assert head is not None and head.size == 0
    assert await keys(storage) == ["e/1"]
    for start, end in ((1, None), (0, 5)):  # only "the whole thing" fits an empty object
        with pytest.raises(InvalidRange):
            await storage.get("e/1", start=start, end=end)


async def test_check_and_describe(storage: Storage) -> None:
    await storage.check()
    text = storage.describe()
    assert text.startswith(("file:///", "s3://"))
    assert "testing" not in text  # no credentials


# --- open_storage -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://example.com/x", "file:relative/dir", "file://host/x", "s3://", "", "/a/b"]
)
def test_open_storage_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        open_storage(url)


def test_open_storage_rejects_small_parts() -> None:
    with pytest.raises(ValueError, match="part_size"):
        open_storage("s3://bucket", part_size=PART - 1)


def test_bad_url_error_hides_credentials() -> None:
    with pytest.raises(ValueError) as err:
        open_storage("https://user:hunter2@example.com/")
    assert "hunter2" not in str(err.value)
    with pytest.raises(ValueError) as err:
        open_storage("s3://key:hunter2@bucket/")
    assert "hunter2" not in str(err.value)


# --- local only -------------------------------------------------------------------


async def test_local_reader_never_sees_partial_file(tmp_path: Path) -> None:
    async with open_storage((tmp_path / "objects").as_uri()) as storage:
        final = tmp_path / "objects" / "ab" / "cd" / "obj"
        stalled, go_on = asyncio.Event(), asyncio.Event()

        async def source() -> AsyncIterator[bytes]:
            yield b"first half, "
            stalled.set()
            await go_on.wait()
            yield b"second half"

        task = asyncio.create_task(storage.put("ab/cd/obj", source()))
        await stalled.wait()  # put has written the first chunk and waits for more
        assert len(list((tmp_path / "objects" / ".tmp").iterdir())) == 1
        assert not final.exists()
        assert not await storage.exists("ab/cd/obj")
        go_on.set()
        await task
        assert final.read_bytes() == b"first half, second half"
        assert not any((tmp_path / "objects" / ".tmp").iterdir())


async def test_local_layout_and_reserved_names(tmp_path: Path) -> None:
    root = tmp_path / "with space"
    async with open_storage(root.as_uri()) as storage:
        assert storage.describe() == root.as_uri()
        await storage.put("ab/cd/x", chunks_of(b"x"))
        assert (root / "ab" / "cd" / "x").read_bytes() == b"x"
        with pytest.raises(ValueError):
            await storage.put(".tmp/x", chunks_of(b"x"))
        # A directory is not an object.
        assert await storage.head("ab/cd") is None
        with pytest.raises(ObjectNotFound):
            await storage.get("ab/cd")


async def test_local_check_fails_without_folder(tmp_path: Path) -> None:
    async with open_storage((tmp_path / "objects").as_uri()) as storage:
        await storage.check()
        (tmp_path / "objects" / ".tmp").rmdir()
        with pytest.raises(StorageUnavailable):
            await storage.check()


# --- S3 only ----------------------------------------------------------------------


async def test_s3_creates_missing_bucket(s3_env: S3Server, bucket: str) -> None:
    async with raw_client() as client:
        assert bucket not in [b["Name"] for b in (await client.list_buckets())["Buckets"]]
    async with open_storage(f"s3://{bucket}") as storage:
        await storage.check()
        assert storage.describe() == f"s3://{bucket} at {s3_env.endpoint}"
        await storage.put("k", chunks_of(b"v"))
    async with open_storage(f"s3://{bucket}") as storage:  # existing bucket: fine
        assert await read(storage, "k") == b"v"
    await empty_bucket(bucket)


async def test_s3_big_put_is_multipart_small_is_not(s3_env: S3Server, bucket: str) -> None:
    async with open_storage(f"s3://{bucket}/p", part_size=PART) as storage:
        await storage.put("big", chunks_of(BIG), content_type="image/png")
        await storage.put("one-part", chunks_of(BIG[:PART]))
        assert storage.describe() == f"s3://{bucket}/p at {s3_env.endpoint}"
    async with raw_client() as client:
        big = await client.head_object(Bucket=bucket, Key="p/big")
        one = await client.head_object(Bucket=bucket, Key="p/one-part")
    assert big["ETag"].strip('"').endswith("-3")  # three parts
    assert big["ContentType"] == "image/png"
    assert "-" not in one["ETag"]  # exactly one part's worth: a single put_object
    await empty_bucket(bucket)


async def test_s3_unreachable_endpoint(s3_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port()}")
    began = time.monotonic()
    with pytest.raises(StorageUnavailable):
        async with open_storage("s3://down"):
            pass
    async with contextlib.AsyncExitStack() as stack:
        storage = await S3Storage.open(stack, "down", create_bucket=False)
        with pytest.raises(StorageUnavailable):
            await storage.check()
        with pytest.raises(StorageUnavailable):
            await storage.get("k")
    assert time.monotonic() - began < 20
