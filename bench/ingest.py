"""Ingest benchmark: uploads over HTTP, beside the hashing pipeline alone (the ceiling) and
the naive pipeline (each imagehash function on the full image; the floor).

    python -m bench.ingest [--per-kind 12] [--clients 8]

Starts ``python -m server serve`` on loopback with local storage ($DATABASE_URL when set,
else the embedded PostgreSQL), drives it from this process, and reads its memory from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image

from bench.common import ServerProcess, percentile, running_server
from server.imaging import analyse, naive_hashes
from tests.images import make_image

MIB = 1024 * 1024
KINDS: dict[str, tuple[str, tuple[int, int]]] = {
    "12MP JPEG": ("JPEG", (4000, 3000)),
    "1080p JPEG": ("JPEG", (1920, 1080)),
    "1080p PNG": ("PNG", (1920, 1080)),
    "small WebP": ("WEBP", (480, 360)),
}
Files = list[tuple[str, bytes]]


def photo_pixels(size: tuple[int, int], seed: int, noise: float = 6.0) -> Image.Image:
    """A textured RGB picture plus sensor-like noise, so that files have realistic sizes."""
    base = Image.open(io.BytesIO(make_image("PNG", (size[0] // 4, size[1] // 4), seed=seed)))
    pixels = np.asarray(base.convert("RGB").resize(size, Image.Resampling.BICUBIC), np.float32)
    rng = np.random.default_rng(seed)
    pixels += rng.normal(0, noise, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def photo_like(fmt: str, size: tuple[int, int], seed: int, noise: float = 6.0,
               quality: int = 90) -> bytes:
    """`photo_pixels` saved as `fmt`."""
    image = photo_pixels(size, seed, noise)
    out = io.BytesIO()
    options = {"quality": quality} if fmt in ("JPEG", "WEBP") else {"compress_level": 6}
    image.save(out, fmt, **options)
    return out.getvalue()


async def sign_up(session: aiohttp.ClientSession, url: str) -> str:
    name = f"bench{random.randrange(10**9)}"
    async with session.post(f"{url}/users",
                            json={"username": name, "password": "benchmark password"}) as resp:
        assert resp.status == 201, await resp.text()
        return str((await resp.json())["api_key"])


async def post_image(session: aiohttp.ClientSession, url: str, key: str, content: bytes) -> None:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(content), filename="bench.img",
                   content_type="application/octet-stream")
    async with session.post(f"{url}/images", data=form,
                            headers={"Authorization": f"Bearer {key}"}) as resp:
        body = await resp.read()
        assert resp.status == 201, body[:300]


async def drive_uploads(
    url: str, files: Files, clients: int
) -> tuple[float, dict[str, list[float]]]:
    """Wall time and per-kind latencies of uploading every file with N concurrent clients."""
    latencies: dict[str, list[float]] = defaultdict(list)
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in files:
        queue.put_nowait(item)
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        key = await sign_up(session, url)

        async def client() -> None:
            while not queue.empty():
                kind, content = queue.get_nowait()
                start = time.perf_counter()
                await post_image(session, url, key, content)
                latencies[kind].append(time.perf_counter() - start)

        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - start, latencies


def time_pipeline(files: Files, workers: int, naive: bool = False) -> float:
    """Images per second of the hashing alone, from files on disk, in a thread pool."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (_, content) in enumerate(files):
            path = Path(tmp, f"{i}.img")
            path.write_bytes(content)
            paths.append(path)

        def work(path: Path) -> object:
            return naive_hashes(path) if naive else analyse(path, max_pixels=10**9)

        with ThreadPoolExecutor(workers) as pool:
            start = time.perf_counter()
            list(pool.map(work, paths))
            return len(paths) / (time.perf_counter() - start)


async def rss_rise(server: ServerProcess, files: Sequence[bytes]) -> float:
    """MiB by which uploading these files at once raises the server's peak RSS."""
    server.reset_peak()
    before = server.rss_kib()
    await drive_uploads(server.url, [("x", f) for f in files], clients=len(files))
    return (server.peak_rss_kib() - before) / 1024


def report_row(*cells: object) -> None:
    print("  ".join(f"{c:>14}" if i else f"{c:<14}" for i, c in enumerate(cells)))


async def main(per_kind: int, clients: int) -> None:
    print(f"generating {per_kind} images per kind ...", flush=True)
    files: Files = [(kind, photo_like(fmt, size, seed))
                    for kind, (fmt, size) in KINDS.items() for seed in range(per_kind)]
    random.Random(0).shuffle(files)
    total_mb = sum(len(c) for _, c in files) / MIB
    workers = os.cpu_count() or 2

    # Memory first, each on a fresh server warmed up with one small upload, so that memory
    # kept by earlier work cannot hide a rise.
    warm_up = [("small WebP", photo_like("WEBP", (480, 360), seed=1))]
    huge = photo_like("JPEG", (7400, 5400), seed=99, noise=40.0, quality=97)
    with running_server() as server:
        await drive_uploads(server.url, warm_up, 1)
        rise = await rss_rise(server, [huge])
        print(f"one {len(huge) / MIB:.0f} MB JPEG (40 MP): peak RSS rise {rise:.0f} MiB")
    pngs = [photo_like("PNG", (4000, 3000), seed=200 + i) for i in range(8)]
    with running_server() as server:
        await drive_uploads(server.url, warm_up, 1)
        rise = await rss_rise(server, pngs)
        print(f"8 concurrent 12 MP PNGs ({sum(map(len, pngs)) / MIB:.0f} MB): "
              f"peak RSS rise {rise:.0f} MiB")

    with running_server() as server:
        await drive_uploads(server.url, files[:4], clients)  # warm up
        wall, latencies = await drive_uploads(server.url, files, clients)
        print(f"\nend to end over HTTP: {len(files)} images, {total_mb:.0f} MB, "
              f"{clients} clients, server peak RSS {server.peak_rss_kib() / 1024:.0f} MiB")
        report_row("kind", "mean size MB", "p50 ms", "p95 ms", "hash-only img/s")
        for kind in KINDS:
            sizes = [len(c) for k, c in files if k == kind]
            ceiling = time_pipeline([f for f in files if f[0] == kind], workers)
            report_row(kind, f"{sum(sizes) / len(sizes) / MIB:.2f}",
                       f"{percentile(latencies[kind], 50) * 1000:.0f}",
                       f"{percentile(latencies[kind], 95) * 1000:.0f}", f"{ceiling:.1f}")
        ceiling_all = time_pipeline(files, workers)
        print(f"throughput: {len(files) / wall:.1f} images/s, {total_mb / wall:.1f} MB/s; "
              f"hashing alone on the same mix: {ceiling_all:.1f} images/s "
              f"(end to end = {len(files) / wall / ceiling_all:.0%} of the ceiling)")

        big_jpegs = [c for k, c in files if k == "12MP JPEG"]
        e2e_12mp = await drive_uploads(server.url, [("12MP JPEG", c) for c in big_jpegs], clients)
        e2e_rate = len(big_jpegs) / e2e_12mp[0]
        naive = time_pipeline([("12MP JPEG", c) for c in big_jpegs[:4]], workers, naive=True)
        print(f"12MP JPEG only: end to end {e2e_rate:.1f} images/s; naive pipeline "
              f"{naive:.2f} images/s -> {e2e_rate / naive:.0f}x")



if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-kind", type=int, default=12)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.per_kind, args.clients))
