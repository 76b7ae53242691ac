"""Text search: PostgreSQL full-text search, with a bounded plan for frequent words."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from ..db.pool import Connection, plan_cache_mode
from ..db.queries import Queries, Record
from ..errors import ValidationFailed
from ..observability import metrics
from .cursors import Cursors, scope_of
from .within import Within, param

MAX_QUERY_CHARS = 1000
# Above this many estimated matches, ranking them all costs more than it is worth: only the
# newest RECENT_CANDIDATES matches are ranked (see "Text search" in docs/api.md).
EXACT_RANKING_LIMIT = 3000
# Between the two: rank only the images whose title or tags match, when those are few enough
# (a small index and few rows to visit) but not so few that the page would be thin.
HEAD_RANKING_LIMIT = 12000
HEAD_RANKING_MINIMUM = 100
RECENT_CANDIDATES = 1000
# Within a set (an album's images), its own rows are read instead of the word's index when the
# word matches this many times more images in the library than the set holds: reading the
# set costs its size (~7 ms per 1,000 images), the index the matches.
WITHIN_FACTOR = 4
MODES = ("exact", "head", "recent", "within")
_BARE_WORD = re.compile(r"\w{1,64}")


@dataclass(frozen=True, slots=True)
class SearchFilters:
    owner_id: UUID | None = None
    tag: str | None = None
    visibility: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    within: Within | None = None  # only these images (an album's, a share link's)

    def scope(self) -> list[object]:
        """What of the filters goes into a cursor's scope (of `within`, its source)."""
        return [getattr(self, f.name) for f in fields(self)]


def split_last_word(q: str) -> tuple[str, str | None]:
    """(head, last word) when the last word should also match as a prefix: a bare word that
    is being typed (no trailing space), not inside a phrase, not after or being `or`."""
    if not q or q[-1].isspace():
        return q, None
    words = q.split()
    token = words[-1]
    if not _BARE_WORD.fullmatch(token) or q.count('"') % 2 or token.lower() == "or":
        return q, None
    if len(words) > 1 and words[-2].lower() == "or":
        return q, None
    return q[: len(q) - len(token)], token.lower()


def check_query(q: str) -> str:
    if "\x00" in q:
        raise ValidationFailed("q contains a NUL character", details={"q": ["NUL is not allowed."]})
    if len(q) > MAX_QUERY_CHARS:
        raise ValidationFailed("q is too long",
                               details={"q": [f"At most {MAX_QUERY_CHARS} characters."]})
    return q


def _plan_rows(explained: str) -> float:
    return float(json.loads(explained)[0]["Plan"]["Plan Rows"])


async def _choose_mode(conn: Connection, queries: Queries, q: str, head: str,
                       last_word: str | None, within: int | None = None) -> str:
    """Which plan: from the planner's estimates of the matches, in the whole document and in
    its head (title and tags). Within a set of `within` images: the word's index, every match
    in the set ranked; or, for words much more frequent than the set is large, the set's own
    rows (at most an album's 10,000)."""
    async def estimate(in_head: bool) -> float:
        return _plan_rows(await queries.estimate_matches(
            conn, q=q, head=head, last_word=last_word, in_head=in_head))

    matches = await estimate(in_head=False)
    if within is not None:
        return "within" if matches > WITHIN_FACTOR * max(within, 100) else "exact"
    if matches <= EXACT_RANKING_LIMIT:
        return "exact"
    in_head = await estimate(in_head=True)
    return "head" if HEAD_RANKING_MINIMUM <= in_head <= HEAD_RANKING_LIMIT else "recent"


async def _fetch_page(
    conn: Connection, queries: Queries, mode: object, params: dict[str, Any]
) -> list[Record]:
    if mode == "recent":
        unset = {k: v for k, v in params.items() if k != "within"}  # never a set: _choose_mode
        return [r async for r in queries.search_recent(
            conn, candidates=RECENT_CANDIDATES, **unset)]
    if mode == "within":
        return [r async for r in queries.search_within(conn, **params)]
    return [r async for r in queries.search_ranked(conn, in_head=mode == "head", **params)]


async def search(
    conn: Connection, queries: Queries, cursors: Cursors, *, viewer_id: UUID | None, q: str,
    filters: SearchFilters, cursor: str | None, limit: int, timeout: float | None = None,
) -> tuple[list[Record], str | None]:
    """One page of matches, best first; and the cursor of the next page. The plan is the
    service's choice: made from the estimate on the first page, and carried by the signed
    cursor (which is valid only for these words, filters and viewer) to the next ones."""
    head, last_word = split_last_word(check_query(q))
    scope = scope_of("search", viewer_id, q, *filters.scope())
    mode: object = None
    after_rank = after_created = after_id = None
    if cursor:
        mode, after_rank, after_created, after_id = cursors.decode(
            cursor, scope, str, float, datetime, UUID
        )
        if mode not in MODES:
            raise ValidationFailed("Malformed cursor", details={"cursor": ["Unknown mode."]})
    started = time.perf_counter()
    # Both statements are planned for these very words, never from a cached generic plan:
    # the estimate picks the plan, and the plan fits the words.
    async with plan_cache_mode(conn, "force_custom_plan", timeout=timeout):
        if not cursor:
            mode = await _choose_mode(conn, queries, q, head, last_word,
                                      within=None if filters.within is None
                                      else len(filters.within.ids))
        params = {
            "viewer_id": viewer_id, "q": q, "head": head, "last_word": last_word,
            "owner_id": filters.owner_id, "tag": filters.tag, "visibility": filters.visibility,
            "within": param(filters.within),
            "created_after": filters.created_after, "created_before": filters.created_before,
            "after_rank": after_rank, "after_created": after_created, "after_id": after_id,
            "limit": limit + 1,
        }
        rows = await _fetch_page(conn, queries, mode, params)
        if mode == "head" and not cursor and not rows:
            # No title or tag matches after all (the filters or the estimate misled).
            mode = "recent"
            rows = await _fetch_page(conn, queries, mode, params)
    metrics.text_search(str(mode), time.perf_counter() - started)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        next_cursor = cursors.encode(scope, mode, last["score"], last["created_at"], last["id"])
    return rows, next_cursor
