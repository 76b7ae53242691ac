"""Tracing (TRACING=on): OpenTelemetry spans for each request, its SQL statements and its
storage calls, exported by OTLP/HTTP. Off by default.

Off, nothing here imports ``opentelemetry`` (the packages need not even be installed), and
every function is a check of one global: ``span()`` hands out a shared ``nullcontext``.

On, ``setup()`` (once per serving process, before the app is built; each worker of
``serve --workers N`` has its own) makes a TracerProvider with a BatchSpanProcessor and an
OTLP/HTTP exporter, and turns on the two kept instrumentations:

* aiohttp-server: a span per request (``GET /images/{id}``: the route, never the path),
  started by its middleware, which ``create_app`` puts first (``middlewares()``);
* asyncpg: a span per statement, with its text but never its parameters.

The storage calls' spans come from ``server/storage/measured.py`` through ``span()``; the
request id is put on the request span by the outermost middleware (``request_started``), and
the log lines get ``trace_id`` and ``span_id`` through ``current_ids()``.

The exporter's endpoint, headers and timeout, the service's name (``imagerepo`` unless
OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES say otherwise) and the sampler
(OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG) are the SDK's standard variables, read by it.

What the spans never carry: query strings (the search words; a client's mistaken
``?api_key=``), which are cut from the request span's URL attributes as logs leave them out;
``Authorization`` and cookies, even if OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST
asks for every header; statement parameters. A ``traceparent`` header is followed only from a
trusted proxy (TRUSTED_PROXIES), as ``X-Request-ID`` is: anyone else could otherwise join
other traces or force their requests to be sampled.

The provider is not made the global one, so that tests can set tracing up and down again in
one process; everything here passes it explicitly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from aiohttp import web

from .proxies import TrustedProxies

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.trace import Span, Tracer

    from ..config import Config

log = logging.getLogger(__name__)

INSTALL = "pip install 'imagerepo[tracing]'"
SERVICE_NAME = "imagerepo"
# The request span's attribute holding the request's X-Request-ID (also in its log lines).
REQUEST_ID = "imagerepo.request_id"
# How long a stopping process waits for its last spans to be exported (a collector that is
# down must not hold the stop for the exporter's retries).
FLUSH_SECONDS = 5.0
# Attributes of the request span that hold the URL, and so the query string.
_URL_ATTRIBUTES = ("http.target", "http.url", "url.full")
_QUERY_ATTRIBUTES = ("url.query",)
# Headers whose values never go into a span, whatever the capture settings ask.
_SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie", "set-cookie")
_SANITIZE_ENV = "OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS"
_NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()


class TracingUnavailable(RuntimeError):
    """TRACING=on, but the OpenTelemetry packages are not installed."""


class TraceIds(NamedTuple):
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits


@dataclass
class _Tracing:
    provider: TracerProvider
    tracer: Tracer
    current_span: Callable[[], Span]
    middleware: Middleware | None = None
    undo: list[Callable[[], None]] = field(default_factory=list)


_state: _Tracing | None = None


def enabled() -> bool:
    return _state is not None


def middlewares() -> list[Middleware]:
    """The request spans' middleware, to run before every other (none when off)."""
    return [] if _state is None or _state.middleware is None else [_state.middleware]


def span(name: str, **attributes: str | int | float | bool) -> AbstractContextManager[object]:
    """A span for the block (a child of the current one), or, off, a shared no-op.
    Attribute names may hold dots: ``span("storage.get", **{"storage.operation": "get"})``."""
    if _state is None:
        return _NO_SPAN
    return _state.tracer.start_as_current_span(name, attributes=attributes)


def request_started(request_id: str) -> TraceIds | None:
    """Names the current request's span with its request id; its ids, for the log lines.
    None when off, for a request that has no span (excluded) or one not sampled."""
    if _state is None:
        return None
    current = _state.current_span()
    current.set_attribute(REQUEST_ID, request_id)  # a no-op on a span that is not recorded
    return _ids(current)


def current_ids() -> TraceIds | None:
    """The trace and span a log line is written in, if they are recorded; None when off."""
    if _state is None:
        return None
    return _ids(_state.current_span())


def _ids(current: Span) -> TraceIds | None:
    context = current.get_span_context()
    if not context.is_valid or not context.trace_flags.sampled:
        return None  # a trace id that no backend will ever hold leads nowhere
    return TraceIds(format(context.trace_id, "032x"), format(context.span_id, "016x"))


def _import() -> dict[str, Any]:
    try:
        from opentelemetry import propagate, trace
        from opentelemetry.instrumentation import aiohttp_server
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError as exc:
        missing = exc.name or "opentelemetry"
        raise TracingUnavailable(f"TRACING=on needs the OpenTelemetry packages ({missing} is not "
                                 f"installed): {INSTALL}") from None
    return {"propagate": propagate, "trace": trace, "Resource": Resource,
            "TracerProvider": TracerProvider, "aiohttp_server": aiohttp_server,
            "asyncpg": AsyncPGInstrumentor}


def check(config: Config) -> None:
    """Raises TracingUnavailable if tracing is on and cannot be (the supervisor of
    ``serve --workers N`` asks before starting workers that would each fail)."""
    if config.tracing:
        _import()


def setup(config: Config, processor: SpanProcessor | None = None) -> bool:
    """Tracing for this process if TRACING=on (True), else nothing at all (False).
    `processor`: where the spans go instead of the OTLP exporter (tests)."""
    global _state
    if not config.tracing:
        return False
    if _state is not None:
        raise RuntimeError("tracing is set up already")
    otel = _import()
    # The process's pid tells the workers of `serve --workers N` apart.
    resource = otel["Resource"]({"process.pid": os.getpid()}).merge(otel["Resource"].create())
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(otel["Resource"]({"service.name": SERVICE_NAME}))
    # shutdown_on_exit: no; `shutdown()` does it, within FLUSH_SECONDS.
    provider = otel["TracerProvider"](resource=resource, shutdown_on_exit=False)
    provider.add_span_processor(_without_query_strings())
    if processor is None:
        processor = _otlp_processor()
        log.info("tracing: spans of %s exported by OTLP/HTTP to %s (sampler %s)",
                 resource.attributes.get("service.name"), _endpoint(),
                 os.environ.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on")
    provider.add_span_processor(processor)
    state = _Tracing(provider, provider.get_tracer("imagerepo"), otel["trace"].get_current_span)

    _sanitize_secret_headers()
    propagate = otel["propagate"]
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(_trusted_only(previous, TrustedProxies(config.trusted_proxies)))
    state.undo.append(lambda: propagate.set_global_textmap(previous))
    aiohttp_server = otel["aiohttp_server"]
    instrumentor = aiohttp_server.AioHttpServerInstrumentor()
    # Instrumenting sets up its middleware's settings (excluded URLs, semantic conventions),
    # and replaces web.Application by a subclass that adds the middleware to every app, which
    # aiohttp discourages (a DeprecationWarning): the original is put back at once, and
    # create_app adds the middleware to our app alone.
    original = web.Application
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Inheritance class", DeprecationWarning)
        instrumentor.instrument(tracer_provider=provider)
    web.Application = original  # type: ignore[misc]
    state.undo.append(instrumentor.uninstrument)
    state.middleware = aiohttp_server.create_aiohttp_middleware(tracer_provider=provider)
    sql = otel["asyncpg"](capture_parameters=False)
    sql.instrument(tracer_provider=provider)
    state.undo.append(sql.uninstrument)
    _state = state
    return True


def shutdown(timeout: float = FLUSH_SECONDS) -> None:
    """Exports the spans still queued (for up to `timeout` seconds) and turns tracing off."""
    global _state
    state, _state = _state, None
    if state is None:
        return
    for undo in reversed(state.undo):
        undo()
    stopping = threading.Thread(target=state.provider.shutdown, name="tracing-shutdown",
                                daemon=True)
    stopping.start()
    stopping.join(timeout)
    if stopping.is_alive():
        log.warning("tracing: the last spans were not exported within %g s (is the collector "
                    "at %s reachable?)", timeout, _endpoint())


def _otlp_processor() -> SpanProcessor:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter())


def _endpoint() -> str:
    """Where the exporter sends spans, as it works it out (for the log line)."""
    from ..config import redact_url

    url = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if not url:
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or "http://localhost:4318"
        url = base.rstrip("/") + "/v1/traces"
    return redact_url(url)


def _sanitize_secret_headers() -> None:
    """Credentials' headers are always among those whose values captured headers hide
    (the instrumentation reads this variable for every request)."""
    named = [n.strip() for n in os.environ.get(_SANITIZE_ENV, "").split(",") if n.strip()]
    missing = [h for h in _SECRET_HEADERS if h not in (n.lower() for n in named)]
    if missing:
        os.environ[_SANITIZE_ENV] = ",".join(named + missing)


def _without_query_strings() -> SpanProcessor:
    from opentelemetry.sdk.trace import SpanProcessor

    class WithoutQueryStrings(SpanProcessor):
        """Cuts the query string from the URL attributes a span starts with (the request
        span's): the access lines leave it out too."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            attributes = span.attributes or {}
            for name in _URL_ATTRIBUTES:
                value = attributes.get(name)
                if isinstance(value, str) and "?" in value:
                    span.set_attribute(name, value.split("?", 1)[0])
            for name in _QUERY_ATTRIBUTES:
                if attributes.get(name):
                    span.set_attribute(name, "REDACTED")

    return WithoutQueryStrings()


def _trusted_only(inner: Any, trusted: TrustedProxies) -> Any:
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import TextMapPropagator

    class FromTrustedProxies(TextMapPropagator):
        """The incoming trace context (`traceparent`, baggage) of a request from a trusted
        proxy; anyone else's request starts a trace of its own."""

        def extract(self, carrier: Any, context: Context | None = None,
                    getter: Any = None) -> Context:
            if not trusted.trusts(getattr(carrier, "remote", None)):
                return Context() if context is None else context
            if getter is None:
                return inner.extract(carrier, context)  # type: ignore[no-any-return]
            return inner.extract(carrier, context, getter)  # type: ignore[no-any-return]

        def inject(self, carrier: Any, context: Context | None = None,
                   setter: Any = None) -> None:
            if setter is None:
                inner.inject(carrier, context)
            else:
                inner.inject(carrier, context, setter)

        @property
        def fields(self) -> set[str]:
            return set(inner.fields)

    return FromTrustedProxies()

