"""Search by image: exact Hamming search on the 64-bit pHash, by multi-index hashing.

The hash is split into four 16-bit chunks. For a radius r = 4r' + a, every hash within r
bits of the query agrees within r' bits on one of the first a+1 chunks, or within r'-1 bits
on one of the others (pigeonhole). Enumerating those chunk values gives 20, 188 and 1,108
index probes at r = 4, 8 and 12; each candidate's exact distance is then verified in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import cache
from itertools import combinations
from typing import Any
from uuid import UUID

from ..db.pool import Connection, plan_cache_mode
from ..db.queries import Queries, Record
from ..errors import NotFound, ValidationFailed
from .cursors import Cursors, scope_of
from .search import check_query, split_last_word
from .within import Within, param

CHUNKS = 4
CHUNK_BITS = 16
# Beyond this radius the probes (4,608 at 16) cost more than reading every hash: scan instead.
MAX_PROBE_RADIUS = 16
NEAR_DUPLICATE_BITS = 4
NEAREST_RADII = (4, 8, 12, 16)


@dataclass(frozen=True, slots=True)
class SimilarFilters:
    q: str | None = None
    tag: str | None = None
    owner_id: UUID | None = None
    exclude_id: UUID | None = None
    within: Within | None = None  # only these images (an album's, a share link's)

    def scope(self) -> list[object]:
        """What of the filters goes into a cursor's scope (of `within`, its source)."""
        return [getattr(self, f.name) for f in fields(self)]


@cache
def _masks(bits: int) -> tuple[int, ...]:
    """Every 16-bit value with at most `bits` bits set (XOR masks for one chunk)."""
    if bits < 0:
        return ()
    masks = [0]
    for count in range(1, bits + 1):
        for positions in combinations(range(CHUNK_BITS), count):
            masks.append(sum(1 << p for p in positions))
    return tuple(masks)


def chunks_of(value: int) -> list[int]:
    unsigned = value & 0xFFFF_FFFF_FFFF_FFFF
    return [(unsigned >> (CHUNK_BITS * (CHUNKS - 1 - i))) & 0xFFFF for i in range(CHUNKS)]


def chunk_probe_values(value: int, radius: int) -> list[list[int]]:
    """Per chunk, the values to look up so that no hash within `radius` of `value` is missed."""
    return probe_values([value], radius)


def probe_values(hashes: Sequence[int], radius: int) -> list[list[int]]:
    """Per chunk, the values to look up so that no hash within `radius` of any query is missed."""
    whole, extra = divmod(radius, CHUNKS)
    per_chunk: list[set[int]] = [set() for _ in range(CHUNKS)]
    for value in hashes:
        for i, chunk in enumerate(chunks_of(value)):
            bits = whole if i <= extra else whole - 1
            per_chunk[i].update(chunk ^ mask for mask in _masks(bits))
    return [sorted(values) for values in per_chunk]


def filter_params(filters: SimilarFilters) -> dict[str, Any]:
    q = check_query(filters.q) if filters.q else None
    head, last_word = split_last_word(q) if q else (None, None)
    return {"exclude_id": filters.exclude_id, "q": q, "head": head, "last_word": last_word,
            "tag": filters.tag, "owner_id": filters.owner_id, "within": param(filters.within)}


async def matches(
    conn: Connection, queries: Queries, hashes: Sequence[int], *, viewer_id: UUID | None,
    max_distance: int, filters: SimilarFilters, after: tuple[object, object] = (None, None),
    limit: int = 20,
) -> list[Record]:
    """Up to `limit` visible images within `max_distance` bits of any of `hashes`, by
    (distance, id), after the given (distance, id)."""
    after_distance, after_id = after
    params: dict[str, Any] = {
        "query": hashes[0], "others": list(hashes[1:]), "viewer_id": viewer_id,
        "max_distance": max_distance, "after_distance": after_distance, "after_id": after_id,
        "limit": limit, **filter_params(filters),
    }
    if max_distance <= MAX_PROBE_RADIUS:
        c0, c1, c2, c3 = probe_values(hashes, max_distance)
        # One plan serves every query: planning it afresh took longer than running it.
        async with plan_cache_mode(conn, "force_generic_plan"):
            found = queries.similar_probe(conn, c0=c0, c1=c1, c2=c2, c3=c3, **params)
            return [row async for row in found]
    return [row async for row in queries.similar_scan(conn, **params)]


async def within(
    conn: Connection, queries: Queries, cursors: Cursors, hashes: Sequence[int], *,
    viewer_id: UUID | None, max_distance: int, filters: SimilarFilters,
    cursor: str | None = None, limit: int = 20,
) -> tuple[list[Record], str | None]:
    """One page of visible images within `max_distance` bits of any of `hashes`, by
    (distance, id); and the signed cursor of the next page."""
    scope = scope_of("similar", viewer_id, max_distance, *hashes, *filters.scope())
    after = cursors.decode(cursor, scope, int, UUID) if cursor else (None, None)
    rows = await matches(conn, queries, hashes, viewer_id=viewer_id, max_distance=max_distance,
                          filters=filters, after=(after[0], after[1]), limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = cursors.encode(scope, rows[-1]["distance"], rows[-1]["id"])
    return rows, next_cursor


async def nearest(
    conn: Connection, queries: Queries, hashes: Sequence[int], *, viewer_id: UUID | None,
    k: int, filters: SimilarFilters,
) -> list[Record]:
    """The k nearest visible images, whatever their distance: the radius widens step by step
    (exact as soon as k are found within it) and a scan answers only when none suffices."""
    for radius in NEAREST_RADII:
        rows = await matches(conn, queries, hashes, viewer_id=viewer_id, max_distance=radius,
                              filters=filters, limit=k)
        if len(rows) >= k:
            return rows
    return await matches(conn, queries, hashes, viewer_id=viewer_id, max_distance=64,
                          filters=filters, limit=k)


async def near_duplicates(
    conn: Connection, queries: Queries, phash: int, owner_id: UUID, image_id: UUID
) -> list[Record]:
    """Images the uploader can see within NEAR_DUPLICATE_BITS: re-encodes of the picture."""
    return await matches(conn, queries, [phash], viewer_id=owner_id,
                          max_distance=NEAR_DUPLICATE_BITS,
                          filters=SimilarFilters(exclude_id=image_id), limit=10)


async def stored_hashes(
    conn: Connection, queries: Queries, viewer_id: UUID | None, image_id: UUID
) -> Record:
    """A visible image's hashes (phash, dhash, ahash, whash, colorhash); 404 otherwise."""
    hashes = await queries.get_hashes(conn, viewer_id=viewer_id, image_id=image_id)
    if hashes is None:
        raise NotFound("No such image")
    return hashes


def check_distance(value: int) -> int:
    if not 0 <= value <= 32:
        raise ValidationFailed("max_distance out of range",
                               details={"max_distance": ["Must be between 0 and 32."]})
    return value
