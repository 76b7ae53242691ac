"""Named queries from sql/queries/*.sql, loaded once with aiosql and typed here.

aiosql builds its methods at run time; the Protocol below states their real
signatures so that mypy checks every call site.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, cast
from uuid import UUID

import aiosql
import asyncpg

from .paths import queries_dir
from .pool import Connection

Record = asyncpg.Record


class Queries(Protocol):
    # system.sql
    async def ping(self, conn: Connection) -> int: ...
    async def service_secret(self, conn: Connection, *, name: str) -> bytes | None: ...

    # users.sql
    async def insert_user(
        self, conn: Connection, *, username: str, password_hash: str
    ) -> Record: ...
    async def get_user(self, conn: Connection, *, user_id: UUID) -> Record | None: ...
    async def get_login(self, conn: Connection, *, username_key: str) -> Record | None: ...
    async def delete_user(self, conn: Connection, *, user_id: UUID) -> Record | None: ...

    # keys.sql
    async def insert_key(
        self, conn: Connection, *, user_id: UUID, name: str, prefix: str, digest: bytes,
        scopes: list[str], expires_at: datetime | None,
    ) -> Record: ...
    async def authenticate_key(self, conn: Connection, *, digest: bytes) -> Record | None: ...
    async def touch_key(self, conn: Connection, *, key_id: UUID) -> str: ...
    def list_keys(self, conn: Connection, *, user_id: UUID) -> AsyncIterator[Record]: ...
    async def revoke_key(
        self, conn: Connection, *, user_id: UUID, key_id: UUID
    ) -> Record | None: ...

    # shares.sql
    async def insert_share(
        self, conn: Connection, *, owner_id: UUID, image_id: UUID | None,
        album_id: UUID | None, digest: bytes, prefix: str, allow_download: bool,
        expires_in_seconds: int | None,
    ) -> Record | None: ...
    def list_shares(
        self, conn: Connection, *, owner_id: UUID, image_id: UUID | None,
        album_id: UUID | None,
    ) -> AsyncIterator[Record]: ...
    async def delete_share(
        self, conn: Connection, *, owner_id: UUID, share_id: UUID
    ) -> Record | None: ...
    async def open_share(self, conn: Connection, *, digest: bytes) -> Record | None: ...
    async def touch_share(self, conn: Connection, *, share_id: UUID) -> None: ...
    async def shared_image(
        self, conn: Connection, *, digest: bytes, image_id: UUID
    ) -> Record | None: ...
    def shared_images(
        self, conn: Connection, *, digest: bytes, after_position: int | None,
        after_id: UUID | None, limit: int,
    ) -> AsyncIterator[Record]: ...
    def shared_image_ids(self, conn: Connection, *, digest: bytes) -> AsyncIterator[Record]: ...
    async def shared_album(self, conn: Connection, *, digest: bytes) -> Record | None: ...

    # logins.sql
    async def lock_attempts(self, conn: Connection, *, subject: str) -> None: ...
    async def reserve_attempt(
        self, conn: Connection, *, subject: str, window_seconds: float, max_attempts: int
    ) -> Record: ...
    async def clear_attempts(self, conn: Connection, *, subject: str) -> str: ...

    # images.sql
    async def insert_image(
        self, conn: Connection, *, owner_id: UUID, title: str, description: str,
        tags: list[str], visibility: str, filename: str, content_type: str, width: int,
        height: int, size_bytes: int, sha256: bytes, phash: int, dhash: int, ahash: int,
        whash: int, colorhash: str, hash_version: int, storage_key: str,
        public_storage_key: str | None, public_size_bytes: int | None,
        public_sha256: bytes | None,
    ) -> UUID: ...
    def get_images_by_ids(self, conn: Connection, *, ids: list[UUID]) -> AsyncIterator[Record]: ...
    async def get_image(
        self, conn: Connection, *, viewer_id: UUID | None, image_id: UUID
    ) -> Record | None: ...
    def list_images(
        self, conn: Connection, *, viewer_id: UUID | None, owner_id: UUID | None,
        tag: str | None, visibility: str | None, after_created: datetime | None,
        after_id: UUID | None, limit: int,
    ) -> AsyncIterator[Record]: ...
    async def update_image(
        self, conn: Connection, *, owner_id: UUID, image_id: UUID, title: str | None,
        description: str | None, tags: list[str] | None, visibility: str | None,
    ) -> Record | None: ...
    async def delete_image(
        self, conn: Connection, *, owner_id: UUID, image_id: UUID
    ) -> Record | None: ...
    def delete_images(
        self, conn: Connection, *, owner_id: UUID, ids: list[UUID]
    ) -> AsyncIterator[Record]: ...
    def delete_all_images(self, conn: Connection, *, owner_id: UUID) -> AsyncIterator[Record]: ...
    async def get_user_id(self, conn: Connection, *, username_key: str) -> UUID | None: ...
    def all_storage_keys(self, conn: Connection) -> AsyncIterator[Record]: ...
    def existing_storage_keys(
        self, conn: Connection, *, keys: list[str]
    ) -> AsyncIterator[Record]: ...
    def storage_keys_before(
        self, conn: Connection, *, before: datetime
    ) -> AsyncIterator[Record]: ...

    # idempotency.sql
    async def claim_idempotency_key(
        self, conn: Connection, *, user_id: UUID, key: str, route: str, token: UUID,
        lease_seconds: float,
    ) -> UUID | None: ...
    async def get_idempotency_key(
        self, conn: Connection, *, user_id: UUID, key: str
    ) -> Record | None: ...
    async def renew_idempotency_lease(
        self, conn: Connection, *, user_id: UUID, key: str, token: UUID, lease_seconds: float
    ) -> str: ...
    async def complete_idempotency_key(
        self, conn: Connection, *, user_id: UUID, key: str, token: UUID, fingerprint: bytes,
        status: int, response: str,
    ) -> str: ...
    async def release_idempotency_key(
        self, conn: Connection, *, user_id: UUID, key: str, token: UUID
    ) -> str: ...
    async def prune_idempotency_keys(self, conn: Connection, *, user_id: UUID) -> str: ...
    def known_images(
        self, conn: Connection, *, owner_id: UUID, digests: list[bytes]
    ) -> AsyncIterator[Record]: ...

    # thumbnails.sql
    async def insert_thumbnail(
        self, conn: Connection, *, image_id: UUID, size: int, storage_key: str, width: int,
        height: int, size_bytes: int, sha256: bytes, version: int,
    ) -> str | None: ...
    async def get_thumbnail(
        self, conn: Connection, *, image_id: UUID, size: int
    ) -> Record | None: ...
    async def delete_thumbnail(
        self, conn: Connection, *, image_id: UUID, size: int, storage_key: str
    ) -> str: ...
    def images_without_thumbnail(
        self, conn: Connection, *, size: int, after_id: UUID | None, limit: int
    ) -> AsyncIterator[Record]: ...
    async def count_without_thumbnail(self, conn: Connection, *, size: int) -> int: ...

    # search.sql
    async def estimate_matches(
        self, conn: Connection, *, q: str, head: str, last_word: str | None, in_head: bool
    ) -> str: ...
    def search_ranked(
        self, conn: Connection, *, viewer_id: UUID | None, q: str, head: str,
        last_word: str | None, in_head: bool, owner_id: UUID | None, tag: str | None,
        visibility: str | None, within: list[UUID] | None,
        created_after: datetime | None, created_before: datetime | None,
        after_rank: float | None, after_created: datetime | None, after_id: UUID | None,
        limit: int,
    ) -> AsyncIterator[Record]: ...
    def search_recent(
        self, conn: Connection, *, viewer_id: UUID | None, q: str, head: str,
        last_word: str | None, owner_id: UUID | None, tag: str | None, visibility: str | None,
        created_after: datetime | None, created_before: datetime | None,
        after_rank: float | None, after_created: datetime | None, after_id: UUID | None,
        limit: int, candidates: int,
    ) -> AsyncIterator[Record]: ...
    def search_within(
        self, conn: Connection, *, viewer_id: UUID | None, q: str, head: str,
        last_word: str | None, owner_id: UUID | None, tag: str | None, visibility: str | None,
        within: list[UUID] | None, created_after: datetime | None,
        created_before: datetime | None, after_rank: float | None,
        after_created: datetime | None, after_id: UUID | None, limit: int,
    ) -> AsyncIterator[Record]: ...

    # similar.sql
    def similar_probe(
        self, conn: Connection, *, query: int, others: list[int], c0: list[int], c1: list[int],
        c2: list[int], c3: list[int], viewer_id: UUID | None, max_distance: int,
        exclude_id: UUID | None, q: str | None, head: str | None, last_word: str | None,
        tag: str | None, owner_id: UUID | None, within: list[UUID] | None,
        after_distance: int | None, after_id: UUID | None, limit: int,
    ) -> AsyncIterator[Record]: ...
    def similar_scan(
        self, conn: Connection, *, query: int, others: list[int], viewer_id: UUID | None,
        max_distance: int, exclude_id: UUID | None, q: str | None, head: str | None,
        last_word: str | None, tag: str | None, owner_id: UUID | None,
        within: list[UUID] | None, after_distance: int | None, after_id: UUID | None,
        limit: int,
    ) -> AsyncIterator[Record]: ...
    async def get_hashes(
        self, conn: Connection, *, viewer_id: UUID | None, image_id: UUID
    ) -> Record | None: ...

    # signals.sql
    async def insert_signals(
        self, conn: Connection, *, image_id: UUID, regions: list[int], phashes: list[int],
        dhashes: list[int], thumbs: list[bytes],
    ) -> str: ...
    def signal_candidates(
        self, conn: Connection, *, regions: list[int], hashes: list[int], radii: list[int],
        p0: list[int], n0: list[int], p1: list[int], n1: list[int], p2: list[int],
        n2: list[int], p3: list[int], n3: list[int], viewer_id: UUID | None,
        within: list[UUID] | None,
    ) -> AsyncIterator[Record]: ...
    def signals_of(
        self, conn: Connection, *, viewer_id: UUID | None, image_id: UUID
    ) -> AsyncIterator[Record]: ...
    def images_to_rehash(
        self, conn: Connection, *, version: int, features_version: int, after_id: UUID | None,
        limit: int,
    ) -> AsyncIterator[Record]: ...
    async def count_to_rehash(
        self, conn: Connection, *, version: int, features_version: int
    ) -> int: ...
    async def set_hash_version(
        self, conn: Connection, *, image_id: UUID, version: int, phash: int, dhash: int,
        ahash: int, whash: int, colorhash: str,
    ) -> str: ...
    async def any_unsignalled(self, conn: Connection) -> bool: ...
    def visible_images(
        self, conn: Connection, *, ids: list[UUID], viewer_id: UUID | None,
        exclude_id: UUID | None, q: str | None, head: str | None, last_word: str | None,
        tag: str | None, owner_id: UUID | None, within: list[UUID] | None,
    ) -> AsyncIterator[Record]: ...

    # features.sql
    async def delete_features(self, conn: Connection, *, image_id: UUID) -> str: ...
    async def insert_features(
        self, conn: Connection, *, image_id: UUID, version: int, width: int, height: int,
        points: bytes, descriptors: bytes, thumb: bytes, keys: list[int],
    ) -> str: ...
    async def feature_postings_of(
        self, conn: Connection, *, keys: list[int], max_df: int
    ) -> Record: ...
    def visible_features(
        self, conn: Connection, *, seqs: list[int], viewer_id: UUID | None,
        exclude_id: UUID | None, within: list[UUID] | None,
    ) -> AsyncIterator[Record]: ...
    async def feature_seqs_of(self, conn: Connection, *, ids: list[UUID]) -> list[int]: ...
    def features_by_seqs(self, conn: Connection, *, seqs: list[int]) -> AsyncIterator[Record]: ...
    async def features_of(
        self, conn: Connection, *, viewer_id: UUID | None, image_id: UUID
    ) -> Record | None: ...
    def features_by_ids(self, conn: Connection, *, ids: list[UUID]) -> AsyncIterator[Record]: ...
    async def merge_postings(self, conn: Connection, *, limit: int) -> int: ...
    async def count_recent_postings(self, conn: Connection) -> int: ...

    # albums.sql
    async def insert_album(
        self, conn: Connection, *, owner_id: UUID, title: str, description: str,
        visibility: str,
    ) -> UUID: ...
    async def get_album(
        self, conn: Connection, *, viewer_id: UUID | None, album_id: UUID
    ) -> Record | None: ...
    def list_albums(
        self, conn: Connection, *, viewer_id: UUID | None, owner_id: UUID | None,
        after_created: datetime | None, after_id: UUID | None, limit: int,
    ) -> AsyncIterator[Record]: ...
    async def update_album(
        self, conn: Connection, *, owner_id: UUID, album_id: UUID, title: str | None,
        description: str | None, visibility: str | None,
    ) -> UUID | None: ...
    async def delete_album(
        self, conn: Connection, *, owner_id: UUID, album_id: UUID
    ) -> UUID | None: ...
    def list_album_images(
        self, conn: Connection, *, viewer_id: UUID | None, album_id: UUID,
        after_position: int | None, limit: int,
    ) -> AsyncIterator[Record]: ...
    async def visible_album_image_ids(
        self, conn: Connection, *, viewer_id: UUID | None, album_id: UUID
    ) -> Record | None: ...
    async def lock_album(
        self, conn: Connection, *, owner_id: UUID, album_id: UUID
    ) -> UUID | None: ...
    async def album_size(self, conn: Connection, *, album_id: UUID) -> Record: ...
    def album_members(
        self, conn: Connection, *, album_id: UUID, ids: list[UUID]
    ) -> AsyncIterator[Record]: ...
    def own_images(
        self, conn: Connection, *, owner_id: UUID, ids: list[UUID]
    ) -> AsyncIterator[Record]: ...
    async def album_position(
        self, conn: Connection, *, album_id: UUID, image_id: UUID
    ) -> int | None: ...
    async def append_album_images(
        self, conn: Connection, *, owner_id: UUID, album_id: UUID, ids: list[UUID],
        last_position: int,
    ) -> str: ...
    async def insert_album_images_before(
        self, conn: Connection, *, owner_id: UUID, album_id: UUID, ids: list[UUID],
        before: UUID,
    ) -> str: ...
    async def renumber_album(self, conn: Connection, *, album_id: UUID) -> str: ...
    def remove_album_images(
        self, conn: Connection, *, owner_id: UUID, album_id: UUID, ids: list[UUID]
    ) -> AsyncIterator[Record]: ...
    async def touch_album(self, conn: Connection, *, album_id: UUID) -> str: ...


def load_queries() -> Queries:
    return cast(Queries, aiosql.from_path(queries_dir(), "asyncpg"))


def sql_of(queries: Queries, name: str) -> str:
    """The SQL text of a named query, as sent to PostgreSQL (for EXPLAIN in tests and benches)."""
    return str(getattr(queries, name).sql)


def positional_args(queries: Queries, name: str, **values: object) -> list[object]:
    """Named values in the positional order of a query's $n parameters (for EXPLAIN)."""
    order: list[str] = getattr(queries, "driver_adapter").var_sorted[name]  # noqa: B009
    return [values[param] for param in order]
