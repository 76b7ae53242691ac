"""Search-by-image quality: precision and recall at the default threshold (10 bits) on
generated image families, with `orientations` none and all.

    python -m bench.quality [--families 40] [--unrelated 200]

Each family is one generated picture (the stored original) and its edited copies (the
queries): resize, recompress, brightness, 2% and 5% crops, PNG, EXIF-rotated, text overlay,
rotations and a mirror. Unrelated pictures are stored too, so that precision means something.
The decision is the service's own: same pipeline (tests/families.py, server.imaging), same
threshold, distance = smallest over the query's variants when orientations=all.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

from server.imaging import ImageFacts, analyse, hamming
from tests.families import EDITS, edited, original

THRESHOLD = 10
LIMIT = 10**8


def facts(data: bytes) -> ImageFacts:
    return analyse(data, max_pixels=LIMIT, variants=True)


def main(families: int, unrelated: int) -> None:
    with ThreadPoolExecutor(2) as pool:
        stored = list(pool.map(lambda s: facts(original(s)), range(families + unrelated)))
        queries = {edit: list(pool.map(lambda s, e=edit: facts(edited(s, e)), range(families)))
                   for edit in EDITS}
    print(f"{families} families, {unrelated} unrelated stored images, threshold {THRESHOLD} "
          "bits (pHash)")
    print(f"{'edit':<14} {'recall none':>12} {'recall all':>11} {'precision none':>15} "
          f"{'precision all':>14}")
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # mode -> [true pos, false pos]
    for edit, edited_facts in queries.items():
        row = []
        for mode in ("none", "all"):
            hits = false = 0
            for seed, query in enumerate(edited_facts):
                hashes = [query.phash] + (list(query.variant_phashes) if mode == "all" else [])
                for index, image in enumerate(stored):
                    if min(hamming(h, image.phash) for h in hashes) <= THRESHOLD:
                        if index == seed:
                            hits += 1
                        else:
                            false += 1
            totals[mode][0] += hits
            totals[mode][1] += false
            row.append((hits / len(edited_facts), hits / (hits + false) if hits + false else 1.0))
        print(f"{edit:<14} {row[0][0]:>12.3f} {row[1][0]:>11.3f} {row[0][1]:>15.3f} "
              f"{row[1][1]:>14.3f}")
    for mode, (tp, fp) in totals.items():
        print(f"overall precision with orientations={mode}: {tp / (tp + fp):.3f} "
              f"({fp} false matches)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--families", type=int, default=40)
    parser.add_argument("--unrelated", type=int, default=200)
    args = parser.parse_args()
    main(args.families, args.unrelated)
