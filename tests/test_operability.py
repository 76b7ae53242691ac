"""What an operator sees (issue 25): /metrics, request ids, JSON logs, the access lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from server.cpu import run_cpu
from server.db.pool import create_pool
from server.observability import logs, metrics
from server.observability.access_log import AccessLogger
from tests.conftest import basic, bearer, sign_up
from tests.images import make_image
from tests.test_cli import serve_own_database, start_server
from tests.test_workers import children

Client = TestClient[web.Request, web.Application]
ROOT = Path(__file__).resolve().parents[1]
TOKEN = "metrics-token-for-the-tests"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, through Prometheus' own text parser."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of `name` over the samples whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


@pytest.fixture
def metered_config(config: Config) -> Config:
    return replace(config, metrics_token=TOKEN)


async def client_of(app: web.Application, aiohttp_client: AiohttpClient) -> Client:
    """A test client of a server with the service's access logger (it records the request
    metrics). aiohttp's TestServer drops keyword arguments given to its constructor."""
    server = TestServer(app)
    await server.start_server(access_log_class=AccessLogger)
    return await aiohttp_client(server)  # type: ignore[return-value]


@pytest.fixture
async def metered(metered_config: Config, aiohttp_client: AiohttpClient) -> Client:
    return await client_of(create_app(metered_config), aiohttp_client)


async def scrape(client: Client) -> Samples:
    resp = await client.get("/metrics", headers=bearer(TOKEN))
    assert resp.status == 200, await resp.text()
    assert resp.content_type == "text/plain"
    assert resp.headers["Cache-Control"] == "no-store"
    return parse(await resp.text())


async def settle(client: Client, name: str = "imagerepo_http_requests_total") -> Samples:
    """A scrape taken once the previous answers' access lines (and metrics) are written:
    aiohttp records them after the last byte is sent."""
    await asyncio.sleep(0.05)
    return await scrape(client)


async def test_metrics_are_not_public(client: Client, metered: Client, alice: str) -> None:
    # Without METRICS_TOKEN the route does not exist.
    resp = await client.get("/metrics", headers=bearer(TOKEN))
    assert resp.status == 404
    # With it: nothing without the token, nor with a wrong one, nor with an API key.
    key = (await sign_up(metered, "metrics-reader"))["api_key"]
    for headers in ({}, bearer("x" * len(TOKEN)), bearer(key), basic("metrics-reader")):
        resp = await metered.get("/metrics", headers=headers)
        assert resp.status == 401, headers
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert (await resp.json())["error"]["code"] == "unauthorized"
    assert (await metered.get("/metrics", headers=bearer(TOKEN))).status == 200


async def test_metrics_off_records_nothing_and_hides_the_route(
    metered_config: Config, aiohttp_client: AiohttpClient
) -> None:
    client = await client_of(create_app(replace(metered_config, metrics=False)),
                             aiohttp_client)
    before = metrics.REQUESTS.labels("/health", "GET", "200")._value.get()
    metrics.disable()  # what METRICS=off does for the process
    try:
        for _ in range(3):
            assert (await client.get("/health")).status == 200
        await asyncio.sleep(0.05)
        assert metrics.REQUESTS.labels("/health", "GET", "200")._value.get() == before
        assert (await client.get("/metrics", headers=bearer(TOKEN))).status == 404
    finally:
        metrics.enable()


def photo(seed: int) -> bytes:
    return make_image("JPEG", (320, 240), seed=seed)


async def upload(client: Client, key: str, *files: bytes) -> list[dict[str, Any]]:
    data = FormData(default_to_multipart=True)
    for i, content in enumerate(files):
        data.add_field("file", content, filename=f"p{i}.jpg", content_type="image/jpeg")
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    images: list[dict[str, Any]] = (await resp.json())["images"]
    return images


async def test_what_requests_do_moves_the_metrics(metered: Client) -> None:
    key = (await sign_up(metered, "counted"))["api_key"]
    before = await settle(metered)
    files = [photo(1), photo(2)]
    first, second = await upload(metered, key, *files)
    resp = await metered.get(f"/images/{first['id']}/file", headers=bearer(key))
    downloaded = len(await resp.read())
    for image in (first, second):
        assert (await metered.get(f"/images/{image['id']}", headers=bearer(key))).status == 200
    assert (await metered.get("/search", params={"q": "p0"}, headers=bearer(key))).status == 200
    query = FormData(default_to_multipart=True)
    query.add_field("file", files[1], filename="q.jpg", content_type="image/jpeg")
    assert (await metered.post("/search/image", data=query, headers=bearer(key))).status == 200
    assert (await metered.delete(f"/images/{second['id']}", headers=bearer(key))).status == 204
    assert (await metered.post("/keys", headers=basic("counted", "wrong password"))).status \
        == 401
    after = await settle(metered)

    def moved(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    # Requests by route template (never by path: one series for every image), method, status.
    assert moved("imagerepo_http_requests_total", route="/images/{id}", method="GET",
                 status="200") == 2
    assert moved("imagerepo_http_requests_total", route="/images", method="POST",
                 status="201") == 1
    assert moved("imagerepo_http_request_duration_seconds_count", route="/search") == 1
    assert moved("imagerepo_http_received_bytes_total", route="/images") >= sum(map(len, files))
    # The answer as sent: its body, and its headers.
    assert 0 < moved("imagerepo_http_sent_bytes_total", route="/images/{id}/file") \
        - downloaded < 2048
    assert moved("imagerepo_images_stored_total") == 2
    assert moved("imagerepo_images_deleted_total") == 1
    # Search by image, stage by stage (an upload's near-duplicate check probes too).
    assert moved("imagerepo_image_search_stage_seconds_count", stage="analysis") == 1
    for stage in ("signal_candidates", "feature_candidates"):
        assert moved("imagerepo_image_search_stage_seconds_count", stage=stage) >= 1, stage
    assert moved("imagerepo_image_search_candidates_count", source="signals") >= 1
    assert moved("imagerepo_text_search_seconds_count") == 1
    assert moved("imagerepo_cpu_job_wait_seconds_count") >= 3
    assert total(after, "imagerepo_cpu_jobs_waiting") == 0
    assert moved("imagerepo_db_pool_acquire_seconds_count") >= 5
    for operation in ("put", "get", "delete"):
        assert moved("imagerepo_storage_operation_seconds_count", operation=operation) >= 1
    assert moved("imagerepo_password_checks_total", outcome="wrong") == 1
    assert moved("imagerepo_http_errors_total", status="401", code="unauthorized") == 1

    # No label carries an id, a name or a path with one.
    for (_, labels), _ in after.items():
        for label, value in labels:
            assert not UUID_RE.search(value) and "counted" not in value, (label, value)


async def test_refusals_and_429s_are_counted(config: Config,
                                             aiohttp_client: AiohttpClient) -> None:
    client = await client_of(
        create_app(replace(config, metrics_token=TOKEN, password_attempts=2)), aiohttp_client)
    before = await settle(client)
    for _ in range(3):
        await client.post("/keys", headers=basic("nobody", "wrong password"))
    after = await settle(client)
    assert (total(after, "imagerepo_http_errors_total", status="429")
            - total(before, "imagerepo_http_errors_total", status="429")) == 1
    assert (total(after, "imagerepo_login_refusals_total", reason="address_rate")
            - total(before, "imagerepo_login_refusals_total", reason="address_rate")) == 1


async def test_a_job_given_up_while_queued_is_no_longer_counted_as_waiting() -> None:
    release = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        busy = asyncio.ensure_future(run_cpu(pool, release.wait))
        try:
            queued = asyncio.ensure_future(run_cpu(pool, time.sleep, 0))
            await asyncio.sleep(0.05)
            assert REGISTRY.get_sample_value("imagerepo_cpu_jobs_waiting") == 1
            queued.cancel()
            await asyncio.gather(queued, return_exceptions=True)
            assert REGISTRY.get_sample_value("imagerepo_cpu_jobs_waiting") == 0
        finally:
            release.set()  # else the pool's thread never ends
            await busy
    assert REGISTRY.get_sample_value("imagerepo_cpu_jobs_waiting") == 0


async def test_the_pool_reports_connections_in_use_and_requests_waiting(
    database_url: str
) -> None:
    """MeasuredPool hooks asyncpg's `_acquire`: this fails if asyncpg stops calling it."""
    pool = await create_pool(database_url, max_size=1)
    try:
        async with pool.acquire():
            assert REGISTRY.get_sample_value("imagerepo_db_pool_connections_in_use") == 1
            waiter = asyncio.ensure_future(pool.acquire().__aenter__())
            await asyncio.sleep(0.05)
            assert REGISTRY.get_sample_value("imagerepo_db_pool_waiting") == 1
        connection = await waiter
        assert REGISTRY.get_sample_value("imagerepo_db_pool_waiting") == 0
        await pool.release(connection)
        assert REGISTRY.get_sample_value("imagerepo_db_pool_connections_in_use") == 0
        assert REGISTRY.get_sample_value("imagerepo_db_pool_max_connections") == 1
    finally:
        await pool.close()


# From the outside: real server processes, their logs read as an operator's pipeline would.

def fetch(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def json_post(url: str, payload: dict[str, Any],
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    status, answer_headers, body = fetch(url, "POST", json.dumps(payload).encode(),
                                         {"Content-Type": "application/json", **(headers or {})})
    return status, answer_headers, json.loads(body)


def multipart(content: bytes) -> tuple[bytes, str]:
    boundary = "operability-boundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n").encode() + content + \
        f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line the server wrote, each of which must be one JSON object."""
    lines = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        record = json.loads(line)  # a line that is not JSON fails here
        assert isinstance(record, dict), (number, line)
        assert {"time", "level", "logger", "message"} <= set(record), line
        lines.append(record)
    return lines


def test_one_request_id_across_the_answer_the_logs_and_the_cli(
    tmp_path: Path, admin_dsn: str
) -> None:
    password = "a password that must stay secret"
    with serve_own_database(tmp_path, admin_dsn, LOG_FORMAT="json") as url:
        status, _, account = json_post(url + "/users",
                                       {"username": "opal", "password": password})
        assert status == 201
        key = account["api_key"]
        body, content_type = multipart(make_image("JPEG", (200, 150), seed=5))
        status, _, answer = fetch(url + "/images", "POST", body,
                                  {"Content-Type": content_type, **bearer(key)})
        assert status == 201
        image = json.loads(answer)["images"][0]
        for _ in range(3):
            assert fetch(url + "/health")[0] == 200
        # An operator's nightmare: the row is there, the object is not.
        for stored in (tmp_path / "objects").rglob("*"):
            if stored.is_file() and not stored.name.endswith(".webp"):
                stored.unlink()
        status, headers, answer = fetch(url + f"/images/{image['id']}/file",
                                        headers=bearer(key))
        assert status == 404
        request_id = headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        assert json.loads(answer)["error"]["request_id"] == request_id

        # The CLI quotes the id a user can hand to the operator.
        env = {**os.environ, "IMAGEREPO_URL": url, "IMAGEREPO_KEY": key,
               "XDG_CONFIG_HOME": str(tmp_path / "config"), "HOME": str(tmp_path),
               "PYTHONPATH": str(ROOT)}  # this checkout's client, not an installed one
        cli = subprocess.run([sys.executable, "-m", "imagerepo", "get", image["id"], "-o",
                              str(tmp_path / "out")], env=env, capture_output=True,
                             text=True, timeout=60, cwd=tmp_path)
        assert cli.returncode == 1, cli
        quoted = re.search(r"\[request id ([0-9a-f]{32})\]", cli.stderr)
        assert quoted, cli.stderr
        log = tmp_path / "server.log"
        time.sleep(0.2)  # the access line follows the answer's last byte
        records = json_lines(log)

    about = [r for r in records if r.get("request_id") == request_id]
    loggers = {r["logger"] for r in about}
    assert loggers == {"server.handlers.downloads", "aiohttp.access"}, about
    access = next(r for r in about if r["logger"] == "aiohttp.access")
    assert access["route"] == "/images/{id}/file" and access["status"] == 404
    assert access["user_id"] == account["id"]
    assert isinstance(access["duration_ms"], float) and access["client"] == "127.0.0.1"
    assert any(r.get("request_id") == quoted.group(1) and r.get("status") == 404
               for r in records), "the CLI's id names a request the server logged"
    # The health checks are quiet; requests outside any are not given an id.
    assert not any(r.get("path") == "/health" for r in records)
    assert all("request_id" not in r for r in records if r["logger"] == "server.lifecycle")
    text = log.read_text()
    assert password not in text and key not in text and key[:12] not in text


@contextmanager
def two_workers(tmp: Path, admin_dsn: str, **extra: str) -> Iterator[tuple[str, Path, int]]:
    from tests.conftest import migrated_database

    with migrated_database(admin_dsn) as dsn:
        log = tmp / "server.log"
        env = {**os.environ, "DATABASE_URL": dsn, "DATA_DIR": str(tmp),
               "STORAGE_URL": (tmp / "objects").as_uri(), "BCRYPT_COST": "4",
               "METRICS_TOKEN": TOKEN, "DB_POOL_SIZE": "3", **extra}
        with start_server(env, log, "--workers", "2") as (process, url):
            yield url, log, process.pid


def scrape_url(url: str) -> Samples:
    status, headers, body = fetch(url + "/metrics", headers=bearer(TOKEN))
    assert status == 200, body
    return parse(body.decode())


def metrics_folder_of(pid: int) -> Path:
    """The PROMETHEUS_MULTIPROC_DIR a process was started with."""
    for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
        name, _, value = item.decode().partition("=")
        if name == "PROMETHEUS_MULTIPROC_DIR":
            return Path(value)
    raise AssertionError(f"process {pid} has no PROMETHEUS_MULTIPROC_DIR")


@pytest.mark.parametrize("operators_folder", [False, True], ids=["own folder", "operator's"])
def test_with_two_workers_one_scrape_sums_them_and_survives_a_dead_one(
    tmp_path: Path, admin_dsn: str, operators_folder: bool
) -> None:
    extra = {}
    if operators_folder:
        # The operator's folder, holding a previous run's values: they must not count.
        extra["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "metrics")
        (tmp_path / "metrics").mkdir()
        subprocess.run([sys.executable, "-c", "from server.observability import metrics; "
                        "metrics.request_finished('/health', 'GET', 200, 0.1, 0, 0)"],
                       env={**os.environ, **extra}, check=True, cwd=ROOT)
        assert list((tmp_path / "metrics").glob("counter_*.db"))
    with two_workers(tmp_path, admin_dsn, **extra) as (url, log, supervisor):
        # /ready answered by one worker says nothing of the other: wait for the supervisor's
        # word that both accept (each has opened its pool, and reported it, by then).
        deadline = time.monotonic() + 60
        while " with 2 workers" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        for _ in range(40):
            assert fetch(url + "/health")[0] == 200
        assert fetch(url + "/no/such/thing")[0] == 404
        scrapes = [scrape_url(url) for _ in range(8)]
        healthy = {total(s, "imagerepo_http_requests_total", route="/health") for s in scrapes}
        # Whichever worker answers, the scrape counts every worker's requests (and only this
        # run's).
        assert healthy == {40}
        assert {total(s, "imagerepo_http_errors_total", code="not_found") for s in scrapes} \
            == {1}
        # Gauges are summed over the live workers: two pools of 3.
        assert total(scrapes[0], "imagerepo_db_pool_max_connections") == 6

        (victim, other) = sorted(children(supervisor))
        folder = metrics_folder_of(victim)
        assert metrics_folder_of(other) == folder  # one folder for the workers, not one each
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:  # the supervisor replaces it, and the new worker reports its pool
            workers = children(supervisor)
            if victim not in workers and len(workers) == 2 and fetch(url + "/ready")[0] == 200:
                samples = scrape_url(url)
                if total(samples, "imagerepo_db_pool_max_connections") == 6:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        # The dead worker's gauges no longer count: its file is gone (else the sum would
        # reach three pools once the new worker reports); its requests still count
        # (counters never go back).
        assert not (folder / f"gauge_livesum_{victim}.db").exists()
        assert (folder / f"counter_{victim}.db").exists()
        assert total(samples, "imagerepo_http_requests_total", route="/health") == 40


def test_access_lines_can_be_switched_off_and_sampled(tmp_path: Path, admin_dsn: str) -> None:
    (tmp_path / "off").mkdir()
    (tmp_path / "sampled").mkdir()
    with serve_own_database(tmp_path / "off", admin_dsn, LOG_FORMAT="json", ACCESS_LOG="off",
                            METRICS_TOKEN=TOKEN) as url:
        for path in ("/", "/nope"):
            fetch(url + path)
        counted = scrape_url(url)
        records = json_lines(tmp_path / "off" / "server.log")
    assert not any(r["logger"] == "aiohttp.access" for r in records)
    assert total(counted, "imagerepo_http_requests_total", route="/") == 1  # still counted

    with serve_own_database(tmp_path / "sampled", admin_dsn, ACCESS_LOG_SAMPLE="0",
                            ACCESS_LOG_QUIET_PATHS="") as url:
        for path in ("/", "/health", "/nope"):
            fetch(url + path)
        time.sleep(0.2)
        text = (tmp_path / "sampled" / "server.log").read_text()
    # Text lines (the default format): errors always, successes at the sample rate (0).
    assert re.search(r"aiohttp\.access: GET /nope 404 [\d.]+ms \[request [0-9a-f]{32}\]", text)
    assert "GET /health 200" not in text and "GET / 200" not in text


def test_json_logs_name_the_request_in_every_line_a_handler_writes() -> None:
    """The filter adds the request's id to lines of any logger, the CPU pool's included."""
    from server.observability.context import RequestContext, _current

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            self.format(record)
            records.append(record)

    handler = Keep()
    handler.addFilter(logs.RequestFields())
    handler.setFormatter(logs.json_formatter())
    logger = logging.getLogger("tests.operability")
    logger.addHandler(handler)
    try:
        token = _current.set(RequestContext("abc123", client="192.0.2.1"))
        try:
            logger.warning("inside")

            async def in_a_thread() -> None:
                with ThreadPoolExecutor(1) as pool:
                    await run_cpu(pool, logger.warning, "in the pool")

            asyncio.run(in_a_thread())
        finally:
            _current.reset(token)
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    formatted = [json.loads(handler.format(r)) for r in records]
    assert [f["message"] for f in formatted] == ["inside", "in the pool", "outside"]
    assert [f.get("request_id") for f in formatted] == ["abc123", "abc123", None]
