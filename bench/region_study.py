"""Study: picture-region proposals in a query, hashed as today's signals (the service's code).

Many copies hold the stored picture as a region of the query: a screenshot, a post, a frame,
a photo of a screen, a collage. The whole query's variants guess edits of the whole query, so
they miss all of these (docs/copy-study.md). The service's query analysis
(server/imaging/regions.py, signals.picture_signals) proposes the query's picture-like regions
from its edges, rectifies each and hashes it as a whole-query's whole and centre variants; the
whole query's variants alone ("today") and with the pictures' ("+ regions") are matched against
the stored signals, pairwise in memory (what matching.find() returns from PostgreSQL).

    nice -n 5 .venv/bin/python -m bench.region_study [--instances 3] [--distractors 2000]
        [--ablation]

--ablation also counts, on the development photos, the answers that subsets of the kinds of
picture variants find (how PICTURE_CENTRE_SCALES was chosen; run it with all the scales).
Figures: docs/copy-study.md ("Region proposals").
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from server.imaging import analyse
from server.imaging.signals import Signal, radius_of, verify
from tests import copy_edits as ce
from tests.photo_edits import EDITS

SUBSETS = (("whole",), ("centre crop 1",), ("centre crop 0.95",), ("centre crop 0.9",),
           ("whole", "centre crop 1"), ("centre crop 1", "centre crop 0.95"),
           ("whole", "centre crop 1", "centre crop 0.95"),
           ("whole", "centre crop 1", "centre crop 0.95", "centre crop 0.9"))


def _kind(label: str) -> str:
    """A picture variant's kind: "whole" or its centre crop."""
    return label.split(", ", 1)[1] if ", " in label else "whole"


class Index:
    """Today's stored signals of the stored set, matched as the probes and verify() do."""

    def __init__(self, stored: Sequence[bytes]) -> None:
        owners, regions, phashes, self.dhashes, self.thumbs = [], [], [], [], []
        for k, data in enumerate(stored):
            for s in analyse(data, max_pixels=10**8).signals:
                owners.append(k)
                regions.append(s.region)
                phashes.append(s.phash & (2**64 - 1))
                self.dhashes.append(s.dhash)
                self.thumbs.append(s.thumb)
        self.owners, self.regions = np.array(owners), np.array(regions)
        self.phashes = np.array(phashes, dtype=np.uint64)

    def find(self, variants: Sequence[Signal]) -> set[int]:
        hits: set[int] = set()
        for v in variants:
            d = np.bitwise_count(self.phashes ^ np.uint64(v.phash & (2**64 - 1)))
            for i in np.nonzero((d <= radius_of(v)) & (self.regions == v.region))[0]:
                if int(self.owners[i]) not in hits and verify(
                        v, int(d[i]), self.dhashes[i], self.thumbs[i]) is not None:
                    hits.add(int(self.owners[i]))
        return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--distractors", type=int, default=2000)
    parser.add_argument("--ablation", action="store_true")
    args = parser.parse_args()
    stored = list(ce.stored_set(args.distractors))
    keys = {key: k for k, (key, _, _) in enumerate(stored)}
    index = Index([data for _, _, data in stored])
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    false: dict[tuple[str, str], int] = defaultdict(int)
    kinds: dict[str, int] = defaultdict(int)
    cpu: list[float] = []
    queries = list(ce.copies(ce.PHOTOS, instances=args.instances, edits=1))
    for c in queries:
        family = "legacy edits" if c.family.startswith("edit:") else c.family
        split = "dev" if c.photo in ce.DEVELOPMENT else "held"
        orientations = c.family.startswith("edit:") and EDITS[c.family[5:]][2]
        started = time.process_time()
        variants = analyse(c.data, max_pixels=10**8, query=True,
                           variants=orientations).query_variants
        cpu.append(time.process_time() - started)
        today = [v for v in variants if v.corners is None]
        answers = {keys[a] for a in c.answers}
        for mode, chosen in (("today", today), ("+regions", variants)):
            hits = index.find(chosen)
            count = counts[(family, mode, split)]
            count[0] += len(answers & hits)
            count[1] += len(answers)
            false[(mode, split)] += len(hits - answers)
        if args.ablation and split == "dev":
            pictures = [v for v in variants if v.corners is not None]
            for subset in SUBSETS:
                kinds[" + ".join(subset)] += len(answers & index.find(
                    [v for v in pictures if _kind(v.label) in subset]))
    print(f"{len(stored)} stored images ({args.distractors} distractors), {len(queries)} "
          f"queries; query analysis with proposals: CPU p50 {1000 * np.median(cpu):.1f} ms, "
          f"p95 {1000 * np.percentile(cpu, 95):.1f} ms a query")
    print("false matches: " + ", ".join(f"{m} {s} {n}" for (m, s), n in sorted(false.items())))
    if args.ablation:
        print("development answers found by the pictures' variants of these kinds: "
              + ", ".join(f"{k} {n}" for k, n in kinds.items()))
    print("\n| family | today dev | today held-out | + regions dev | + regions held-out |")
    print("|---|---|---|---|---|")
    for family in dict.fromkeys(f for f, _, _ in counts):
        cells = [f"{counts[(family, m, s)][0]}/{counts[(family, m, s)][1]}"
                 for m in ("today", "+regions") for s in ("dev", "held")]
        print(f"| {family} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
