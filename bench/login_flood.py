"""Search by image while anonymous password guesses flood the server.

    python -m bench.login_flood [--guesses 60] [--searches 20]

A server process (bcrypt cost 12, the default) answers POST /search/image for a 1080p JPEG,
first alone, then while `--guesses` concurrent POST /keys with HTTP Basic for names that do
not exist (each costs a dummy bcrypt check) arrive. The per-address limit is lifted for the
run, so every guess reaches bcrypt: what is measured is the isolation of password work from
image work, not the rate limit (which would refuse most of them in a real flood).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import time

import aiohttp

from bench.common import percentile, running_server
from tests.images import encode, picture


def query_image() -> bytes:
    return encode(picture((1920, 1080), seed=11), "JPEG", quality=90)


async def search_latencies(session: aiohttp.ClientSession, url: str, image: bytes,
                           count: int) -> list[float]:
    times = []
    for _ in range(count):
        data = aiohttp.FormData()
        data.add_field("file", io.BytesIO(image), filename="q.jpg")
        started = time.perf_counter()
        async with session.post(url + "/search/image", data=data) as resp:
            assert resp.status == 200, await resp.text()
            await resp.read()
        times.append((time.perf_counter() - started) * 1000)
    return times


async def guess(session: aiohttp.ClientSession, url: str, i: int) -> int:
    token = base64.b64encode(f"nobody{i}:wrong password {i}".encode()).decode()
    async with session.post(url + "/keys", json={},
                            headers={"Authorization": f"Basic {token}"}) as resp:
        await resp.read()
        return resp.status


async def run(guesses: int, searches: int) -> None:
    image = query_image()
    with running_server({"PASSWORD_ATTEMPTS": "100000"}) as server:
        async with aiohttp.ClientSession() as session:
            await search_latencies(session, server.url, image, 3)  # warm up
            alone = await search_latencies(session, server.url, image, searches)
            started = time.perf_counter()
            flood = [asyncio.ensure_future(guess(session, server.url, i))
                     for i in range(guesses)]
            await asyncio.sleep(0.2)
            during = await search_latencies(session, server.url, image, searches)
            statuses = await asyncio.gather(*flood)
            flood_seconds = time.perf_counter() - started
    print(f"POST /search/image, 1080p JPEG, {searches} searches; {guesses} concurrent guesses "
          f"(bcrypt cost 12) took {flood_seconds:.1f} s, answers "
          f"{sorted(set(statuses))}")
    print(f"{'':<16} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for name, times in (("alone", alone), ("during flood", during)):
        print(f"{name:<16} {percentile(times, 50):>8.1f} {percentile(times, 95):>8.1f} "
              f"{max(times):>8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--guesses", type=int, default=60)
    parser.add_argument("--searches", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.guesses, args.searches))
