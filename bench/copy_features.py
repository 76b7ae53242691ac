"""The service's local features (server/imaging/features.py) against the copy families,
pairwise: the inlier threshold and what it costs.

    nice -n 5 python -m bench.copy_features [--distractors 150] [--instances 2]

Stored side: every stored picture of tests/copy_edits.py, its hard negatives and the first N
distractors of the stream, decoded as an upload is (server/imaging/decoding.py) and given
their stored features. Query side: every copy of every photo (DEVELOPMENT and HELD_OUT),
decoded as a query is. Each query is verified against every stored image, without the
inlier threshold; the threshold printed is the smallest inlier count above every non-match
of the DEVELOPMENT queries (zero false matches there), and recall per family is reported at
it for both splits, with the held-out false matches. The service's MIN_INLIERS should be that
threshold. Times are CPU time of this process (one OpenCV thread).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections import defaultdict
from dataclasses import replace

import numpy as np
from PIL import Image

from server.imaging import features as ft
from server.imaging.decoding import working_image
from tests import copy_edits as ce


def gray_at(data: bytes, side: int) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        work = working_image(im, side)
    assert work.detail is not None
    return work.detail


def family_of(c: ce.Copy) -> str:
    return "edits (legacy kinds)" if c.family.startswith("edit:") else c.family


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--distractors", type=int, default=150)
    parser.add_argument("--instances", type=int, default=2)
    args = parser.parse_args()
    stored = list(ce.stored_set(args.distractors))
    index = {key: k for k, (key, _, _) in enumerate(stored)}
    queries = list(ce.copies(ce.PHOTOS, instances=args.instances, edits=1))
    t = time.process_time()
    feats = [ft.stored_features(gray_at(data, ft.STORED_SIDE)) for _, _, data in stored]
    ingest_ms = (time.process_time() - t) * 1000 / len(stored)
    counts = np.array([len(f) for f in feats])
    print(f"{len(stored)} stored images, {len(queries)} queries; stored features mean "
          f"{counts.mean():.0f} (min {counts.min()}), {ingest_ms:.1f} ms CPU each "
          f"(decode at {ft.STORED_SIDE} + ORB)")
    strict = ft.MIN_INLIERS
    ft.MIN_INLIERS = 8  # measure below the threshold
    true: list[tuple[ce.Copy, int]] = []  # (copy, inliers of a sane match or 0)
    false: dict[str, list[tuple[int, str]]] = defaultdict(list)
    q_ms = v_ms = 0.0
    dump: list[tuple[object, ...]] = []
    coverage_true: list[float] = []
    spread_true: list[float] = []
    ncc_true: list[tuple[float, str]] = []
    for c in queries:
        split = "dev" if c.photo in ce.DEVELOPMENT else "held"
        t = time.process_time()
        qf = ft.query_features(gray_at(c.data, ft.QUERY_SIDE))
        q_ms += (time.process_time() - t) * 1000
        answers = {index[a] for a in c.answers}
        t = time.process_time()
        for k, f in enumerate(feats):
            found = ft.verify(f, qf)
            inliers = found.inliers if found else 0
            if found and os.environ.get("DUMP"):
                dump.append((split, c.family, ce.holds(c, stored[k][0]), found.inliers,
                             found.spread, found.ncc, found.coverage,
                             f"{c.family}/{c.photo}#{c.instance}", stored[k][0]))
            if k in answers:
                true.append((replace(c, notes={"split": split == "dev"}), inliers))
                if found:
                    coverage_true.append(found.coverage)
                    spread_true.append(found.spread)
                    ncc_true.append((found.ncc, c.family))
            elif found and not ce.holds(c, stored[k][0]):
                false[split].append((inliers, f"{c.family}/{c.photo}#{c.instance} vs "
                                              f"{stored[k][1]}:{stored[k][0]} "
                                              f"cov {found.coverage:.2f} "
                                              f"spread {found.spread:.2f} "
                                              f"ncc {found.ncc:.2f}"))
        v_ms += (time.process_time() - t) * 1000
    ft.MIN_INLIERS = strict
    if os.environ.get("DUMP"):
        with open(os.environ["DUMP"], "w") as out:
            json.dump(dump, out)
    threshold = max((n for n, _ in false["dev"]), default=0) + 1
    print(f"query features {q_ms / len(queries):.1f} ms CPU each; verification "
          f"{v_ms / len(queries) / len(feats):.2f} ms a pair")
    for split in ("dev", "held"):
        worst = sorted(false[split], reverse=True)[:8]
        print(f"- most inliers of a non-match ({split}): {worst}")
    print("true coverage percentiles 1/5/10/50:",
          np.percentile(coverage_true, [1, 5, 10, 50]).round(2))
    print("true spread percentiles 1/5/10/50:",
          np.percentile(spread_true, [1, 5, 10, 50]).round(2))
    print("true ncc percentiles 1/5/10/50:",
          np.percentile([n for n, _ in ncc_true], [1, 5, 10, 50]).round(2))
    print("lowest true ncc:", sorted(ncc_true)[:12])
    for split in ("dev", "held"):
        print(split, "false nccs:", sorted(round(float(x.split("ncc ")[1]), 2)
                                           for _, x in false[split] if _ >= 20))
    for split in ("dev", "held"):
        print(split, "false spreads:", sorted(round(float(x.split("spread ")[1].split()[0]), 2)
                                                for _, x in false[split] if _ >= 20))
    held_false = sum(1 for n, _ in false["held"] if n >= threshold)
    print(f"\nthreshold (zero development false matches): {threshold} (service: {strict}); "
          f"held-out false matches at it: {held_false}; at the service's: "
          f"{sum(1 for n, _ in false['held'] if n >= strict)}\n")
    rows: dict[str, dict[bool, list[int]]] = defaultdict(lambda: defaultdict(list))
    for c, inliers in true:
        rows[family_of(c)][bool(c.notes["split"])].append(int(inliers >= strict))
    print(f"| family (at {strict} inliers) | dev | held-out |")
    print("|---|---|---|")
    for fam, by in rows.items():
        print(f"| {fam} | " + " | ".join(f"{sum(by[s])}/{len(by[s])}" for s in (True, False))
              + " |")


if __name__ == "__main__":
    main()
