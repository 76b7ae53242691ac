"""Ingest of the newer upload formats (issue 24), beside 12 MP JPEG: HEIC, AVIF, JPEG XL and
camera RAW (DNG) over HTTP and against the analysis alone (the ceiling); the server's peak RSS
rise for one huge upload of each; and, in fresh processes, what a RAW's embedded JPEG preview
saves against the half-size demosaic and what a HEIC's embedded thumbnail would save against
the full decode.

    python -m bench.ingest_formats [--per-kind 8] [--clients 8] [--rounds 3] [--cache DIR]

Shares bench/ingest.py's pictures, uploads and measures. The DNGs are written with pidng (a
benchmark-only tool, not a project dependency). Encoding the inputs takes ~8 minutes on 2
cores the first time (x265 at quality 80 the slowest, ~15 s a 12 MP picture): they are kept
in --cache and reused, and a run then takes 2-4 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import multiprocessing
import os
import statistics
import struct
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.common import percentile, running_server
from bench.ingest import (
    MIB,
    drive_uploads,
    photo_like,
    photo_pixels,
    report_row,
    rss_rise,
    time_pipeline,
)
from server.imaging.features import STORED_SIDE  # the long side the analysis decodes to

# Kind -> (format, size) of the rows over HTTP; the JPEG row is bench/ingest.py's.
KINDS: dict[str, tuple[str, tuple[int, int]]] = {
    "12MP JPEG": ("JPEG", (4000, 3000)),
    "12MP HEIC": ("HEIF", (4000, 3000)),
    "12MP AVIF": ("AVIF", (4000, 3000)),
    "12MP JPEG XL": ("JXL", (4000, 3000)),
    "24MP DNG": ("DNG", (6000, 4000)),
}
HUGE = (8000, 6000)  # 48 MP, the memory rows
# HEIC as an iPhone writes it: a grid of 512 px tiles and a 320 px thumbnail. AVIF at
# Pillow's default speed (6); JPEG XL at the plugin's default effort (7).
SAVE_OPTIONS: dict[str, dict[str, object]] = {
    "JPEG": {"quality": 90},
    "HEIF": {"quality": 80, "tile_size": 512, "thumbnails": [320]},
    "AVIF": {"quality": 75},
    "JXL": {"quality": 85},
}
# Bump when the way inputs are made changes: cached files are then made again.
INPUTS_VERSION = 1
CACHE = Path(tempfile.gettempdir(), "imagerepo-bench-formats")


# --- inputs ------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str) -> bytes:
    """`image` as `fmt`; DNG: a Bayer mosaic of it, without a preview."""
    if fmt == "DNG":
        return dng(mosaic(image))
    out = io.BytesIO()
    image.save(out, fmt, **SAVE_OPTIONS[fmt])
    return out.getvalue()


def mosaic(image: Image.Image) -> np.ndarray:
    """What a sensor behind an RGGB Bayer filter would record: linear 12-bit values."""
    from tests.data.make_dng import bayer

    return bayer((np.asarray(image, np.float32) / 255.0) ** 2.2 * 4095.0)


def dng(raw: np.ndarray) -> bytes:
    """A DNG of a 12-bit RGGB mosaic written by pidng (tests/data/make_dng.py), no preview."""
    from tests.data.make_dng import dng as written_by_pidng

    return written_by_pidng(raw)


# TIFF field types -> bytes a value; tags whose (inline) value is a file offset.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_OFFSET_TAGS = {273, 324, 330, 34665, 34853}


def with_preview(data: bytes, jpeg: bytes, size: tuple[int, int]) -> bytes:
    """A little-endian DNG with `jpeg` added as its preview, the way cameras and Adobe's
    converter store one: a SubIFD of IFD0 (NewSubFileType 1, JPEG-compressed YCbCr, 8 bits).

    IFD0 stays at offset 8, where a reader sniffing a file's first bytes looks for the
    DNGVersion tag: it grows by one entry and everything after it moves by 12 bytes."""
    (ifd0,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd0)
    assert data[:4] == b"II*\x00" and ifd0 == 8, "expects pidng's layout"
    shift = 12
    entries = []
    for n in range(count):
        tag, kind, length, value = struct.unpack_from("<HHII", data, ifd0 + 2 + 12 * n)
        if _TYPE_SIZE[kind] * length > 4 or tag in _OFFSET_TAGS:
            assert tag not in _OFFSET_TAGS or length == 1, "one strip or tile"
            value += shift
        entries.append((tag, kind, length, value))
    (next_ifd,) = struct.unpack_from("<I", data, ifd0 + 2 + 12 * count)
    assert next_ifd == 0
    rest = data[ifd0 + 2 + 12 * count + 4:]
    body_end = 8 + 2 + 12 * (count + 1) + 4 + len(rest)
    jpeg_at = body_end + (-body_end % 4)
    bps_at = jpeg_at + len(jpeg) + (-len(jpeg) % 4)
    preview_at = bps_at + 8
    entries.append((330, 4, 1, preview_at))  # SubIFDs
    entries.sort()
    preview = [(254, 4, 1, 1), (256, 4, 1, size[0]), (257, 4, 1, size[1]),
               (258, 3, 3, bps_at), (259, 3, 1, 7), (262, 3, 1, 6), (273, 4, 1, jpeg_at),
               (277, 3, 1, 3), (278, 4, 1, size[1]), (279, 4, 1, len(jpeg)), (284, 3, 1, 1),
               (50970, 3, 1, 2)]  # PreviewColorSpace: sRGB

    def directory(fields: list[tuple[int, int, int, int]]) -> bytes:
        return struct.pack("<H", len(fields)) + b"".join(
            struct.pack("<HHI", tag, kind, length)
            + (struct.pack("<HH", value, 0) if kind == 3 and length == 1
               else struct.pack("<I", value))
            for tag, kind, length, value in fields) + struct.pack("<I", 0)

    out = bytearray(data[:8]) + directory(entries) + rest
    out += bytes(jpeg_at - len(out)) + jpeg
    out += bytes(bps_at - len(out)) + struct.pack("<4H", 8, 8, 8, 0)
    return bytes(out + directory(preview))


def _cache_path(cache: Path, *key: object) -> Path:
    digest = hashlib.sha1(repr((INPUTS_VERSION, SAVE_OPTIONS, key)).encode()).hexdigest()[:16]
    return cache / f"{key[0]}-{digest}"


def _make_inputs(cache: Path, size: tuple[int, int], seed: int, fmts: tuple[str, ...],
                 noise: float) -> None:
    """Runs in a worker process: one picture encoded in each of `fmts`, into the cache."""
    image: Image.Image | None = None
    for fmt in fmts:
        path = _cache_path(cache, fmt, size, seed, noise)
        if path.exists():
            continue
        if image is None:
            image = photo_pixels(size, seed, noise)
        if fmt == "DNG+preview":  # the same mosaic with a full-size camera JPEG preview
            jpeg = io.BytesIO()
            image.save(jpeg, "JPEG", quality=90)
            data = with_preview(encode(image, "DNG"), jpeg.getvalue(), size)
        elif fmt == "JPEG q97":  # bench/ingest.py's 40 MP JPEG
            out = io.BytesIO()
            image.save(out, "JPEG", quality=97)
            data = out.getvalue()
        else:
            data = encode(image, fmt)
        part = path.with_suffix(".part")
        part.write_bytes(data)
        part.replace(path)


def make_inputs(cache: Path,
                wanted: list[tuple[tuple[int, int], int, tuple[str, ...], float]]) -> None:
    """Make the missing inputs (two processes: x265 and the others barely use a second
    core)."""
    cache.mkdir(parents=True, exist_ok=True)
    missing = [w for w in wanted
               if not all(_cache_path(cache, f, w[0], w[1], w[3]).exists() for f in w[2])]
    if missing:
        print(f"encoding {len(missing)} pictures into {cache} (once) ...", flush=True)
        start = time.perf_counter()
        # Largest first, so that the 48 MP encodes do not end the run alone.
        missing.sort(key=lambda w: -w[0][0] * w[0][1] * len(w[2]))
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            for done in [pool.submit(_make_inputs, cache, *w) for w in missing]:
                done.result()
        print(f"  {time.perf_counter() - start:.0f} s", flush=True)


# --- costs in a fresh process ------------------------------------------------------------


def _own_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _operation(op: str) -> Callable[[str], object]:
    """analyse: the whole analysis of an upload; working: its decode alone (opened as the
    analysis opens it, a RAW's picture taken, reduced to the working images); privacy: the
    copy without location (the upload's other step over the whole file); decode: a plain
    Pillow decode; heic-thumbnail: the decode of a HEIC's smallest thumbnail."""
    from server.imaging import analyse, sniff_format
    from server.imaging.decoding import working_image
    from server.imaging.opening import open_image
    from server.imaging.privacy import strip_location
    from server.imaging.sniff import SNIFF_BYTES

    def privacy(path: str) -> object:
        with open(path, "rb") as fp:
            fmt = sniff_format(fp.read(SNIFF_BYTES))
        assert fmt is not None
        copy = Path(path + ".nogps")
        try:
            return strip_location(Path(path), copy, fmt)
        finally:
            copy.unlink(missing_ok=True)

    def working(path: str) -> object:
        with open(path, "rb") as fp:
            fmt = sniff_format(fp.read(SNIFF_BYTES))
            assert fmt is not None
            fp.seek(0)
            with open_image(fp, fmt) as opened:
                return working_image(opened.image(STORED_SIDE), STORED_SIDE,
                                     opened.orientation)

    def decode(path: str, smallest: bool = False) -> object:
        with Image.open(path) as im:
            if smallest:  # pillow-heif's draft picks the smallest embedded thumbnail
                im.draft("RGB", (1, 1))
                assert max(im.size) < 1000, im.size
            return im.load()

    if op in ("decode", "heic-thumbnail"):
        import pillow_heif

        pillow_heif.register_heif_opener(thumbnails=True)  # the server turns them off
    return {
        "analyse": lambda path: analyse(path, max_pixels=10**9),
        "working": working,
        "privacy": privacy,
        "decode": decode,
        "heic-thumbnail": lambda path: decode(path, smallest=True),
    }[op]


def _cost_here(op: str, path: str, warm_path: str, rounds: int) -> tuple[float, float]:
    """(peak RSS rise in MiB of the first run, median seconds of `rounds` runs) of `op`,
    after warming up the decoder (its code, its threads) on a small file of the format."""
    run = _operation(op)
    run(warm_path)
    Path("/proc/self/clear_refs").write_text("5")
    before = _own_kib("VmRSS")
    rise, times = 0.0, []
    for n in range(rounds):
        start = time.perf_counter()
        run(path)
        times.append(time.perf_counter() - start)
        if n == 0:
            rise = (_own_kib("VmHWM") - before) / 1024
    return rise, statistics.median(times)


def cost(op: str, content: bytes, warm: bytes, rounds: int = 3) -> tuple[float, float]:
    """`_cost_here` in a new process: memory the benchmark's own work kept cannot hide a
    rise. The files are on disk, as the server has an upload."""
    with tempfile.TemporaryDirectory() as tmp:
        path, warm_path = Path(tmp, "big"), Path(tmp, "warm")
        path.write_bytes(content)
        warm_path.write_bytes(warm)
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_cost_here, op, str(path), str(warm_path), rounds).result()


# --- the benchmark -----------------------------------------------------------------------


async def throughput(files: dict[str, list[bytes]], small: dict[str, bytes], clients: int,
                     rounds: int) -> None:
    """Each kind alone through a server (warmed up with a small file of each format), then,
    the server stopped, the analysis alone on the same files: the server's background work
    (folding feature postings in PostgreSQL) counts in its ingest, not in the ceiling.
    `rounds` rounds, each with a fresh server; medians reported (the machine is shared:
    single rounds vary by tens of percent)."""
    workers = os.cpu_count() or 2
    rates: dict[str, list[float]] = defaultdict(list)
    ceilings: dict[str, list[float]] = defaultdict(list)
    latencies: dict[str, list[float]] = defaultdict(list)
    peak = 0.0
    for _ in range(rounds):
        with running_server() as server:
            await drive_uploads(server.url, list(small.items()), 1)
            for kind, contents in files.items():
                wall, times = await drive_uploads(server.url, [(kind, c) for c in contents],
                                                  clients)
                rates[kind].append(len(contents) / wall)
                latencies[kind] += times[kind]
            peak = max(peak, server.peak_rss_kib() / 1024)
        for kind, contents in files.items():
            ceilings[kind].append(time_pipeline([(kind, c) for c in contents], workers))
    print(f"\nend to end over HTTP, each kind alone, {clients} clients, and the analysis alone "
          f"on the same files; medians of {rounds} rounds (server peak RSS {peak:.0f} MiB):")
    report_row("kind", "mean size MB", "p50 ms", "p95 ms", "img/s", "analysis img/s",
               "share", "share range")
    for kind, contents in files.items():
        rate, ceiling = statistics.median(rates[kind]), statistics.median(ceilings[kind])
        shares = [r / c for r, c in zip(rates[kind], ceilings[kind], strict=True)]
        report_row(kind, f"{sum(map(len, contents)) / len(contents) / MIB:.2f}",
                   f"{percentile(latencies[kind], 50) * 1000:.0f}",
                   f"{percentile(latencies[kind], 95) * 1000:.0f}", f"{rate:.1f}",
                   f"{ceiling:.1f}", f"{rate / ceiling:.0%}",
                   f"{min(shares):.0%}-{max(shares):.0%}")


async def memory(huge: dict[str, tuple[str, bytes]], small: dict[str, bytes]) -> None:
    """One huge upload of each format on a fresh server warmed up with a small WebP and a
    small file of that format (its decoder's code and threads are then resident)."""
    webp = photo_like("WEBP", (480, 360), seed=1)
    print("\nserver peak RSS rise for one upload (fresh server each):")
    report_row("upload", "size MB", "rise MiB")
    for kind, (fmt, content) in huge.items():
        with running_server() as server:
            await drive_uploads(server.url, [("warm", webp), ("warm", small[fmt])], 1)
            rise = await rss_rise(server, [content])
        report_row(kind, f"{len(content) / MIB:.1f}", f"{rise:.0f}")
    # Two at once: whole decodes of large pictures take turns (imaging/opening.py).
    fmt, content = huge["48MP HEIC"]
    with running_server() as server:
        await drive_uploads(server.url, [("warm", webp), ("warm", small[fmt])], 1)
        rise = await rss_rise(server, [content, content])
    report_row("2 x 48MP HEIC at once", f"{2 * len(content) / MIB:.1f}", f"{rise:.0f}")


def in_process(huge: dict[str, tuple[str, bytes]], small: dict[str, bytes],
               dng_plain: bytes, dng_preview: bytes, heic_12mp: bytes) -> None:
    """Analysis-level costs, each in a fresh process: the 48 MP decodes alone (what the
    server's rise is made of), the RAW preview against the demosaic, the HEIC thumbnail."""
    print("\nin a fresh process, peak RSS rise of one run: the decode alone, the whole "
          "analysis, the copy without location")
    report_row("file", "decode MiB", "analyse MiB", "analyse s", "privacy MiB")
    for kind, (fmt, content) in huge.items():
        decoded = cost("working", content, small[fmt], rounds=1)
        analysed = cost("analyse", content, small[fmt], rounds=1)
        private = cost("privacy", content, small[fmt], rounds=1)
        report_row(kind, f"{decoded[0]:.0f}", f"{analysed[0]:.0f}", f"{analysed[1]:.2f}",
                   f"{private[0]:.0f}")

    print("\n24 MP DNG: the embedded preview (full size, JPEG q90) vs the half-size demosaic "
          "(median of 3)")
    report_row("DNG", "size MB", "decode ms", "decode MiB", "analyse ms", "analyse MiB")
    for label, content in [("demosaic", dng_plain), ("preview", dng_preview)]:
        picture = cost("working", content, small["DNG"])
        analysed = cost("analyse", content, small["DNG"])
        report_row(label, f"{len(content) / MIB:.1f}", f"{picture[1] * 1000:.0f}",
                   f"{picture[0]:.0f}", f"{analysed[1] * 1000:.0f}", f"{analysed[0]:.0f}")

    print("\nHEIC: the embedded 320 px thumbnail vs the full decode (median of 3; the "
          f"analysis needs a {STORED_SIDE} px long side)")
    report_row("HEIC", "decode ms", "decode MiB")
    for label, content in [("12MP", heic_12mp), ("48MP", huge["48MP HEIC"][1])]:
        for op in ("decode", "heic-thumbnail"):
            rise, seconds = cost(op, content, small["HEIF"])
            report_row(f"{label} {'thumbnail' if op != 'decode' else 'full'}",
                       f"{seconds * 1000:.0f}", f"{rise:.0f}")


async def main(per_kind: int, clients: int, rounds: int, cache: Path) -> None:
    start, load = time.perf_counter(), os.getloadavg()
    formats = tuple(fmt for fmt, _ in KINDS.values() if fmt != "DNG")
    small_size = (480, 360)
    make_inputs(cache, [
        (HUGE, 99, ("HEIF", "AVIF", "JXL"), 6.0),
        ((7400, 5400), 99, ("JPEG q97",), 40.0),
        *[((4000, 3000), seed, formats, 6.0) for seed in range(per_kind)],
        ((6000, 4000), 0, ("DNG", "DNG+preview"), 6.0),
        *[((6000, 4000), seed, ("DNG",), 6.0) for seed in range(1, per_kind)],
        (small_size, 1, (*formats, "DNG"), 6.0),
    ])

    def read(fmt: str, size: tuple[int, int], seed: int, noise: float = 6.0) -> bytes:
        return _cache_path(cache, fmt, size, seed, noise).read_bytes()

    files = {kind: [read(fmt, size, seed) for seed in range(per_kind)]
             for kind, (fmt, size) in KINDS.items()}
    small = {fmt: read(fmt, small_size, 1) for fmt in (*formats, "DNG")}
    huge = {
        # bench/ingest.py's 40 MP JPEG, for reference
        "40MP JPEG": ("JPEG", read("JPEG q97", (7400, 5400), 99, noise=40.0)),
        "48MP HEIC": ("HEIF", read("HEIF", HUGE, 99)),
        "48MP AVIF": ("AVIF", read("AVIF", HUGE, 99)),
        "48MP JPEG XL": ("JXL", read("JXL", HUGE, 99)),
        "24MP DNG": ("DNG", files["24MP DNG"][0]),
    }

    await memory(huge, small)
    await throughput(files, small, clients, rounds)
    in_process(huge, small, files["24MP DNG"][0], read("DNG+preview", (6000, 4000), 0),
               files["12MP HEIC"][0])
    print(f"\n{time.perf_counter() - start:.0f} s in all; load average at the start "
          f"{load[0]:.2f}, at the end {os.getloadavg()[0]:.2f} (1 minute)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-kind", type=int, default=8)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=CACHE,
                        help="where the encoded inputs are kept between runs")
    args = parser.parse_args()
    asyncio.run(main(args.per_kind, args.clients, args.rounds, args.cache))
