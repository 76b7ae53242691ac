"""Tracing (TRACING=on): a span per request, its SQL statements' and storage calls' spans
under it, the request id on it, the log lines naming it, nothing secret in any of it; exported
by OTLP when a real server stops; and, off (the default), no OpenTelemetry at all."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from server.observability import tracing
from tests.conftest import bearer, migrated_database, sign_up
from tests.images import make_image
from tests.s3server import closed_port
from tests.test_cli import start_server
from tests.test_workers import call

Client = TestClient[web.Request, web.Application]
ROOT = Path(__file__).resolve().parents[1]
PNG = make_image("PNG", (32, 24), seed=5)
SQL_SCOPE = "opentelemetry.instrumentation.asyncpg"


@pytest.fixture
def exported(config: Config) -> Iterator[InMemorySpanExporter]:
    """Tracing on for this process, its spans kept in memory; off again afterwards."""
    exporter = InMemorySpanExporter()
    assert tracing.setup(replace(config, tracing=True), SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
async def traced(exported: InMemorySpanExporter, config: Config,
                 aiohttp_client: AiohttpClient) -> Client:
    """A client of an app built once tracing is on (its instrumentation wraps the app)."""
    return await aiohttp_client(create_app(config))


def request_span(spans: list[ReadableSpan], request_id: str) -> ReadableSpan:
    found = [s for s in spans if (s.attributes or {}).get(tracing.REQUEST_ID) == request_id]
    assert len(found) == 1, [(s.name, s.attributes) for s in spans]
    return found[0]


def under(spans: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    """The spans whose chain of parents leads to `root`, in its trace."""
    assert root.context is not None
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    found = []
    for span in spans:
        if span.context is None or span.context.trace_id != root.context.trace_id:
            continue
        parent = span.parent
        while parent is not None and parent.span_id != root.context.span_id:
            above = by_id.get(parent.span_id)
            parent = above.parent if above is not None else None
        if parent is not None:
            found.append(span)
    return found


def sql_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.instrumentation_scope is not None
            and s.instrumentation_scope.name == SQL_SCOPE]


def storage_spans(spans: list[ReadableSpan]) -> list[ReadableSpan]:
    return [s for s in spans if s.name.startswith("storage.")]


async def test_each_request_has_a_span_with_its_statements_and_storage_calls_under_it(
        traced: Client, exported: InMemorySpanExporter) -> None:
    """One upload, one download and one text search: each answer's X-Request-ID names one
    request span, called by the route, and under it (same trace, through its parents) the
    statements the request ran and, for the upload and the download, the storage calls."""
    key = (await sign_up(traced, "tracy"))["api_key"]
    form = FormData()
    form.add_field("file", io.BytesIO(PNG), filename="dune.png")
    form.add_field("title", "dunes at noon")
    form.add_field("visibility", "public")
    upload = await traced.post("/images", data=form, headers=bearer(key))
    assert upload.status == 201, await upload.text()
    image_id = (await upload.json())["images"][0]["id"]
    download = await traced.get(f"/images/{image_id}/file", headers=bearer(key))
    assert download.status == 200 and await download.read() == PNG
    search = await traced.get("/search", params={"q": "dunes"}, headers=bearer(key))
    assert search.status == 200 and (await search.json())["results"]

    spans = list(exported.get_finished_spans())
    for resp, name, route, storage in (
            (upload, "POST /images", "/images", {"storage.put"}),
            (download, "GET /images/{id}/file", "/images/{id}/file", {"storage.get"}),
            (search, "GET /search", "/search", set())):
        root = request_span(spans, resp.headers["X-Request-ID"])
        assert root.name == name
        assert root.parent is None  # the request's own trace
        assert (root.attributes or {})["http.route"] == route
        assert (root.attributes or {})["http.status_code"] == resp.status
        below = under(spans, root)
        assert sql_spans(below), (name, [s.name for s in below])
        assert all((s.attributes or {}).get("db.statement") for s in sql_spans(below))
        assert {s.name for s in storage_spans(below)} >= storage, [s.name for s in below]
        for span in storage_spans(below):
            assert (span.attributes or {})["storage.operation"] == span.name.split(".", 1)[1]
    # Every storage span belongs to a request: none was started outside one's context.
    roots = [request_span(spans, r.headers["X-Request-ID"]) for r in (upload, download)]
    assert storage_spans(spans) == [s for s in storage_spans(spans)
                                    if any(s in under(spans, r) for r in roots)]


async def test_spans_hold_no_query_string_credentials_or_statement_parameters(
        traced: Client, exported: InMemorySpanExporter,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The search words and a stray ?api_key= stay out of the request span's URL attributes
    (as they stay out of the access lines), the API key out of every attribute even when an
    operator asks for every request header, and no statement's parameters are recorded (the
    key's digest, the search words)."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", ".*")
    key = (await sign_up(traced, "quiet", password="a secret passphrase"))["api_key"]
    resp = await traced.get("/search", params={"q": "privatewords"},
                            headers={**bearer(key), "X-Custom": "kept"})
    assert resp.status == 200, await resp.text()
    stray = await traced.get("/search", params={"q": "dunes", "api_key": key})
    assert stray.status == 422  # an unknown parameter, but the request has its span all the same
    spans = list(exported.get_finished_spans())
    for answer in (resp, stray):
        attributes = dict(request_span(spans, answer.headers["X-Request-ID"]).attributes or {})
        assert attributes["http.target"] == "/search"
        assert str(attributes["http.url"]).endswith("/search")
    root = request_span(spans, resp.headers["X-Request-ID"])
    assert sql_spans(under(spans, root))  # the search ran its statements
    attributes = dict(root.attributes or {})
    assert attributes["http.request.header.x_custom"] == ("kept",)  # headers are captured
    text = json.dumps([{k: str(v) for k, v in (s.attributes or {}).items()} for s in spans])
    for secret in (key, "privatewords", "a secret passphrase"):
        assert secret not in text
    assert not any("db.statement.parameters" in (s.attributes or {}) for s in spans)


@pytest.mark.parametrize("trusted", [False, True])
async def test_a_traceparent_is_followed_only_from_a_trusted_proxy(
        trusted: bool, config: Config, aiohttp_client: AiohttpClient) -> None:
    """From anyone, a request starts a trace of its own (else a client could join others'
    traces, or force every request of its own to be sampled); from a trusted proxy, the
    request span continues the proxy's trace."""
    config = replace(config, tracing=True, trusted_proxies=("127.0.0.1",) if trusted else ())
    exporter = InMemorySpanExporter()
    tracing.setup(config, SimpleSpanProcessor(exporter))
    try:
        client = await aiohttp_client(create_app(config))
        trace_id, parent_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
        resp = await client.get("/health",
                                headers={"traceparent": f"00-{trace_id}-{parent_id}-01"})
        assert resp.status == 200
        root = request_span(list(exporter.get_finished_spans()), resp.headers["X-Request-ID"])
    finally:
        tracing.shutdown()
    assert root.context is not None
    assert (format(root.context.trace_id, "032x") == trace_id) is trusted
    assert (root.parent is not None and format(root.parent.span_id, "016x") == parent_id) \
        is trusted


def test_off_by_default_nothing_of_opentelemetry_is_imported(database_url: str,
                                                             tmp_path: Path) -> None:
    """TRACING unset: the config says off, setting it up does nothing, span() is the shared
    no-op, and a process that builds the app and reaches everything a request uses has not
    imported a single opentelemetry module."""
    assert Config.from_env({}).tracing is False
    assert tracing.span("storage.get") is tracing.span("storage.put")
    script = (
        "import sys, asyncio\n"
        "from server.config import Config\n"
        "from server.observability import tracing\n"
        "from server.app import create_app\n"
        "import server.__main__, server.lifecycle, server.storage.measured\n"
        "config = Config.from_env()\n"
        "assert not tracing.setup(config)\n"
        "create_app(config)\n"
        "from server.storage import open_storage\n"
        "from server.storage.measured import MeasuredStorage\n"
        "async def touch():\n"
        "    async with open_storage(config.storage_url) as inner:\n"
        "        storage = MeasuredStorage(inner)\n"
        "        async def chunks():\n"
        "            yield b'x'\n"
        "        await storage.put('a', chunks())\n"
        "        await (await storage.get('a')).close()\n"
        "asyncio.run(touch())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'opentelemetry'))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRACING"))}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**env, "DATABASE_URL": database_url, "STORAGE_URL": (tmp_path / "o").as_uri()})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# Makes `import opentelemetry` fail, as in an installation without the [tracing] extra.
HIDE_OPENTELEMETRY = """
import sys
class Hide:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'opentelemetry':
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
for name in [m for m in sys.modules if m.split('.')[0] == 'opentelemetry']:
    del sys.modules[name]
sys.meta_path.insert(0, Hide())
from server.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_tracing_on_without_the_packages_is_one_line_and_status_2(
        workers: str, tmp_path: Path) -> None:
    """Without the [tracing] extra, TRACING=on stops `serve` at once (a single process, or
    the supervisor before it starts any worker): exit status 2 and one line that says what to
    install, never a traceback."""
    done = subprocess.run(
        [sys.executable, "-c", HIDE_OPENTELEMETRY, "serve", "--port", "0"], cwd=ROOT,
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "TRACING": "on", "WORKERS": workers, "DATA_DIR": str(tmp_path),
             "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("configuration error: TRACING=on needs")
    assert "pip install 'imagerepo[tracing]'" in lines[0]
    assert "worker" not in done.stdout + done.stderr


class Receiver(ThreadingHTTPServer):
    """A tiny OTLP/HTTP collector on 127.0.0.1: keeps what POST /v1/traces brings."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.requests: list[ExportTraceServiceRequest] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        found: list[tuple[dict[str, Any], Any]] = []
        with self.lock:
            for request in self.requests:
                for resource_spans in request.resource_spans:
                    resource = attributes_of(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        found.extend((resource, span) for span in scope_spans.spans)
        return found


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces":
            self.send_response(404)
            self.end_headers()
            return
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        with self.server.lock:
            self.server.requests.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def attributes_of(pairs: Any) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = getattr(pair.value, kind) if kind else None
    return values


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_a_real_server_exports_its_spans_by_otlp_when_it_stops(
        tmp_path: Path, admin_dsn: str, receiver: Receiver) -> None:
    """`serve` with TRACING=on and OTEL_EXPORTER_OTLP_ENDPOINT: nothing is sent while it runs
    (the batch waits a minute here), and on SIGTERM the process exports what it has before it
    exits: the request span (service `imagerepo`, named by the route, with the request id)
    and the statements under it. Its JSON access line names the same trace and span."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log = tmp_path / "server.log"
    with migrated_database(admin_dsn) as dsn, start_server(
            {**env, "DATABASE_URL": dsn, "DATA_DIR": str(tmp_path),
             "STORAGE_URL": (tmp_path / "objects").as_uri(), "BCRYPT_COST": "4",
             "TRACING": "on", "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
             "OTEL_BSP_SCHEDULE_DELAY": "60000", "LOG_FORMAT": "json"},
            log, "--workers", "1") as (process, url):
        status, body, _ = call(url + "/users", "POST", {"username": "otlp",
                                                        "password": "x" * 12})
        assert status == 201, body
        status, body, headers = call(url + f"/images/{uuid.uuid4()}",
                                     headers=bearer(body["api_key"]))
        assert status == 404, body
        request_id = headers["X-Request-ID"]
        assert receiver.spans() == []  # batched, not yet sent
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()

    spans = receiver.spans()
    roots = [(resource, s) for resource, s in spans
             if attributes_of(s.attributes).get(tracing.REQUEST_ID) == request_id]
    assert len(roots) == 1, log.read_text()
    resource, root = roots[0]
    assert resource["service.name"] == "imagerepo"
    assert root.name == "GET /images/{id}"
    assert attributes_of(root.attributes)["http.route"] == "/images/{id}"
    assert attributes_of(root.attributes)["http.status_code"] == 404
    assert root.parent_span_id == b""
    in_trace = {s.span_id: s for _, s in spans if s.trace_id == root.trace_id}
    statements = [s for s in in_trace.values() if "db.statement" in attributes_of(s.attributes)]
    assert statements, [s.name for s in in_trace.values()]
    for statement in statements:  # each leads up to the request span
        parent = statement.parent_span_id
        while parent != root.span_id:
            parent = in_trace[parent].parent_span_id
    # From the access line to the trace.
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("request_id") == request_id
              and line.get("logger") == "aiohttp.access"]
    assert len(access) == 1, lines
    assert access[0]["trace_id"] == root.trace_id.hex()
    assert access[0]["span_id"] == root.span_id.hex()


def test_a_collector_that_is_down_does_not_hold_the_stop(tmp_path: Path,
                                                         admin_dsn: str) -> None:
    """Nothing listens where the spans should go: requests are answered as usual, and on
    SIGTERM the process gives its last spans FLUSH_SECONDS, not the exporter's retries
    (10 s by default, per batch), then exits 0 saying what it dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    log = tmp_path / "server.log"
    with migrated_database(admin_dsn) as dsn, start_server(
            {**env, "DATABASE_URL": dsn, "DATA_DIR": str(tmp_path),
             "STORAGE_URL": (tmp_path / "objects").as_uri(), "TRACING": "on",
             "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"},
            log, "--workers", "1") as (process, url):
        for _ in range(3):
            assert call(url + "/ready")[0] == 200
        process.send_signal(signal.SIGTERM)
        stopping = time.monotonic()
        assert process.wait(60) == 0, log.read_text()
        took = time.monotonic() - stopping
    assert took < tracing.FLUSH_SECONDS + 3, (took, log.read_text())
    assert "the last spans were not exported" in log.read_text()
