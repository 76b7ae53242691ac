"""The application factory: it only wires."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import validation_middleware

from .auth import auth_middleware
from .config import Config
from .cors import add_cors_headers, cors_preflight_middleware
from .handlers.shared import keep_shared_answers_private
from .inflight import InFlight
from .json_media_type import json_media_type_middleware
from .keys import CONFIG, IN_FLIGHT
from .middlewares import close_when_draining, error_middleware, in_flight_middleware
from .observability import tracing
from .observability.middleware import echo_request_id, observe_middleware
from .observability.proxies import TrustedProxies, forwarded_middleware
from .openapi import setup_openapi
from .protocol import name_the_server
from .resources import cpu_pool_ctx, database_ctx, postings_merger_ctx, storage_ctx
from .routes import setup_routes

# JSON bodies are small; uploads are streamed with request.multipart() and counted by hand.
CLIENT_MAX_SIZE = 1024 * 1024


def create_app(config: Config) -> web.Application:
    trusted = TrustedProxies(config.trusted_proxies, config.forwarded_header)
    app = web.Application(
        client_max_size=CLIENT_MAX_SIZE,
        # With tracing on, the request span's middleware first (observe names it); then the
        # request's id, then the client's address behind a trusted proxy: every middleware and
        # handler after them sees it as request.remote.
        middlewares=[*tracing.middlewares(), observe_middleware(trusted),
                     forwarded_middleware(trusted), in_flight_middleware,
                     cors_preflight_middleware, error_middleware, auth_middleware,
                     json_media_type_middleware, validation_middleware],
    )
    app[CONFIG] = config
    app[IN_FLIGHT] = InFlight()
    app.on_response_prepare.append(echo_request_id)
    app.on_response_prepare.append(add_cors_headers)
    app.on_response_prepare.append(name_the_server)
    app.on_response_prepare.append(close_when_draining)
    app.on_response_prepare.append(keep_shared_answers_private)
    app.cleanup_ctx.extend([cpu_pool_ctx, database_ctx, postings_merger_ctx, storage_ctx])
    setup_routes(app)
    setup_openapi(app)
    return app
