"""Every metric the service records, and the narrow functions that record them.

prometheus-client keeps the values: in this process's memory, or, when
PROMETHEUS_MULTIPROC_DIR is set (``serve --workers N`` sets it for its workers), in files that
one scrape of any worker sums (``exposition.py``). Labels carry only bounded values: route
templates, methods, statuses, error codes and fixed stage names, never an id or a name.

``disable()`` turns every function here into a no-op (METRICS=off), which is how the
overhead is measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram

T = TypeVar("T")

_enabled = True

# Seconds: from a cached thumbnail (~1 ms) to a search that hits the statement timeout.
LATENCY = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
COUNTS = (0, 1, 2, 5, 10, 25, 50, 100, 200, 500, 1000)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUESTS = Counter("imagerepo_http_requests", "HTTP answers, by route template, method and "
                   "status", ["route", "method", "status"])
REQUEST_SECONDS = Histogram("imagerepo_http_request_duration_seconds", "From the request's "
                            "first byte to the answer's last", ["route", "method"],
                            buckets=LATENCY)
RECEIVED = Counter("imagerepo_http_received_bytes", "Request body bytes read (uploads, query "
                   "images, JSON)", ["route"])
SENT = Counter("imagerepo_http_sent_bytes", "Bytes of answers sent, headers and bodies "
               "(downloads, thumbnails, JSON)", ["route"])
IN_FLIGHT = Gauge("imagerepo_http_requests_in_flight", "Requests being handled",
                  multiprocess_mode="livesum")
ERRORS = Counter("imagerepo_http_errors", "Error answers by status and error code (the "
                 "429s and the 503s by cause among them)", ["status", "code"])

IMAGES_STORED = Counter("imagerepo_images_stored", "Images stored by uploads")
IMAGES_DELETED = Counter("imagerepo_images_deleted", "Images deleted")

IMAGE_SEARCH_SECONDS = Histogram(
    "imagerepo_image_search_stage_seconds", "Search by image (and the near-duplicate check of "
    "an upload), per stage: analysis of the query, candidates from the signals, candidates "
    "from the local features, verification", ["stage"], buckets=LATENCY)
IMAGE_SEARCH_CANDIDATES = Histogram(
    "imagerepo_image_search_candidates", "Candidates a query's stage considered",
    ["source"], buckets=COUNTS)
TEXT_SEARCH_SECONDS = Histogram(
    "imagerepo_text_search_seconds", "Text search by the plan chosen (exact ranking, "
    "ranking of titles and tags, most recent)", ["plan"], buckets=LATENCY)

CPU_WAITING = Gauge("imagerepo_cpu_jobs_waiting", "CPU-pool jobs queued, not yet running",
                    multiprocess_mode="livesum")
CPU_WAIT_SECONDS = Histogram("imagerepo_cpu_job_wait_seconds", "How long a CPU-pool job "
                             "queued before a thread took it", buckets=LATENCY)
CPU_RUN_SECONDS = Histogram("imagerepo_cpu_job_seconds", "How long a CPU-pool job ran",
                            buckets=LATENCY)

DB_CONNECTIONS = Gauge("imagerepo_db_pool_connections", "Connections open in the pool",
                       multiprocess_mode="livesum")
DB_IN_USE = Gauge("imagerepo_db_pool_connections_in_use", "Connections lent to a request",
                  multiprocess_mode="livesum")
DB_MAX = Gauge("imagerepo_db_pool_max_connections", "The pools' size limit",
               multiprocess_mode="livesum")
DB_WAITING = Gauge("imagerepo_db_pool_waiting", "Requests waiting for a connection",
                   multiprocess_mode="livesum")
DB_ACQUIRE_SECONDS = Histogram("imagerepo_db_pool_acquire_seconds", "How long getting a "
                               "connection from the pool took", buckets=LATENCY)
DB_TIMEOUTS = Counter("imagerepo_db_statement_timeouts", "Statements PostgreSQL cancelled "
                      "at their statement_timeout")

STORAGE_SECONDS = Histogram("imagerepo_storage_operation_seconds", "Object-storage "
                            "operations (get: until the object is open)", ["operation"],
                            buckets=LATENCY)
STORAGE_ERRORS = Counter("imagerepo_storage_errors", "Object-storage operations that failed "
                         "(a missing object is not a failure)", ["operation"])

PASSWORD_CHECKS = Counter("imagerepo_password_checks", "bcrypt checks of a password, by "
                          "outcome", ["outcome"])
LOGIN_REFUSALS = Counter("imagerepo_login_refusals", "Password attempts refused before any "
                         "check: the address over its rate, or the name locked out",
                         ["reason"])


def disable() -> None:
    global _enabled
    _enabled = False


def enable() -> None:
    global _enabled
    _enabled = True


def enabled() -> bool:
    return _enabled


def request_finished(route: str, method: str, status: int, seconds: float, received: int,
                     sent: int) -> None:
    if not _enabled:
        return
    method = method if method in METHODS else "other"
    REQUESTS.labels(route, method, str(status)).inc()
    REQUEST_SECONDS.labels(route, method).observe(seconds)
    if received:
        RECEIVED.labels(route).inc(received)
    if sent:
        SENT.labels(route).inc(sent)


def request_started() -> None:
    if _enabled:
        IN_FLIGHT.inc()


def request_ended() -> None:
    if _enabled:
        IN_FLIGHT.dec()


def error_answered(status: int, code: str) -> None:
    if _enabled:
        ERRORS.labels(str(status), code).inc()


def images_stored(count: int) -> None:
    if _enabled and count:
        IMAGES_STORED.inc(count)


def images_deleted(count: int) -> None:
    if _enabled and count:
        IMAGES_DELETED.inc(count)


@contextmanager
def image_search_stage(stage: str) -> Iterator[None]:
    """Times a stage of search by image: analysis, signal_candidates, feature_candidates,
    verification."""
    started = time.perf_counter()
    try:
        yield
    finally:
        if _enabled:
            IMAGE_SEARCH_SECONDS.labels(stage).observe(time.perf_counter() - started)


def image_search_candidates(source: str, count: int) -> None:
    if _enabled:
        IMAGE_SEARCH_CANDIDATES.labels(source).observe(count)


def text_search(plan: str, seconds: float) -> None:
    if _enabled:
        TEXT_SEARCH_SECONDS.labels(plan).observe(seconds)


class CpuJob:
    """A call on its way to the CPU pool: counted as waiting from now until a thread takes
    it (or it is given up before that)."""

    __slots__ = ("_call", "_queued", "_pending")

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        self._queued = time.perf_counter()
        # Whoever pops it first (the thread starting, or the caller giving up) uncounts it;
        # list.pop is atomic, so the two never both do.
        self._pending = [True]
        if _enabled:
            CPU_WAITING.inc()

    def _unqueue(self) -> bool:
        try:
            self._pending.pop()
        except IndexError:
            return False
        if _enabled:
            CPU_WAITING.dec()
        return True

    def __call__(self) -> object:
        started = time.perf_counter()
        if self._unqueue() and _enabled:
            CPU_WAIT_SECONDS.observe(started - self._queued)
        try:
            return self._call()
        finally:
            if _enabled:
                CPU_RUN_SECONDS.observe(time.perf_counter() - started)

    def given_up(self) -> None:
        """The caller stopped waiting (cancelled): a job never started is no longer queued."""
        self._unqueue()


def db_pool(size: int, in_use: int, max_size: int) -> None:
    if _enabled:
        DB_CONNECTIONS.set(size)
        DB_IN_USE.set(in_use)
        DB_MAX.set(max_size)


def db_waiting(delta: int) -> None:
    if _enabled:
        DB_WAITING.inc(delta)


def db_acquired(seconds: float) -> None:
    if _enabled:
        DB_ACQUIRE_SECONDS.observe(seconds)


def statement_timeout() -> None:
    if _enabled:
        DB_TIMEOUTS.inc()


def storage_operation(operation: str, seconds: float, failed: bool) -> None:
    if not _enabled:
        return
    STORAGE_SECONDS.labels(operation).observe(seconds)
    if failed:
        STORAGE_ERRORS.labels(operation).inc()


def password_checked(ok: bool) -> None:
    if _enabled:
        PASSWORD_CHECKS.labels("ok" if ok else "wrong").inc()


def login_refused(reason: str) -> None:
    """`address_rate` or `name_locked`."""
    if _enabled:
        LOGIN_REFUSALS.labels(reason).inc()
