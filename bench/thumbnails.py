"""Thumbnail benchmark: ingest with and without thumbnails made at upload (same server
build, same files, rounds alternated in one run), thumbnail requests over HTTP, and bytes per
thumbnail for each kind of image.

    python -m bench.thumbnails [--per-kind 12] [--clients 8] [--rounds 3]

Starts ``python -m server serve`` twice on loopback ($DATABASE_URL when set, else the
embedded PostgreSQL), with UPLOAD_THUMBNAILS=false and =true.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import time
from collections import defaultdict

import aiohttp

from bench.common import percentile, running_server
from bench.ingest import KINDS, drive_uploads, photo_like, sign_up

Files = list[tuple[str, bytes]]


async def upload_all(url: str, key: str, files: Files) -> list[tuple[str, dict[str, str]]]:
    """(kind, Image JSON) of every file, uploaded one request each."""
    out = []
    async with aiohttp.ClientSession() as session:
        for kind, content in files:
            form = aiohttp.FormData()
            form.add_field("file", io.BytesIO(content), filename="bench.img",
                           content_type="application/octet-stream")
            async with session.post(f"{url}/images", data=form,
                                    headers={"Authorization": f"Bearer {key}"}) as resp:
                assert resp.status == 201, await resp.text()
                out.append((kind, (await resp.json())["images"][0]))
    return out


async def timed_gets(url: str, key: str, paths: list[str], clients: int,
                     headers: dict[str, str] | None = None) -> tuple[list[float], list[int]]:
    """Latencies and body sizes of GETting every path, `clients` at a time."""
    queue = list(paths)
    latencies: list[float] = []
    sizes: list[int] = []
    auth = {"Authorization": f"Bearer {key}", **(headers or {})}
    async with aiohttp.ClientSession() as session:

        async def client() -> None:
            while queue:
                path = queue.pop()
                start = time.perf_counter()
                async with session.get(url + path, headers=auth) as resp:
                    body = await resp.read()
                    assert resp.status == 200, (resp.status, body[:200])
                latencies.append(time.perf_counter() - start)
                sizes.append(len(body))

        await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, sizes


async def main(per_kind: int, clients: int, rounds: int) -> None:
    print(f"generating {per_kind} images per kind ...", flush=True)
    files: Files = [(kind, photo_like(fmt, size, seed))
                    for kind, (fmt, size) in KINDS.items() for seed in range(per_kind)]
    random.Random(0).shuffle(files)

    rates: dict[str, list[float]] = defaultdict(list)
    with running_server({"UPLOAD_THUMBNAILS": "false"}) as off, \
            running_server({"UPLOAD_THUMBNAILS": "true"}) as on:
        servers = {"without": off, "with": on}
        for server in servers.values():
            await drive_uploads(server.url, files[:4], clients)  # warm up
        for round_ in range(rounds):
            order = list(servers.items()) if round_ % 2 == 0 else list(servers.items())[::-1]
            for name, server in order:
                wall, _ = await drive_uploads(server.url, files, clients)
                rates[name].append(len(files) / wall)
        without, with_ = statistics.median(rates["without"]), statistics.median(rates["with"])
        print(f"\ningest, {len(files)} images x {rounds} rounds, {clients} clients (median "
              f"images/s): without thumbnails {without:.1f} "
              f"{[round(r, 1) for r in rates['without']]}, with {with_:.1f} "
              f"{[round(r, 1) for r in rates['with']]} -> {1 - with_ / without:+.1%} cost")

        async with aiohttp.ClientSession() as session:
            key = await sign_up(session, on.url)
        sample = [f for kind in KINDS for f in files if f[0] == kind][: per_kind * len(KINDS)]
        images = await upload_all(on.url, key, sample)

        print("\nbytes per thumbnail (WebP; mean over the kind):")
        small_bytes: dict[str, list[int]] = defaultdict(list)
        large_bytes: dict[str, list[int]] = defaultdict(list)
        first_large: list[float] = []
        for kind, image in images:
            lat, size = await timed_gets(on.url, key, [image["thumbnail_url"]], 1)
            small_bytes[kind] += size
            lat, size = await timed_gets(on.url, key, [image["preview_url"]], 1)
            large_bytes[kind] += size
            first_large += lat
        for kind in KINDS:
            originals = [len(c) for k, c in sample if k == kind]
            print(f"  {kind:<11} original {statistics.mean(originals) / 1024:8.0f} KiB; "
                  f"256 px {statistics.mean(small_bytes[kind]) / 1024:5.1f} KiB; "
                  f"1024 px {statistics.mean(large_bytes[kind]) / 1024:6.1f} KiB")

        small_paths = [image["thumbnail_url"] for _, image in images] * 10
        large_paths = [image["preview_url"] for _, image in images] * 5
        print(f"\nthumbnail requests over HTTP ({clients} clients, ms):")
        for label, paths, headers in (
            ("256 px WebP (stored)", small_paths, None),
            ("1024 px WebP (stored)", large_paths, None),
            ("256 px JPEG (from the WebP)", small_paths, {"Accept": "image/jpeg"}),
        ):
            lat, _ = await timed_gets(on.url, key, paths, clients, headers)
            print(f"  {label:<28} p50 {percentile(lat, 50) * 1000:6.1f}  "
                  f"p95 {percentile(lat, 95) * 1000:6.1f}  ({len(lat)} requests)")
        print(f"  {'1024 px, first request':<28} p50 {percentile(first_large, 50) * 1000:6.1f}  "
              f"p95 {percentile(first_large, 95) * 1000:6.1f}  (made from the original, one "
              f"at a time)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-kind", type=int, default=12)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.per_kind, args.clients, args.rounds))
