"""Copy detection by local features: storing an image's features and postings, finding the
stored pictures a query holds (or that hold it), and folding new postings into the merged
inverted file.

Candidates come from PostgreSQL by vote counting over the inverted file
(sql/queries/features.sql); the CANDIDATES with most votes are verified by geometry in the CPU
pool (server/imaging/features.py). Everything lives in PostgreSQL, so an image is findable
from every process and host as soon as its upload committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from uuid import UUID

import asyncpg
import numpy as np

from ..cpu import run_cpu
from ..db.pool import Connection, Pool, plan_cache_mode
from ..db.queries import Queries, Record
from ..imaging.features import (
    CONFIRM_INLIERS,
    FEATURES_VERSION,
    Features,
    Verified,
    feature_keys,
    keys,
    verify,
)
from ..imaging.regions import Corners
from ..observability import metrics
from .within import Within, param

log = logging.getLogger(__name__)

CANDIDATES = 24  # verified per query: ~0.9 ms each
REGION_CANDIDATES = 6  # verified per picture region of the query (at most 3), beyond those
MIN_VOTES = 3  # shared keys below this are chance (bench/copy_features.py)
MAX_DF = 1_000  # keys held by more images cost the most (bench/features_scale.py at 1M)
# The candidates' query may not hold a search up: past this PostgreSQL cancels it and the
# search answers with the region signals' matches alone (logged). At a million images the
# postings' query takes ~30 ms here (docs/benchmarks.md); the bound is for larger libraries
# and busy hosts.
CANDIDATES_TIMEOUT = 0.25
MERGE_BATCH = 50_000  # recent postings folded per transaction
MERGE_AT = 20_000  # recent postings that start a merge
MERGE_EVERY = 30.0  # seconds between checks, per process
_MERGE_LOCK = 0x1D_FEA7  # advisory lock: one merger at a time across processes


@dataclass(frozen=True, slots=True)
class FeatureMatch:
    image_id: UUID
    phash: int  # the stored whole picture's, for the answer's distance
    evidence: Verified  # what the verification measured; corners in the query's pixels

    @property
    def inliers(self) -> int:
        return self.evidence.inliers

    @property
    def score(self) -> float:
        """The share of the stored picture's features verified."""
        return round(self.evidence.share, 4)

    @property
    def corners(self) -> Corners:
        return self.evidence.corners


async def insert(conn: Connection, queries: Queries, image_id: UUID,
                 features: Features | None) -> None:
    """Store an image's features and postings (replacing older ones), in the caller's
    transaction. An image too plain for features (no keypoints) has no row."""
    await queries.delete_features(conn, image_id=image_id)
    if features is None or len(features) == 0:
        return
    points, descriptors = features.packed()
    await queries.insert_features(
        conn, image_id=image_id, version=FEATURES_VERSION, width=features.size[0],
        height=features.size[1], points=points, descriptors=descriptors, thumb=features.thumb,
        keys=keys(features.descriptors))


@dataclass(frozen=True, slots=True)
class Candidate:
    image_id: UUID
    phash: int
    votes: int  # the query's keys it holds (of the region's keys, when a region found it)
    stored: Features


@dataclass(frozen=True, slots=True)
class Postings:
    """The postings of a query's keys, as PostgreSQL sent them (feature_postings_of)."""

    seqs: np.ndarray  # int32: the feature number of each posting, merged then recent
    merged_keys: np.ndarray  # the merged arrays' keys, in the order their postings come
    lengths: np.ndarray  # the postings of each of those keys
    recent_keys: np.ndarray  # the key of each recent posting

    @classmethod
    def of(cls, row: Record) -> Postings:
        """Decoded from big-endian binary: the merged elements come as (length word, seq)
        pairs (array_send), the recent postings as (key, seq) pairs."""
        merged = np.frombuffer(row["merged"] or b"", ">i4").reshape(-1, 2)[:, 1]
        recent = np.frombuffer(row["recent"] or b"", ">i4").reshape(-1, 2)
        return cls(np.concatenate([merged, recent[:, 1]]).astype(np.int32),
                   np.asarray(row["keys"] or [], np.int32),
                   np.asarray(row["lengths"] or [], np.int64), recent[:, 0].astype(np.int32))

    def holding(self, keys: Sequence[int]) -> np.ndarray:
        """The feature numbers of the postings of these keys only."""
        wanted = np.asarray(keys, np.int32)
        mask = np.concatenate([np.repeat(np.isin(self.merged_keys, wanted), self.lengths),
                               np.isin(self.recent_keys, wanted)])
        return np.asarray(self.seqs[mask])


def top_votes(seqs: np.ndarray, min_votes: int, limit: int) -> tuple[list[int], list[int]]:
    """The feature numbers holding at least `min_votes` of these postings, the `limit` with
    most votes (ties by number): (numbers, votes). Counted by a sort and its runs: ~2 ms
    for 300k postings."""
    if len(seqs) == 0:
        return [], []
    postings = np.sort(seqs)
    starts = np.flatnonzero(np.r_[True, postings[1:] != postings[:-1]])
    votes = np.diff(np.r_[starts, len(postings)])
    kept = votes >= min_votes
    found, votes = postings[starts[kept]], votes[kept]
    best = np.lexsort((found, -votes))[:limit]
    return found[best].tolist(), votes[best].tolist()


def _rankings(row: Record, regions: Sequence[Sequence[int]], min_votes: int,
              limits: Sequence[int], allowed: Sequence[int] | None = None,
              ) -> list[tuple[list[int], list[int]]]:
    """The best voted of the whole query, then of each region's keys alone; only among
    the `allowed` feature numbers, if given (a search within an album's images)."""
    postings = Postings.of(row)
    groups = [postings.seqs, *(postings.holding(keys) for keys in regions)]
    if allowed is not None:
        kept = np.asarray(allowed, np.int32)
        groups = [seqs[np.isin(seqs, kept)] for seqs in groups]
    return [top_votes(seqs, min_votes, limit)
            for seqs, limit in zip(groups, limits, strict=True)]


async def candidates(
    conn: Connection, queries: Queries, cpu: Executor, query_keys: list[int],
    viewer_id: UUID | None, *, regions: Sequence[Sequence[int]] = (),
    exclude_id: UUID | None = None, max_df: int = MAX_DF, min_votes: int = MIN_VOTES,
    limit: int | None = None, region_limit: int | None = None, within: Within | None = None,
) -> list[Candidate]:
    """The stored pictures the viewer may see sharing the most keys with the query (at least
    `min_votes`): the `limit` (CANDIDATES) best of the whole query, and the `region_limit`
    (REGION_CANDIDATES) best of each region's keys (a subset of the query's) beyond them;
    most votes first. [] when the
    postings' query takes over CANDIDATES_TIMEOUT (logged).

    The votes are ranked before any join: at a million images a quarter of the library may
    reach min_votes, and only the best few (4 x the limit: room for the visibility filter)
    are looked up. With `within`, the votes of those images only are ranked."""
    try:
        async with plan_cache_mode(conn, "auto", timeout=CANDIDATES_TIMEOUT):
            row = await queries.feature_postings_of(conn, keys=query_keys, max_df=max_df)
    except asyncpg.QueryCanceledError:
        log.warning("feature candidates took over %.0f ms: answered without them",
                    CANDIDATES_TIMEOUT * 1000)
        return []
    quotas = ([CANDIDATES if limit is None else limit]
              + [REGION_CANDIDATES if region_limit is None else region_limit] * len(regions))
    allowed = (None if within is None
               else await queries.feature_seqs_of(conn, ids=list(within.ids)))
    ranked = await run_cpu(cpu, _rankings, row, regions, min_votes, [4 * q for q in quotas],
                           allowed)
    wanted = sorted({seq for seqs, _ in ranked for seq in seqs})
    if not wanted:
        return []
    visible = {r["seq"]: r async for r in queries.visible_features(
        conn, seqs=wanted, viewer_id=viewer_id, exclude_id=exclude_id, within=param(within))}
    chosen: dict[int, int] = {}  # seq: votes (the whole query's where it has them)
    for (seqs, votes), quota in zip(ranked, quotas, strict=True):
        shown = [(seq, v) for seq, v in zip(seqs, votes, strict=True) if seq in visible]
        for seq, v in shown[:quota]:
            chosen.setdefault(seq, v)
    found = [Candidate(visible[r["seq"]]["image_id"], visible[r["seq"]]["phash"],
                       chosen[r["seq"]], Features.unpacked(
                           r["points"], r["descriptors"], (r["width"], r["height"]), r["thumb"]))
             async for r in queries.features_by_seqs(conn, seqs=list(chosen))]
    return sorted(found, key=lambda c: (-c.votes, c.image_id))


def query_keys(query: Features) -> tuple[list[int], list[list[int]]]:
    """The query's keys, and each of its picture regions' (subsets of them), from one pass
    over its descriptors."""
    per_feature = feature_keys(query.descriptors)
    return ([int(k) for k in np.unique(per_feature)],
            [[int(k) for k in np.unique(per_feature[mask])] for mask in query.regions])


def _verify_all(query: Features, stored: Sequence[Features], scale: tuple[float, float],
                min_inliers: int | None = None) -> list[Verified | None]:
    found: list[Verified | None] = []
    for features in stored:
        verified = verify(features, query, min_inliers)
        if verified is not None:
            corners = tuple((x * scale[0], y * scale[1]) for x, y in verified.corners)
            verified = replace(verified, corners=corners)  # type: ignore[arg-type]
        found.append(verified)
    return found


async def find(
    conn: Connection, queries: Queries, cpu: Executor, query: Features,
    viewer_id: UUID | None, *, size: tuple[int, int], exclude_id: UUID | None = None,
    within: Within | None = None,
) -> list[FeatureMatch]:
    """The stored pictures the viewer may see that the query holds (or that hold it), by
    geometry; corners in the pixels of a query of `size` (its features' working size
    scaled up). The query's picture regions (a post's or a collage's pictures) find
    candidates of their own: the page around a picture (an app's bars and text, shared by
    other posts of the library) would outvote it."""
    if len(query) == 0:
        return []
    with metrics.image_search_stage("feature_candidates"):
        whole, regions = await run_cpu(cpu, query_keys, query)  # ~1 ms of numpy: not on the loop
        found = await candidates(conn, queries, cpu, whole, viewer_id, regions=regions,
                                 exclude_id=exclude_id, within=within)
    metrics.image_search_candidates("features", len(found))
    if not found:
        return []
    scale = (size[0] / query.size[0], size[1] / query.size[1])
    # OpenCV lets go of the GIL: two halves in two of the pool's threads answer in ~60% of
    # the time (13 against 21 ms for 24 candidates here).
    half = (len(found) + 1) // 2
    with metrics.image_search_stage("verification"):
        parts = await asyncio.gather(*(run_cpu(cpu, _verify_all, query,
                                               [c.stored for c in part], scale)
                                       for part in (found[:half], found[half:]) if part))
    verified = [v for part in parts for v in part]
    return [FeatureMatch(c.image_id, c.phash, v)
            for c, v in zip(found, verified, strict=True) if v is not None]


async def confirm(conn: Connection, queries: Queries, cpu: Executor, query: Features,
                  ids: Sequence[UUID]) -> tuple[set[UUID], set[UUID]]:
    """Of images the region signals found through a guessed edit: (those that have
    features, those whose features confirm the match with CONFIRM_INLIERS or more)."""
    rows = [r async for r in queries.features_by_ids(conn, ids=list(ids))]
    if not rows or len(query) == 0:
        return {r["image_id"] for r in rows}, set()
    stored = [Features.unpacked(r["points"], r["descriptors"], (r["width"], r["height"]),
                                r["thumb"]) for r in rows]
    with metrics.image_search_stage("verification"):
        verified = await run_cpu(cpu, _verify_all, query, stored, (1.0, 1.0), CONFIRM_INLIERS)
    return ({r["image_id"] for r in rows},
            {r["image_id"] for r, v in zip(rows, verified, strict=True) if v is not None})


async def stored(conn: Connection, queries: Queries, viewer_id: UUID | None,
                 image_id: UUID) -> Features | None:
    """A stored image's own features, as a query ("similar to this one")."""
    row = await queries.features_of(conn, viewer_id=viewer_id, image_id=image_id)
    if row is None:
        return None
    return Features.unpacked(row["points"], row["descriptors"], (row["width"], row["height"]),
                             row["thumb"])


# --- merging the inverted file ---------------------------------------------------------------


async def merge(pool: Pool, queries: Queries, *, at_least: int = 1) -> int:
    """Fold recent postings into the merged arrays while at least `at_least` wait; one
    process at a time (the others return at once). Returns the postings moved."""
    moved = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("select pg_try_advisory_xact_lock($1)", _MERGE_LOCK):
                return moved
            if await queries.count_recent_postings(conn) < max(1, at_least):
                return moved
            done = await queries.merge_postings(conn, limit=MERGE_BATCH)
        moved += done
        at_least = 1  # once started, fold everything that is there
        if done < MERGE_BATCH:
            return moved


async def merge_forever(pool: Pool, queries: Queries) -> None:
    """The background merger each process runs: a check every MERGE_EVERY seconds."""
    while True:
        await asyncio.sleep(MERGE_EVERY)
        try:
            moved = await merge(pool, queries, at_least=MERGE_AT)
            if moved:
                log.info("merged %d recent feature postings", moved)
        except Exception:  # a failed merge leaves the postings where they were
            log.exception("merging feature postings failed")
