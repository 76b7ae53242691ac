"""Shared by the benchmarks: a server process to drive, its memory, percentiles."""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path

    def pids(self) -> list[int]:
        """The serving processes: the workers of `serve --workers N`, or the server itself."""
        children = [int(pid) for task in Path(f"/proc/{self.process.pid}/task").iterdir()
                    for pid in (task / "children").read_text().split()]
        return children or [self.process.pid]

    def rss_kib(self) -> int:
        return max(_status_kib(pid, "VmRSS") for pid in self.pids())

    def peak_rss_kib(self) -> int:
        """The largest peak RSS of one serving process."""
        return max(_status_kib(pid, "VmHWM") for pid in self.pids())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the serving processes have used: per request, a cost
        that other work on the machine disturbs far less than it does throughput."""
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids():
            # Fields after the command's closing parenthesis; utime and stime are 14 and 15.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / ticks

    def reset_peak(self) -> None:
        """Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
        for pid in self.pids():
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


@contextmanager
def running_server(extra_env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """``python -m server serve`` on a free loopback port, local storage in a temp folder.
    Uses $DATABASE_URL when set, else the embedded PostgreSQL."""
    with tempfile.TemporaryDirectory(prefix="imagerepo-bench-") as tmp:
        port = free_port()
        env = {**os.environ, "WORKERS": "1", "DATA_DIR": tmp, "PORT": str(port),
               "HOST": "127.0.0.1",
               "STORAGE_URL": Path(tmp, "objects").as_uri(), **(extra_env or {})}
        log = open(Path(tmp, "server.log"), "wb")  # noqa: SIM115
        process = subprocess.Popen([sys.executable, "-m", "server", "serve"], env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process)
            yield ServerProcess(url, process, Path(tmp))
        finally:
            process.terminate()
            process.wait(30)
            log.close()


def _wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            with urllib.request.urlopen(url + "/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


def postings_batches(keys: np.ndarray, values: np.ndarray,
                     step: int = 200_000) -> Iterator[list[tuple[int, int, list[int]]]]:
    """Inverted-file rows (key, count, values) from (key, value) pairs sorted by key, `step`
    keys a batch (for COPY)."""
    bounds = np.flatnonzero(np.diff(keys)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(keys)]])
    for s in range(0, len(starts), step):
        lo, hi = int(starts[s]), int(ends[min(s + step, len(starts)) - 1])
        part = values[lo:hi].tolist()
        yield [(int(keys[a]), int(b - a), part[a - lo:b - lo])
               for a, b in zip(starts[s:s + step], ends[s:s + step], strict=True)]
