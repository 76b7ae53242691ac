"""Importing a folder of photos with the command-line client, against the server's ceilings.

    python -m bench.cli_import [--photos 1000] [--concurrency 4]

Writes N generated photo-like JPEGs of 1-3 MP into nested folders, starts ``python -m server
serve`` on loopback ($DATABASE_URL when set, else the embedded PostgreSQL), and times
``imagerepo upload --recursive`` (a subprocess, as a person runs it), then the same command again
with nothing left to do. In the same run: the hashing pipeline alone on the same files (the
ceiling bench/ingest.py reports) and 8 concurrent single-file HTTP clients on a fresh account
(bench/ingest.py's end-to-end figure), each on its own server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.common import running_server
from bench.ingest import drive_uploads, photo_like, sign_up, time_pipeline

SIZES = ((1280, 960), (1600, 1200), (2048, 1536))  # 1.2, 1.9 and 3.1 MP


def write_photos(root: Path, count: int) -> list[bytes]:
    photos = []
    for i in range(count):
        data = photo_like("JPEG", SIZES[i % len(SIZES)], seed=i, quality=88)
        folder = root / f"{2020 + i % 4}" / f"{i % 12 + 1:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"IMG_{i:05d}.jpg").write_bytes(data)
        photos.append(data)
    return photos


def import_once(url: str, key: str, root: Path, concurrency: int) -> tuple[float, str]:
    env = {**os.environ, "IMAGEREPO_URL": url, "IMAGEREPO_KEY": key}
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "imagerepo", "upload", "--recursive", "--concurrency",
         str(concurrency), str(root)], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, result.stdout.strip()


async def new_key(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        return await sign_up(session, url)


async def main(count: int, concurrency: int, workers: int) -> None:
    with tempfile.TemporaryDirectory(prefix="imagerepo-photos-") as tmp:
        root = Path(tmp)
        print(f"writing {count} photos of 1-3 MP ...", flush=True)
        photos = write_photos(root, count)
        total_mb = sum(map(len, photos)) / 1e6
        print(f"{count} files, {total_mb:.0f} MB; server with {workers} worker(s)")

        env = {"WORKERS": str(workers)}
        with running_server(env) as server:
            key = await new_key(server.url)
            wall, summary = import_once(server.url, key, root, concurrency)
            print(f"\nimagerepo upload: {wall:.1f} s, {count / wall:.1f} images/s, "
                  f"{total_mb / wall:.1f} MB/s\n  {summary.splitlines()[0]}")
            again, summary = import_once(server.url, key, root, concurrency)
            print(f"the same command again: {again:.2f} s\n  {summary.splitlines()[0]}")

        ceiling = time_pipeline([("photo", p) for p in photos], os.cpu_count() or 2)
        with running_server(env) as server:
            http_wall, _ = await drive_uploads(server.url, [("photo", p) for p in photos], 8)
        http_rate = count / http_wall
        print(f"\nhashing pipeline alone (the ceiling): {ceiling:.1f} images/s -> the CLI "
              f"reaches {count / wall / ceiling:.0%} of it")
        print(f"8 HTTP clients, one file per request: {http_rate:.1f} images/s -> the CLI "
              f"reaches {count / wall / http_rate:.0%} of it")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--photos", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    args = parser.parse_args()
    asyncio.run(main(args.photos, args.concurrency, args.workers))
