"""Downloads through the app (DOWNLOADS=proxy) against redirects to presigned S3 URLs
(DOWNLOADS=redirect): the app's requests/s for GET /images/{id}/file.

    python -m bench.downloads [--clients 16] [--seconds 20] [--images 50]

Starts moto's S3 server in a process of its own on loopback, then ``python -m server serve``
on it once per mode ($DATABASE_URL when set, else the embedded PostgreSQL), uploads
photo-like 1080p JPEGs, and has N clients GET them for the given time. In redirect mode the
clients take the 302 and stop there: what is measured is the app's work; the bytes would come
from S3 (or a CDN in front of it), which moto on the same two cores does not stand in for.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import subprocess
import sys
import time
import urllib.request
import uuid

import aiohttp

from bench.common import free_port, percentile, running_server
from bench.ingest import photo_like, sign_up
from tests.s3server import dummy_env


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                "-p", str(port)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=1)
            return process, endpoint
        except OSError as exc:
            if getattr(exc, "code", None):  # any HTTP answer: it is up
                return process, endpoint
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


async def run_mode(mode: str, env: dict[str, str], photos: list[bytes], clients: int,
                   seconds: float) -> tuple[float, list[float], int]:
    with running_server({**env, "DOWNLOADS": mode}) as server:
        async with aiohttp.ClientSession() as session:
            key = await sign_up(session, server.url)
            ids = []
            for data in photos:
                form = aiohttp.FormData()
                form.add_field("file", io.BytesIO(data), filename="photo.jpg")
                form.add_field("visibility", "public")
                async with session.post(f"{server.url}/images", data=form,
                                        headers={"Authorization": f"Bearer {key}"}) as resp:
                    assert resp.status == 201, await resp.text()
                    ids.append((await resp.json())["images"][0]["id"])
            latencies: list[float] = []
            errors = 0

            async def client(deadline: float) -> None:
                nonlocal errors
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    async with session.get(f"{server.url}/images/{random.choice(ids)}/file",
                                           allow_redirects=False) as resp:
                        await resp.read()
                        if resp.status not in (200, 302):
                            errors += 1
                    latencies.append(time.perf_counter() - started)

            started = time.monotonic()
            await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
            return len(latencies) / (time.monotonic() - started), latencies, errors


async def main(clients: int, seconds: float, images: int) -> None:
    photos = [photo_like("JPEG", (1920, 1080), seed=i) for i in range(images)]
    mean = sum(map(len, photos)) / len(photos) / 1e6
    moto, endpoint = start_moto()
    try:
        env = {**dummy_env(endpoint), "STORAGE_URL": f"s3://bench-{uuid.uuid4().hex[:8]}"}
        print(f"{images} public 1080p JPEGs of {mean:.2f} MB on moto's S3; {clients} clients "
              f"for {seconds:g} s per mode (anonymous GET /images/{{id}}/file)")
        for mode in ("proxy", "redirect"):
            rate, latencies, errors = await run_mode(mode, env, photos, clients, seconds)
            print(f"  {mode:<8} {rate:7.1f} requests/s  p50 {percentile(latencies, 50) * 1000:6.1f}"
                  f" ms  p95 {percentile(latencies, 95) * 1000:6.1f} ms  errors {errors}"
                  + (f"  ({rate * mean:.0f} MB/s through the app)" if mode == "proxy" else ""))
    finally:
        moto.terminate()
        moto.wait(10)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--images", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.clients, args.seconds, args.images))
