"""What recording the metrics costs one request, measured directly (the load bench's noise
between runs, ±10%, hides a cost this small).

    python -m bench.metrics_cost [--requests 20000]

Replays, in a loop, the recordings one request makes: a metadata read (the in-flight gauge,
the request's counter, histogram and bytes, one pool connection borrowed and returned), an
image search (the same, plus three CPU-pool jobs, two stage timings and a candidates count)
and an upload (plus a storage put and an image stored). Once with the values in memory (one
process) and once in multiprocess mode (files, as under `serve --workers N`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

SCRIPT = """
import time, timeit
from server.observability import metrics

def borrow():
    metrics.db_waiting(1); metrics.db_waiting(-1); metrics.db_acquired(0.0001)
    metrics.db_pool(3, 1, 10)
    metrics.db_pool(3, 0, 10)

def request(route, method, status):
    metrics.request_started()
    borrow()
    metrics.request_finished(route, method, status, 0.012, 0, 4000)
    metrics.request_ended()

def metadata():
    request("/images/{{id}}", "GET", 200)

def image_search():
    for _ in range(3):
        metrics.CpuJob(lambda: None)()
    with metrics.image_search_stage("analysis"):
        pass
    with metrics.image_search_stage("signal_candidates"):
        pass
    metrics.image_search_candidates("signals", 40)
    request("/search/image", "POST", 200)

def upload():
    metrics.CpuJob(lambda: None)()
    metrics.storage_operation("put", 0.003, False)
    metrics.images_stored(1)
    request("/images", "POST", 201)

n = {n}
for name, fn in (("metadata read", metadata), ("image search", image_search),
                 ("upload", upload)):
    fn()
    seconds = min(timeit.repeat(fn, number=n, repeat=3)) / n
    print(f"  {{name:<14}} {{seconds * 1e6:6.1f}} us")
"""


def main(requests: int) -> None:
    for mode in ("in memory (one process)", "multiprocess (serve --workers N)"):
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory() as folder:
            if mode.startswith("multiprocess"):
                env["PROMETHEUS_MULTIPROC_DIR"] = folder
            print(f"{mode}: the recordings of one request", flush=True)
            subprocess.run([sys.executable, "-c", SCRIPT.format(n=requests)], env=env,
                           check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    main(parser.parse_args().requests)
