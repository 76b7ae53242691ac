"""Robust search by image: a query's variants against the stored region signals.

Each stored image has a few signals (server/imaging/signals.py): pHashes of regions of its
picture, each with the dHash and a 16x16 thumbnail of the same region. A query comes as
variants, each a guess at one edit and aimed at one stored region. The probes
(sql/queries/signals.sql) find, exactly, every stored signal of that region within the
variant's radius; a candidate is accepted only if the region's dHash and thumbnail agree too.
An image's answer is its best accepted pair. The few matches are then filtered (visibility,
text, tag, owner) and paged in the service: they are tens, not thousands.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID

from ..db.pool import Connection, plan_cache_mode
from ..db.queries import Queries, Record
from ..imaging.bits import hamming
from ..imaging.features import Features
from ..imaging.regions import Corners
from ..imaging.signals import REGIONS, SIGNALS_VERSION, Signal, radius_of, verify
from ..observability import metrics
from . import copies, similar
from .cursors import Cursors, scope_of
from .similar import CHUNKS, SimilarFilters, chunk_probe_values, filter_params
from .within import Within, param

NEAR_DUPLICATES_SHOWN = 10


@dataclass(frozen=True, slots=True)
class Match:
    image_id: UUID
    score: float  # 1 - (pHash + dHash bits) / 128 of the matched pair: 1 is identical
    distance: int  # pHash bits between the query variant and the stored region
    region: str  # the stored signal that matched: whole, centre, top-left, ...
    variant: str  # what the query variant assumed: "whole", "centre crop 0.9", ...
    corners: Corners | None = None  # where the picture lies in the query, when found there
    inliers: int | None = None  # keypoints verified by geometry, when local features matched

    def json(self) -> dict[str, Any]:
        where: dict[str, Any] = {"query_part": "whole"}
        if self.corners is not None:
            where = {"query_part": "region", "corners": [list(p) for p in self.corners]}
        if self.inliers is not None:
            where["inliers"] = self.inliers
        signal = "features" if self.region == FEATURES else (
            "whole" if self.region == "whole" else "region")
        return {"signal": signal, "region": self.region, "variant": self.variant, **where}


FEATURES = "features"  # Match.region of a match by local features


def from_features(found: copies.FeatureMatch, query_phash: int) -> Match:
    return Match(found.image_id, found.score, hamming(found.phash, query_phash), FEATURES,
                 "local features", found.corners, found.inliers)


def union(signalled: Sequence[Match], featured: Sequence[Match]) -> list[Match]:
    """One match per image, best first: the higher score, with the inliers of the features'
    match when the signals' won (its place in the query stays the signals' own: `whole`
    when the query as a whole matched)."""
    best: dict[UUID, Match] = {}
    for match in [*signalled, *featured]:
        known = best.get(match.image_id)
        if known is None:
            best[match.image_id] = match
            continue
        top, other = (match, known) if match.score > known.score else (known, match)
        if top.inliers is None and other.inliers is not None:
            top = replace(top, inliers=other.inliers)
        best[match.image_id] = top
    return sorted(best.values(), key=lambda m: (-m.score, m.image_id))


def probe_arrays(variants: Sequence[Signal]) -> dict[str, list[int]]:
    """Per chunk, the values to probe and the (1-based) variant each one is for."""
    arrays: dict[str, list[int]] = {}
    for chunk in range(CHUNKS):
        arrays[f"p{chunk}"], arrays[f"n{chunk}"] = [], []
    for n, variant in enumerate(variants, start=1):
        for chunk, values in enumerate(chunk_probe_values(variant.phash, radius_of(variant))):
            arrays[f"p{chunk}"] += values
            arrays[f"n{chunk}"] += [n] * len(values)
    return arrays


def candidate_params(variants: Sequence[Signal]) -> dict[str, list[int]]:
    """The parameters of the signal_candidates query for these variants."""
    return {"regions": [REGIONS.index(v.region) for v in variants],
            "hashes": [v.phash for v in variants],
            "radii": [radius_of(v) for v in variants], **probe_arrays(variants)}


async def find(
    conn: Connection, queries: Queries, variants: Sequence[Signal], viewer_id: UUID | None,
    within: Within | None = None,
) -> list[Match]:
    """Every image the viewer may see (of `within`, if given) with a verified match, best
    first."""
    if not variants:
        return []
    params = candidate_params(variants)
    with metrics.image_search_stage("signal_candidates"):
        # One plan for every query: the probes' shape never changes, only their values.
        async with plan_cache_mode(conn, "force_generic_plan"):
            rows = [r async for r in queries.signal_candidates(
                conn, viewer_id=viewer_id, within=param(within), **params)]
    metrics.image_search_candidates("signals", len(rows))
    best: dict[UUID, Match] = {}
    for row in rows:
        variant = variants[row["variant"] - 1]
        score = verify(variant, row["distance"], row["dhash"], bytes(row["thumb"]))
        if score is None:
            continue
        match = Match(row["image_id"], score, row["distance"], variant.region, variant.label,
                      variant.corners)
        known = best.get(match.image_id)
        # A match through the query as it is beats one through a guessed edit (which must
        # then be confirmed: `confirmed`), whatever their scores.
        if known is None or ((not guessed(match), match.score, -match.distance)
                             > (not guessed(known), known.score, -known.distance)):
            best[match.image_id] = match
    return sorted(best.values(), key=lambda m: (-m.score, m.image_id))


async def unsignalled(
    conn: Connection, queries: Queries, whole: Sequence[int], *, viewer_id: UUID | None,
    max_distance: int, within: Within | None = None,
) -> list[Match]:
    """Across the transition to region signals: images not yet rehashed are matched as
    before, on their whole-picture pHash within `max_distance` (unverified: they have no
    thumbnail yet). Nothing to do once every image has its signals."""
    if not whole or not await queries.any_unsignalled(conn):
        return []
    rows = await similar.matches(conn, queries, whole, viewer_id=viewer_id,
                                 max_distance=max_distance, filters=SimilarFilters(within=within),
                                 limit=1000)
    return [Match(r["id"], 1 - r["distance"] / 64, r["distance"], "whole", "whole")
            for r in rows if r["hash_version"] < SIGNALS_VERSION]


GUESSES = ("centre crop 0", "letterbox ", "pillarbox ", "rotated ")


def guessed(match: Match) -> bool:
    """A match only through a guessed edit of the whole query (a crop, bars, a tilt), and
    not by local features: such guesses find other views of a plain scene too."""
    return match.inliers is None and (match.variant.startswith(GUESSES)
                                      or " corner, crop " in match.variant)


async def confirmed(conn: Connection, queries: Queries, matches: list[Match],
                    local: LocalQuery | None) -> list[Match]:
    """The matches, less the guessed ones that the local features do not confirm: an image
    with features found only through a guess stays if its features agree with the query
    (CONFIRM_INLIERS verified keypoints, every geometric rule). Images not yet given
    features (before `rehash`) keep the guesses."""
    guesses = [m.image_id for m in matches if guessed(m)]
    if local is None or not guesses:
        return matches
    featured, agree = await copies.confirm(conn, queries, local.cpu, local.features, guesses)
    return [m for m in matches
            if not guessed(m) or m.image_id not in featured or m.image_id in agree]


@dataclass(frozen=True, slots=True)
class LocalQuery:
    """A query's local features, and what finding them needs."""

    features: Features
    size: tuple[int, int]  # the query's upright pixels (corners are given in them)
    cpu: Executor  # verification runs in the CPU pool
    exclude_id: UUID | None = None  # "similar to this one": not the image itself
    mirrored: Features | None = None  # the query's features mirrored, when asked for

    def digest(self) -> tuple[str]:
        """What a cursor's scope holds of the features: their digest."""
        return (hashlib.sha256(self.features.descriptors.tobytes()).hexdigest(),)


async def by_features(conn: Connection, queries: Queries, local: LocalQuery | None,
                      viewer_id: UUID | None, query_phash: int,
                      within: Within | None = None) -> list[Match]:
    if local is None:
        return []
    found = await copies.find(conn, queries, local.cpu, local.features, viewer_id,
                              size=local.size, exclude_id=local.exclude_id, within=within)
    matches = [from_features(f, query_phash) for f in found]
    if local.mirrored is not None:
        width = local.size[0]
        for f in await copies.find(conn, queries, local.cpu, local.mirrored, viewer_id,
                                   size=local.size, exclude_id=local.exclude_id,
                                   within=within):
            corners = tuple((width - x, y) for x, y in f.corners)
            matches.append(replace(from_features(f, query_phash), variant="local features, "
                                   "mirrored", corners=corners))  # type: ignore[arg-type]
    return union([], matches)


async def page(
    conn: Connection, queries: Queries, cursors: Cursors, variants: Sequence[Signal], *,
    viewer_id: UUID | None, filters: SimilarFilters, cursor: str | None, limit: int,
    whole: Sequence[int] = (), max_distance: int = 10, local: LocalQuery | None = None,
) -> tuple[list[tuple[Record, Match]], str | None]:
    """One page of verified matches that pass the filters, best first (score, then id);
    `whole` and `max_distance` find the images that have no signals yet; `local` adds the
    matches by local features."""
    scope = scope_of("matching", viewer_id, max_distance, *whole,
                     *((v.region, v.phash) for v in variants), *filters.scope(),
                     *(local.digest() if local else ()))
    matches = await find(conn, queries, variants, viewer_id, filters.within)
    matches += await unsignalled(conn, queries, whole, viewer_id=viewer_id,
                                 max_distance=max_distance, within=filters.within)
    featured = await by_features(conn, queries, local, viewer_id, whole[0] if whole else 0,
                                 filters.within)
    matches = await confirmed(conn, queries, union(matches, featured), local)
    if cursor:
        after_score, after_id = cursors.decode(cursor, scope, float, UUID)
        matches = [m for m in matches if (-m.score, m.image_id) > (-after_score, after_id)]  # type: ignore[operator]
    rows = {r["id"]: r async for r in queries.visible_images(
        conn, ids=[m.image_id for m in matches], viewer_id=viewer_id, **filter_params(filters))}
    found = [(rows[m.image_id], m) for m in matches if m.image_id in rows]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last = found[-1][1]
        next_cursor = cursors.encode(scope, last.score, last.image_id)
    return found, next_cursor


async def near_duplicates(
    conn: Connection, queries: Queries, signals: Sequence[Signal], phash: int, owner_id: UUID,
    image_id: UUID, local: LocalQuery | None = None,
) -> list[Match]:
    """Images the uploader can see that match a new image: its own regions as the variants
    (plus, across the transition, whole-picture pHashes within NEAR_DUPLICATE_BITS), and its
    own local features as a query."""
    variants = [replace(s, label=s.region) for s in signals]
    found = await find(conn, queries, variants, owner_id)
    found += await unsignalled(conn, queries, [phash], viewer_id=owner_id,
                               max_distance=similar.NEAR_DUPLICATE_BITS)
    found = union(found, await by_features(conn, queries, local, owner_id, phash))
    return [m for m in found if m.image_id != image_id][:NEAR_DUPLICATES_SHOWN]


async def stored_variants(
    conn: Connection, queries: Queries, viewer_id: UUID | None, image_id: UUID
) -> list[Signal]:
    """A stored image's own signals, as the variants of a query ("similar to this one")."""
    return [Signal(REGIONS[r["region"]], r["phash"], r["dhash"], bytes(r["thumb"]),
                   REGIONS[r["region"]])
            async for r in queries.signals_of(conn, viewer_id=viewer_id, image_id=image_id)]
