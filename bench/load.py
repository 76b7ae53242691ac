"""Load: 50 concurrent clients for 60 s against a running server on loopback, mixing
uploads, text searches, image searches, metadata reads and downloads.

    python -m bench.load [--clients 50] [--seconds 60] [--workers 1 2] [--mix full|reads]
                         [--metrics on off] [--rounds 1]

Starts ``python -m server serve --workers N`` for each N in turn (local storage; $DATABASE_URL
when set, else embedded), drives it from this process (the load generator is a process of its
own), and reports requests/s and p50/p95 per kind, the number of 5xx answers (must be 0), the
peak RSS of one worker, and the ratio of requests/s to the first N's.

``--metrics on off`` runs each N with metrics recorded (and /metrics scraped every
SCRAPE_EVERY seconds, as Prometheus would) and with METRICS=off, in that order, `--rounds`
times (the order alternating from round to round, so that a drift of the machine does not
favour either): what recording the metrics costs.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable

import aiohttp

from bench.common import percentile, running_server
from tests.images import encode, picture

WORDS = ["sunset", "harbour", "city", "night", "garden", "portrait", "mountain", "river",
         "market", "street", "beach", "forest", "snow", "bridge", "tower", "festival"]
MIXES = {
    "full": [("upload", 10), ("text search", 25), ("image search", 15), ("metadata", 30),
             ("download", 20)],
    # No image work: what the event loops do (JSON, SQL, streaming), which more processes
    # spread over the cores; image work already runs on every core in one process.
    "reads": [("text search", 35), ("metadata", 40), ("download", 25)],
    # The cheapest answers (an image's row, a page of the list): where a fixed cost per
    # request, such as recording metrics, weighs the most.
    "metadata": [("metadata", 100)],
}
MIX = list(MIXES["full"])  # the mix of this run (--mix)


def image_bytes(seed: int) -> bytes:
    return encode(picture((800, 600), seed), "JPEG", quality=85)


class Load:
    def __init__(self, url: str, session: aiohttp.ClientSession, key: str) -> None:
        self.url, self.session, self.key = url, session, key
        self.ids: list[str] = []
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.server_errors = 0
        self.other_errors = 0
        self.queries = [image_bytes(10_000 + i) for i in range(8)]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def timed(self, kind: str, call: Callable[[], Awaitable[int]]) -> None:
        start = time.perf_counter()
        try:
            status = await call()
        except aiohttp.ClientError:
            self.other_errors += 1
            return
        self.latency[kind].append(time.perf_counter() - start)
        if status >= 500:
            self.server_errors += 1

    async def upload(self) -> int:
        form = aiohttp.FormData()
        seed = random.randrange(10**6)
        form.add_field("file", io.BytesIO(image_bytes(seed)), filename=f"{seed}.jpg")
        form.add_field("title", " ".join(random.sample(WORDS, 3)))
        form.add_field("tags", ",".join(random.sample(WORDS, 2)))
        form.add_field("visibility", "public")
        async with self.session.post(f"{self.url}/images", data=form,
                                     headers=self.headers()) as resp:
            body = await resp.json()
            if resp.status == 201:
                self.ids.append(body["images"][0]["id"])
            return resp.status

    async def text_search(self) -> int:
        q = " ".join(random.sample(WORDS, random.choice([1, 2])))
        async with self.session.get(f"{self.url}/search", params={"q": q}) as resp:
            await resp.read()
            return resp.status

    async def image_search(self) -> int:
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(random.choice(self.queries)), filename="q.jpg")
        async with self.session.post(f"{self.url}/search/image", data=form) as resp:
            await resp.read()
            return resp.status

    async def metadata(self) -> int:
        if random.random() < 0.5:
            url = f"{self.url}/images/{random.choice(self.ids)}"
        else:
            url = f"{self.url}/images"
        async with self.session.get(url, headers=self.headers()) as resp:
            await resp.read()
            return resp.status

    async def download(self) -> int:
        async with self.session.get(f"{self.url}/images/{random.choice(self.ids)}/file") as resp:
            await resp.read()
            return resp.status

    async def client(self, deadline: float) -> None:
        kinds = [k for k, _ in MIX]
        weights = [w for _, w in MIX]
        calls = {"upload": self.upload, "text search": self.text_search,
                 "image search": self.image_search, "metadata": self.metadata,
                 "download": self.download}
        while time.monotonic() < deadline:
            kind = random.choices(kinds, weights)[0]  # (kinds of the chosen mix)
            await self.timed(kind, calls[kind])


METRICS_TOKEN = "bench-load-metrics-token"
CPU_PER_REQUEST: list[float] = []  # the server's CPU seconds per request, run by run
SCRAPE_EVERY = 5.0


async def main(clients: int, seconds: float, workers: list[int],
               metrics: list[str] | None = None, rounds: int = 1) -> None:
    if metrics:
        await compare_metrics(clients, seconds, workers, metrics, rounds)
        return
    rates = [await run_once(clients, seconds, n) for n in workers]
    if len(rates) > 1:
        print("requests/s by workers: " + ", ".join(
            f"{n}: {rate:.1f} ({rate / rates[0]:.2f}x)" for n, rate in zip(workers, rates,
                                                                          strict=True)))


async def compare_metrics(clients: int, seconds: float, workers: list[int],
                          settings: list[str], rounds: int) -> None:
    rates: dict[tuple[int, str], list[float]] = defaultdict(list)
    cpu: dict[tuple[int, str], list[float]] = defaultdict(list)
    for n in workers:
        for round_ in range(rounds):
            order = settings if round_ % 2 == 0 else settings[::-1]
            for setting in order:
                print(f"\n[METRICS={setting}, round {round_ + 1}]", end="")
                rates[n, setting].append(await run_once(clients, seconds, n, setting))
                cpu[n, setting].append(CPU_PER_REQUEST[-1])
    for n in workers:
        mean_cpu = {s: 1000 * sum(cpu[n, s]) / len(cpu[n, s]) for s in settings}
        line = ", ".join(f"{s} {ms:.2f}" for s, ms in mean_cpu.items())
        if "on" in mean_cpu and "off" in mean_cpu:
            line += f"; on/off {mean_cpu['on'] / mean_cpu['off']:.3f}"
        print(f"{n} worker(s), mean server CPU ms per request: {line}")
        if "on" in settings and "off" in settings:
            # Each round's two runs are adjacent in time: their ratio is the least disturbed
            # by the machine's drift; the median of the rounds' ratios is the figure.
            pairs = sorted(on / off for on, off in zip(rates[n, "on"], rates[n, "off"],
                                                        strict=True))
            cpu_pairs = sorted(on / off for on, off in zip(cpu[n, "on"], cpu[n, "off"],
                                                           strict=True))
            print(f"{n} worker(s), rounds' on/off: requests/s "
                  + ", ".join(f"{r:.3f}" for r in pairs)
                  + f" (median {statistics.median(pairs):.3f}); server CPU per request "
                  + ", ".join(f"{r:.3f}" for r in cpu_pairs)
                  + f" (median {statistics.median(cpu_pairs):.3f})")
        summary = {s: sum(rates[n, s]) / len(rates[n, s]) for s in settings}
        runs = "; ".join(f"{s}: " + ", ".join(f"{r:.1f}" for r in rates[n, s])
                         for s in settings)
        line = ", ".join(f"{s} {rate:.1f}" for s, rate in summary.items())
        if "on" in summary and "off" in summary:
            line += f"; on/off {summary['on'] / summary['off']:.3f}"
        print(f"{n} worker(s), mean requests/s: {line} (runs: {runs})")


async def scrape_forever(session: aiohttp.ClientSession, url: str) -> None:
    while True:
        await asyncio.sleep(SCRAPE_EVERY)
        async with session.get(f"{url}/metrics",
                               headers={"Authorization": f"Bearer {METRICS_TOKEN}"}) as resp:
            await resp.read()
            assert resp.status == 200, resp.status


async def run_once(clients: int, seconds: float, workers: int,
                   metrics: str | None = None) -> float:
    random.seed(1)
    env = {"WORKERS": str(workers)}
    if metrics is not None:
        env.update(METRICS=metrics, METRICS_TOKEN=METRICS_TOKEN)
    with running_server(env) as server:
        connector = aiohttp.TCPConnector(limit=clients)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            async with session.post(f"{server.url}/users", json={
                    "username": f"loader{uuid.uuid4().hex[:12]}",
                    "password": "load test password"}) as resp:
                key = (await resp.json())["api_key"]
            load = Load(server.url, session, key)
            for _ in range(20):  # something to read from the start
                await load.upload()
            load.latency.clear()
            server.reset_peak()
            cpu_before = server.cpu_seconds()
            started = time.monotonic()
            scraper = asyncio.create_task(scrape_forever(session, server.url)) \
                if metrics == "on" else None
            await asyncio.gather(*(load.client(started + seconds) for _ in range(clients)))
            elapsed = time.monotonic() - started
            cpu = server.cpu_seconds() - cpu_before
            if scraper is not None:
                scraper.cancel()
        peak = server.peak_rss_kib() / 1024
    total = sum(len(v) for v in load.latency.values())
    print(f"\n{workers} worker(s), {clients} clients for {elapsed:.0f} s on loopback: "
          f"{total / elapsed:.1f} requests/s, 5xx: {load.server_errors}, connection errors: "
          f"{load.other_errors}, peak RSS of one worker {peak:.0f} MiB, server CPU "
          f"{cpu * 1000 / max(total, 1):.2f} ms a request")
    CPU_PER_REQUEST.append(cpu / max(total, 1))
    print(f"{'kind':<14} {'requests':>9} {'req/s':>7} {'p50 ms':>8} {'p95 ms':>8}")
    for kind, _ in MIX:
        values = load.latency[kind]
        print(f"{kind:<14} {len(values):>9} {len(values) / elapsed:>7.1f} "
              f"{percentile(values, 50) * 1000:>8.0f} {percentile(values, 95) * 1000:>8.0f}")
    return total / elapsed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="server processes, one run per value")
    parser.add_argument("--mix", choices=sorted(MIXES), default="full")
    parser.add_argument("--metrics", nargs="+", choices=["on", "off"],
                        help="compare runs with metrics recorded (and scraped) and without")
    parser.add_argument("--rounds", type=int, default=1, help="with --metrics: repeats")
    args = parser.parse_args()
    MIX[:] = MIXES[args.mix]
    asyncio.run(main(args.clients, args.seconds, args.workers, args.metrics, args.rounds))
