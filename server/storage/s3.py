"""Object storage in an S3 bucket (AWS or any S3-compatible server) via aiobotocore.

Credentials, region and endpoint come from the usual AWS settings (AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3, profiles...), which botocore reads itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore import exceptions as boto
from botocore.exceptions import ClientError

from .base import (
    CHUNK_SIZE,
    ClosingReader,
    InvalidRange,
    ObjectInfo,
    ObjectNotFound,
    StorageError,
    StorageUnavailable,
    check_range,
    validate_key,
)

log = logging.getLogger(__name__)

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last
DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_REGION = "us-east-1"

# Fail within seconds when the endpoint is down instead of botocore's 60 s x 5 tries.
# The pool is larger than botocore's 10 because a download holds its connection for as
# long as the client takes to read it.
CLIENT_CONFIG = AioConfig(
    connect_timeout=2,
    read_timeout=15,
    retries={"mode": "standard", "total_max_attempts": 3},
    max_pool_connections=64,
    # SigV4 everywhere (presigned download URLs included: some regions refuse SigV2).
    signature_version="s3v4",
)

_UNREACHABLE = (
    boto.ConnectionError,  # refused, DNS, connect timeout, TLS
    boto.HTTPClientError,  # connection closed, read timeout, broken body stream
    aiohttp.ClientError,
    TimeoutError,
    # No usable credentials: the service can't work until an operator fixes it.
    boto.NoCredentialsError,
    boto.PartialCredentialsError,
    boto.CredentialRetrievalError,
)
_REFUSED_CODES = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "SlowDown",
                  "NoSuchBucket", "RequestTimeTooSkewed"}


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or _status(exc))


@contextlib.contextmanager
def _translate(action: str) -> Iterator[None]:
    """Turn botocore/aiohttp failures into StorageUnavailable or StorageError."""
    try:
        yield
    except ClientError as exc:
        status, code = _status(exc), _code(exc)
        msg = f"S3 {action} failed: {code} (HTTP {status})"
        if status >= 500 or status in (401, 403) or code in _REFUSED_CODES:
            raise StorageUnavailable(msg) from exc
        raise StorageError(msg) from exc
    except _UNREACHABLE as exc:
        raise StorageUnavailable(f"S3 {action} failed: {exc}") from exc


def parse_url(url: str) -> tuple[str, str]:
    """`s3://bucket[/prefix]` -> (bucket, prefix ending in "/" or "")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise ValueError(f"expected an s3://bucket[/prefix] URL, got {url!r}")
    if "@" in parts.netloc:  # don't echo the URL: it holds a secret
        raise ValueError("S3 storage URL must not hold credentials; use AWS_* variables")
    if parts.query or parts.fragment:
        raise ValueError(f"S3 storage URL takes no query or fragment: {url!r}")
    prefix = parts.path.strip("/")
    return parts.netloc, (validate_key(prefix) + "/") if prefix else ""


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class S3Reader(ClosingReader):
    """Streams a get_object body; close() releases the HTTP connection."""

    def __init__(self, body: Any, size: int, start: int, length: int) -> None:
        self._body = body
        self.size = size
        self.start = start
        self.length = length

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _translate("read"):
            async for chunk in self._body.iter_chunks(CHUNK_SIZE):
                yield chunk

    async def close(self) -> None:
        await self._body.aclose()


class S3Storage:
    def __init__(
        self, client: Any, bucket: str, prefix: str = "", *, part_size: int = DEFAULT_PART_SIZE
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3 minimum)")
        self._client = client
        self.bucket = bucket
        self.prefix = prefix
        self.part_size = part_size
        # Aborts still running after their put was cancelled; awaited before closing.
        self._aborts: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls,
        stack: AsyncExitStack,
        bucket: str,
        prefix: str = "",
        *,
        part_size: int = DEFAULT_PART_SIZE,
        create_bucket: bool = True,
    ) -> S3Storage:
        """Create the client (closed by `stack`) and, by default, the bucket if missing."""
        session = get_session()
        # botocore itself only reads AWS_DEFAULT_REGION; AWS_REGION is the newer name.
        region = os.environ.get("AWS_REGION") or session.get_config_variable("region")
        client = await stack.enter_async_context(
            session.create_client("s3", region_name=region or DEFAULT_REGION,
                                  config=CLIENT_CONFIG)
        )
        storage = cls(client, bucket, prefix, part_size=part_size)
        stack.push_async_callback(storage._drain)  # runs before the client closes
        if create_bucket:
            await storage.ensure_bucket()
        return storage

    def local_path(self, key: str) -> Path | None:
        return None  # objects live in the bucket only

    def describe(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self._client.meta.endpoint_url}"

    def _key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    async def ensure_bucket(self) -> None:
        with _translate("create bucket"):
            try:
                await self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _status(exc) != 404:
                    raise
            log.info("creating bucket %s", self.bucket)
            region = self._client.meta.region_name
            params: dict[str, Any] = {"Bucket": self.bucket}
            if region != DEFAULT_REGION:  # us-east-1 rejects an explicit constraint
                params["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                await self._client.create_bucket(**params)
            except ClientError as exc:
                if _code(exc) != "BucketAlreadyOwnedByYou":  # lost a race with a peer
                    raise

    async def put(
        self, key: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None,
        durable: bool = True,  # S3 is durable once it answers; nothing to skip
    ) -> ObjectInfo:
        full_key = self._key(key)
        extra = {"ContentType": content_type} if content_type else {}
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                buffer += chunk
                size += len(chunk)
                # Strictly more than one part: a stream of exactly part_size bytes
                # still goes up in a single put_object.
                while len(buffer) > self.part_size:
                    if upload_id is None:
                        upload_id = await self._create_upload(full_key, extra)
                    part = bytes(buffer[: self.part_size])
                    del buffer[: self.part_size]
                    parts.append(await self._upload_part(full_key, upload_id, len(parts), part))
            if upload_id is None:
                with _translate("put"):
                    await self._client.put_object(
                        Bucket=self.bucket, Key=full_key, Body=bytes(buffer), **extra
                    )
            else:
                last = bytes(buffer)  # 1..part_size bytes: S3 lets the last part be short
                parts.append(await self._upload_part(full_key, upload_id, len(parts), last))
                with _translate("complete multipart upload"):
                    await self._client.complete_multipart_upload(
                        Bucket=self.bucket, Key=full_key, UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                    )
        except BaseException:  # includes CancelledError
            if upload_id is not None:
                await self._abort(full_key, upload_id)
            raise
        # S3 doesn't return the object's time on upload; ours is within a second of it.
        return ObjectInfo(key=key, size=size, modified=datetime.now(UTC))

    async def _create_upload(self, full_key: str, extra: dict[str, str]) -> str:
        params = {"Bucket": self.bucket, "Key": full_key, **extra}
        # As boto3's transfer manager does: unless checksums were turned down to
        # "when_required" (old S3-compatible servers), give the upload a CRC32 checksum
        # so the parts' checksums (which botocore sends by default) are verified.
        if self._client.meta.config.request_checksum_calculation == "when_supported":
            params["ChecksumAlgorithm"] = "CRC32"
        with _translate("create multipart upload"):
            resp = await self._client.create_multipart_upload(**params)
        return str(resp["UploadId"])

    async def _upload_part(
        self, full_key: str, upload_id: str, done: int, data: bytes
    ) -> dict[str, Any]:
        number = done + 1  # part numbers start at 1
        with _translate("upload part"):
            resp = await self._client.upload_part(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id, PartNumber=number,
                Body=data,
            )
        # complete_multipart_upload wants each part's checksum back, if it had one.
        part = {"PartNumber": number, "ETag": resp["ETag"]}
        if "ChecksumCRC32" in resp:
            part["ChecksumCRC32"] = resp["ChecksumCRC32"]
        return part

    async def _abort(self, full_key: str, upload_id: str) -> None:
        # Shielded: the put may be unwinding a cancellation, and a forgotten multipart
        # upload keeps its parts (and their cost) on the server until aborted.
        task = asyncio.ensure_future(self._abort_now(full_key, upload_id))
        self._aborts.add(task)
        task.add_done_callback(self._aborts.discard)
        await asyncio.shield(task)

    async def _abort_now(self, full_key: str, upload_id: str) -> None:
        try:
            await self._client.abort_multipart_upload(
                Bucket=self.bucket, Key=full_key, UploadId=upload_id
            )
        except Exception:
            log.warning("could not abort multipart upload %s of %s", upload_id, full_key,
                        exc_info=True)

    async def _drain(self) -> None:
        if self._aborts:
            await asyncio.gather(*self._aborts, return_exceptions=True)

    async def download_url(self, key: str, *, content_type: str, disposition: str,
                           cache_control: str, expires: int) -> str | None:
        """A presigned GET (signed locally, no request to S3) whose response carries these
        headers, whatever the object's own metadata says."""
        url: str = await self._client.generate_presigned_url(
            "get_object", ExpiresIn=expires, Params={
                "Bucket": self.bucket, "Key": self._key(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
                "ResponseCacheControl": cache_control})
        return url

    async def get(self, key: str, *, start: int = 0, end: int | None = None) -> S3Reader:
        full_key = self._key(key)
        check_range(start, end)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": full_key}
        if start or end is not None:  # a whole (maybe empty) object needs no Range
            params["Range"] = f"bytes={start}-{'' if end is None else end}"
        with _translate("get"):
            try:
                resp = await self._client.get_object(**params)
            except ClientError as exc:
                if _code(exc) in ("NoSuchKey", "404"):
                    raise ObjectNotFound(key) from None
                if _code(exc) == "InvalidRange" or _status(exc) == 416:
                    raise InvalidRange(f"range start {start} is beyond the object") from None
                raise
        length = int(resp["ContentLength"])
        content_range = resp.get("ContentRange")  # "bytes 0-99/1234"
        if content_range:
            span, _, total = content_range.removeprefix("bytes ").partition("/")
            return S3Reader(resp["Body"], int(total), int(span.partition("-")[0]), length)
        return S3Reader(resp["Body"], length, 0, length)

    async def head(self, key: str) -> ObjectInfo | None:
        full_key = self._key(key)
        with _translate("head"):
            try:
                resp = await self._client.head_object(Bucket=self.bucket, Key=full_key)
            except ClientError as exc:
                if _status(exc) == 404:
                    return None
                raise
        return ObjectInfo(key=key, size=int(resp["ContentLength"]),
                          modified=_utc(resp["LastModified"]))

    async def exists(self, key: str) -> bool:
        return await self.head(key) is not None

    async def delete(self, key: str) -> None:
        full_key = self._key(key)
        with _translate("delete"):  # S3 answers 204 for a missing key too
            await self._client.delete_object(Bucket=self.bucket, Key=full_key)

    async def check(self) -> None:
        with _translate("check"):
            try:
                await self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                # Any refusal, a missing bucket included, means we can't serve.
                raise StorageUnavailable(
                    f"S3 bucket {self.bucket} is not usable: {_code(exc)}"
                ) from exc

    async def list(self, prefix: str = "") -> AsyncIterator[ObjectInfo]:
        # Multipart uploads in progress are not objects yet, so they never show up here.
        paginator = self._client.get_paginator("list_objects_v2")
        with _translate("list"):
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(key=obj["Key"][len(self.prefix):], size=int(obj["Size"]),
                                     modified=_utc(obj["LastModified"]))
