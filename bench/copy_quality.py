"""Copy detection as the service answers it: recall per family, the original first, and false
matches among the hard negatives and ten thousand distractors (issue 22's quality targets).

    createdb -h 127.0.0.1 -U postgres bench_copy
    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/bench_copy \
        nice -n 5 python -m bench.copy_quality [--distractors 10000] [--instances 2]

The stored set of tests/copy_edits.py (its 13 stored pictures, 8 hard negatives each: other
views of the same scene overlapping by less than a third, and the distractor stream:
textures, screenshots and pages without the pictures, faces, other views, collages) goes
through the upload pipeline's analysis (`server.imaging.analyse`) and into the service's
tables (rows, region signals, local features, merged postings). Every copy of every photo
(the legacy edits once, each family's first `--instances`) is then analysed as a query is
and answered by `services.matching.page`, the code behind `POST /search/image`
(match=robust, as an anonymous viewer: everything stored is public; orientations=all for the
turned and mirrored legacy edits, as the README says to ask). A copy is found when
every picture it holds is among the answers; "first" when the first answer is one of them;
a false match is any other answer (a face of the stream that a post or a screenshot shows
among its other pictures is held by it, and not counted: `copy_edits.holds`). The tables of
that database are emptied first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg

from server.db.migrations import migrate
from server.db.pool import init_connection
from server.db.queries import load_queries
from server.imaging import HASH_VERSION, ImageFacts, analyse, features
from server.services import copies, matching
from server.services.cursors import Cursors
from server.services.images import NewImage, insert_signals
from server.services.similar import SimilarFilters
from tests import copy_edits as ce
from tests.photo_edits import EDITS

MAX_PIXELS = 10**8


def stored_facts(item: tuple[str, str, bytes]) -> tuple[str, str, ImageFacts]:
    key, kind, data = item
    return key, kind, analyse(data, max_pixels=MAX_PIXELS)


def orientations(c: ce.Copy) -> bool:
    """Whether the README asks for orientations=all for this copy (turned or mirrored)."""
    return c.family.startswith("edit:") and EDITS[c.family[5:]][2]


def query_facts(c: ce.Copy) -> tuple[ce.Copy, ImageFacts, float]:
    started = time.process_time()
    facts = analyse(c.data, max_pixels=MAX_PIXELS, query=True, variants=orientations(c))
    return c, facts, (time.process_time() - started) * 1000


@dataclass
class Outcome:
    found: int = 0
    first: int = 0
    total: int = 0
    false: int = 0


KINDS: dict[str, str] = {}  # stored key -> its kind (stored, hard, view, face, ...)


async def load(conn: asyncpg.Connection, distractors: int) -> dict[uuid.UUID, str]:
    queries = load_queries()
    await conn.execute("truncate images, users, feature_postings, feature_postings_recent "
                       "cascade")
    owner = (await queries.insert_user(conn, username="bench",
                                       password_hash="$2b$12$" + "x" * 53))["id"]
    names: dict[uuid.UUID, str] = {}
    started = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        for n, (key, kind, facts) in enumerate(
                pool.map(stored_facts, ce.stored_set(distractors), chunksize=16)):
            image = NewImage(
                title=key, description="", tags=[], visibility="public", filename=key,
                content_type=facts.content_type, width=facts.width, height=facts.height,
                size_bytes=1, sha256=bytes(32), phash=facts.phash, dhash=facts.dhash,
                ahash=facts.ahash, whash=facts.whash, colorhash=facts.colorhash,
                hash_version=HASH_VERSION, storage_key=f"bench/{n}")
            async with conn.transaction():
                image_id = await queries.insert_image(conn, owner_id=owner, **image.row())
                await insert_signals(conn, queries, image_id, facts.signals)
                await copies.insert(conn, queries, image_id, facts.features)
            names[image_id] = key
            KINDS[key] = kind
    pg = await asyncpg.create_pool(dsn=os.environ["DATABASE_URL"], min_size=1, max_size=1,
                                   init=init_connection)
    moved = await copies.merge(pg, queries)
    await pg.close()
    await conn.execute("vacuum analyze")
    print(f"stored {len(names):,} images ({distractors:,} distractors) in "
          f"{time.perf_counter() - started:.0f} s; {moved:,} postings merged", flush=True)
    return names


async def reused(conn: asyncpg.Connection) -> dict[uuid.UUID, str]:
    """What load() answers, from the tables an earlier run filled."""
    names = {r["id"]: r["title"] for r in await conn.fetch("select id, title from images")}
    for key in names.values():
        KINDS[key] = ("stored" if key in ce.PHOTOS else "hard" if "/hard" in key
                      else ce.distractor_kind(int(key[1:])))
    return names


async def run(args: argparse.Namespace) -> None:
    conn = await asyncpg.connect(os.environ["DATABASE_URL"])
    await init_connection(conn)
    await migrate(conn)
    names = await reused(conn) if args.reuse else await load(conn, args.distractors)
    dump: list[tuple[object, ...]] = []
    queries = load_queries()
    cursors = Cursors(b"bench" * 8)
    rows: dict[str, dict[str, Outcome]] = defaultdict(lambda: defaultdict(Outcome))
    false_examples: list[str] = []
    misses: list[str] = []
    cpu_ms: list[float] = []
    wall_ms: list[float] = []
    copies_ = list(ce.copies(ce.PHOTOS, instances=args.instances, edits=1))
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool, ThreadPoolExecutor(1) as verify:
        for c, facts, analysis_ms in pool.map(query_facts, copies_, chunksize=4):
            local = None if facts.features is None else matching.LocalQuery(
                facts.features, (facts.width, facts.height), verify,
                mirrored=facts.mirrored_features)
            started = time.perf_counter()
            found, _ = await matching.page(
                conn, queries, cursors, list(facts.query_variants), viewer_id=None,
                filters=SimilarFilters(), cursor=None, limit=100,
                whole=[facts.phash, *facts.variant_phashes], local=local)
            wall_ms.append((time.perf_counter() - started) * 1000)
            if args.dump and local is not None:
                for f in await copies.find(conn, queries, verify, local.features, None,
                                           size=local.size):
                    e = f.evidence
                    dump.append(("dev" if c.photo in ce.DEVELOPMENT else "held", c.family,
                                 ce.holds(c, names[f.image_id]), e.inliers, e.spread, e.ncc,
                                 e.agree, f"{c.family}/{c.photo}#{c.instance}",
                                 names[f.image_id]))
            cpu_ms.append(analysis_ms)
            answers = [names[row["id"]] for row, _ in found]
            how = {names[row["id"]]: m for row, m in found}
            family = "legacy edits" if c.family.startswith("edit:") else c.family
            split = "dev" if c.photo in ce.DEVELOPMENT else "held"
            outcome = rows[family][split]
            outcome.total += 1
            outcome.found += set(c.answers) <= set(answers)
            outcome.first += bool(answers) and answers[0] in c.answers
            wrong = [a for a in answers if not ce.holds(c, a)]
            outcome.false += len(wrong)
            false_examples += [f"{c.family}/{c.photo}#{c.instance} -> {KINDS[w]}:{w} by "
                               f"{how[w].region} "
                               f"({how[w].variant}, score {how[w].score:.3f}, inliers "
                               f"{how[w].inliers})" for w in wrong]
            if not set(c.answers) <= set(answers):
                misses.append(f"{c.family}/{c.photo}#{c.instance}")
    await conn.close()
    if args.dump:
        with open(args.dump, "w") as out:
            json.dump(dump, out)
    print(f"\n{len(copies_)} queries; analysis {sorted(cpu_ms)[len(cpu_ms) // 2]:.1f} ms CPU "
          f"p50; matching (PostgreSQL + verification) {sorted(wall_ms)[len(wall_ms) // 2]:.1f}"
          f" ms p50\n")
    print("| family | dev found | dev first | held-out found | held-out first | false |")
    print("|---|---|---|---|---|---|")
    totals = {"dev": Outcome(), "held": Outcome()}
    for family, by in rows.items():
        cells = []
        for split in ("dev", "held"):
            o = by[split]
            cells += [f"{o.found}/{o.total}", f"{o.first}/{o.total}"]
            t = totals[split]
            t.found, t.first, t.total, t.false = (t.found + o.found, t.first + o.first,
                                                  t.total + o.total, t.false + o.false)
        print(f"| {family} | " + " | ".join(cells) + f" | {by['dev'].false + by['held'].false} |")
    d, h = totals["dev"], totals["held"]
    print(f"| **all** | {d.found}/{d.total} ({d.found / d.total:.3f}) | {d.first}/{d.total} | "
          f"{h.found}/{h.total} ({h.found / h.total:.3f}) | {h.first}/{h.total} | "
          f"{d.false + h.false} |")
    for example in false_examples[:40]:
        print(f"- false match: {example}")
    print(f"- missed: {', '.join(misses)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distractors", type=int, default=ce.DISTRACTORS)
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--reuse", action="store_true",
                        help="keep the tables an earlier run filled (same --distractors)")
    parser.add_argument("--dump", help="write every match by features, with what its "
                        "verification measured, to this JSON file (rules relaxed to the "
                        "inlier and spread floors, to study them)")
    args = parser.parse_args()
    if args.dump:
        features.SURE_SPREAD = 0.0
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
