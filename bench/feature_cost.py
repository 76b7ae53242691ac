"""What local features add to the CPU of one upload and of one query (issue 22's budgets:
<= 15 ms more per 1080p upload, <= 15 ms a query), measured on the analysis itself.

    nice -n 5 python -m bench.feature_cost [--repeat 5]

1080p JPEGs (q90) made from real photographs (the copies' photos, scaled to 1920x1080 and
as copies inside 1920x1080 screenshots/pages), each analysed as an upload with and without
local features, and as a query (match=robust) with and without them. CPU time of this
process (`time.process_time`), one thread, median over photos x repeats.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from PIL import Image

from server.imaging import analyse
from tests import copy_edits as ce

MAX_PIXELS = 10**8


def ms(data: bytes, repeat: int, *, query: bool = False, thumbnail: bool = False,
       features: bool = True) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        analyse(data, max_pixels=MAX_PIXELS, query=query, thumbnail=thumbnail,
                features=features)
        times.append((time.process_time() - started) * 1000)
    return min(times)


def jpeg_1080p(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.convert("RGB").resize((1920, 1080), Image.Resampling.BICUBIC).save(out, "JPEG",
                                                                            quality=90)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    photos = [jpeg_1080p(ce.photo(name)) for name in ce.PHOTOS]
    screens = [jpeg_1080p(Image.open(io.BytesIO(ce.copy("screenshot", name, 0).data)))
               for name in ce.PHOTOS]
    rows = {
        "upload, without features": [ms(d, args.repeat, thumbnail=True, features=False)
                                     for d in photos],
        "upload, with features": [ms(d, args.repeat, thumbnail=True) for d in photos],
        "query, without features": [ms(d, args.repeat, query=True, features=False)
                                    for d in photos + screens],
        "query, with features": [ms(d, args.repeat, query=True) for d in photos + screens],
    }
    print("| 1080p JPEG analysed as | CPU ms p50 | p95 |")
    print("|---|---|---|")
    for label, values in rows.items():
        values.sort()
        p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
        print(f"| {label} | {statistics.median(values):.1f} | {p95:.1f} |")


if __name__ == "__main__":
    main()
