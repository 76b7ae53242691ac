"""`serve --workers N`: N server processes accepting on one listening socket.

This process (the supervisor) binds the socket, starts the embedded PostgreSQL once when there
is no DATABASE_URL, applies migrations once, then starts the workers: each is `python -m
server serve` handed the socket's file descriptor and the database URL. A worker that dies is
replaced; on SIGTERM or SIGINT every worker gets SIGTERM and stops as a single server does
(requests in flight finish within SHUTDOWN_GRACE), then the database is stopped.

Each worker also gets the write end of a pipe of its own, and writes to it once it accepts
on the socket; the supervisor logs "listening ... with N workers" only when every worker has,
so the line is true when it appears (a worker takes seconds to import and start).
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from types import FrameType

from .config import Config
from .db.migrations import migrate
from .db.pool import create_pool
from .embedded import start_embedded, stop_embedded
from .observability.exposition import MULTIPROC_ENV

log = logging.getLogger(__name__)
FD_ENV = "IMAGEREPO_LISTEN_FD"
READY_FD_ENV = "IMAGEREPO_READY_FD"
# A worker that dies sooner than this after its start counts as a crash loop: wait longer.
QUICK_DEATH = 5.0
MAX_BACKOFF = 30.0


def listening_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def inherited_socket() -> socket.socket | None:
    """The supervisor's listening socket, in a worker."""
    fd = os.environ.get(FD_ENV)
    return socket.socket(fileno=int(fd)) if fd else None


def report_ready() -> None:
    """In a worker that accepts on the inherited socket: tell the supervisor (once)."""
    fd = os.environ.pop(READY_FD_ENV, None)
    if fd:
        try:
            os.write(int(fd), b"1")
        finally:
            os.close(int(fd))


async def _migrate_once(dsn: str) -> None:
    pool = await create_pool(dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        log.info("migrations: %s", ", ".join(applied) if applied else "up to date")
    finally:
        await pool.close()


@dataclass
class Supervisor:
    config: Config
    count: int
    sock: socket.socket
    env: dict[str, str]
    workers: dict[int, tuple[subprocess.Popen[bytes], float]] = field(default_factory=dict)
    stopping: bool = False
    backoff: float = 0.0
    # The read end of each starting worker's pipe, and its slot; the slots that accept.
    starting: dict[int, int] = field(default_factory=dict)
    ready: set[int] = field(default_factory=set)
    announced: bool = False

    def start_worker(self, slot: int) -> None:
        self.ready.discard(slot)
        for fd in [fd for fd, of in self.starting.items() if of == slot]:
            del self.starting[fd]  # a dead worker's word no longer counts
            os.close(fd)
        read, write = os.pipe()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "server", "serve", "--workers", "1"],
                env={**self.env, FD_ENV: str(self.sock.fileno()), READY_FD_ENV: str(write)},
                pass_fds=(self.sock.fileno(), write))
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)  # the worker's copy alone: its exit is the end of the pipe
        self.starting[read] = slot
        self.workers[slot] = (process, time.monotonic())
        log.info("worker %d started (pid %d)", slot, process.pid)

    def wait_for_ready(self, timeout: float) -> None:
        """Up to `timeout` seconds for starting workers to report; logs the line that says
        the server listens once every worker accepts (the first time only)."""
        if not self.starting:
            time.sleep(timeout)
            return
        readable, _, _ = select.select(list(self.starting), [], [], timeout)
        for fd in readable:
            slot = self.starting.pop(fd)
            if os.read(fd, 1):  # nothing: it exited first (replaced below)
                self.ready.add(slot)
            os.close(fd)
        if not self.announced and len(self.ready) == self.count:
            self.announced = True
            log.info("listening on http://%s:%d with %d workers", self.config.host,
                     self.config.port, self.count)

    def stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        for slot in range(self.count):
            self.start_worker(slot)
        while not self.stopping:
            self.wait_for_ready(0.2)
            for slot, (process, started) in list(self.workers.items()):
                code = process.poll()
                if code is None or self.stopping:
                    continue
                self.ready.discard(slot)
                forget_worker_gauges(process.pid, self.env[MULTIPROC_ENV])
                quick = time.monotonic() - started < QUICK_DEATH
                self.backoff = min(MAX_BACKOFF, max(1.0, self.backoff * 2)) if quick else 0.0
                log.error("worker %d (pid %d) exited with status %s; starting another%s",
                          slot, process.pid, code,
                          f" in {self.backoff:g} s" if self.backoff else "")
                if self.backoff:
                    time.sleep(self.backoff)
                self.start_worker(slot)
        return self.shutdown()

    def shutdown(self) -> int:
        log.info("stopping %d workers", len(self.workers))
        for fd in self.starting:
            os.close(fd)
        self.starting.clear()
        for process, _ in self.workers.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        self.sock.close()  # the workers hold their own copies until they stop accepting
        deadline = time.monotonic() + self.config.shutdown_grace + 15
        status = 0
        for process, _ in self.workers.values():
            try:
                code = process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.error("worker pid %d did not stop: killing it", process.pid)
                process.kill()
                code = process.wait()
            status = status or (code if code and code > 0 else 0)
        return status


def metrics_folder() -> tuple[str, bool]:
    """Where the workers keep their metrics (summed by whichever worker is scraped): the
    operator's PROMETHEUS_MULTIPROC_DIR, emptied of a previous run's values, or a new
    temporary folder (then True: ours to remove)."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return tempfile.mkdtemp(prefix="imagerepo-metrics-"), True
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
    return folder, False


def forget_worker_gauges(pid: int, folder: str) -> None:
    """A dead worker's gauges (connections, requests in flight) stop counting; its counters
    and histograms stay in the sums, which therefore never go back."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]


def serve_workers(config: Config, count: int) -> int:
    """Run `count` workers until SIGTERM or SIGINT; the exit status for the command."""
    sock = listening_socket(config.host, config.port)
    env = dict(os.environ)
    folder, own_folder = metrics_folder()
    env[MULTIPROC_ENV] = folder
    embedded = None
    try:
        dsn = config.database_url
        if dsn is None:
            embedded = start_embedded(config.data_dir)
            dsn = str(embedded.get_uri())
            log.info("database: embedded PostgreSQL in %s, shared by %d workers; images in %s "
                     "(both kept across restarts: stop the server and remove %s to start "
                     "afresh)", config.data_dir / "postgres", count, config.storage_url,
                     config.data_dir)
        asyncio.run(_migrate_once(dsn))
        env.update(DATABASE_URL=dsn, HOST=config.host, PORT=str(config.port))
        supervisor = Supervisor(config, count, sock, env)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, supervisor.stop)
        return supervisor.run()  # logs "listening" once every worker accepts
    finally:
        sock.close()
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)
        if embedded is not None:
            stop_embedded(embedded)
            log.info("embedded PostgreSQL stopped")
