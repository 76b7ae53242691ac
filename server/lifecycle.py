"""Serving, and stopping gracefully.

On SIGTERM or SIGINT the listening socket closes at once (new connections are refused), a
request that arrives on a kept-alive connection is answered 503 with Retry-After and
Connection: close without starting any work, requests in flight get up to the grace period
to finish, uploads still streaming included (aiohttp's own shutdown stops reading from open
connections, which would cut those off), and their answers close their connections. What is
still running then is cancelled, so that its clean-up runs; aiohttp gets one more second to
close the connections. So a process stops within SHUTDOWN_GRACE + about 1 s (plus releasing
the pool and storage), and at once when nothing is in flight.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from .app import create_app
from .config import Config
from .keys import IN_FLIGHT
from .observability import access_log
from .protocol import default_max_connections, protocol_factory
from .workers import inherited_socket, report_ready

log = logging.getLogger(__name__)


async def serve(config: Config) -> None:
    app = create_app(config)
    access_log.policy = access_log.AccessPolicy(config.access_log, config.access_log_sample,
                                                config.access_log_quiet_paths)
    runner = web.AppRunner(
        app, access_log_class=access_log.AccessLogger, handle_signals=False, shutdown_timeout=1.0,
        # Room for a 1,000-character query of any script, percent-encoded, in the URL.
        max_line_size=32 * 1024, max_field_size=16 * 1024,
        # aiohttp's keep-alive timer runs from a connection's start and from each response's
        # end until a complete set of headers arrives: it is the deadline for headers (and
        # for an idle keep-alive connection).
        keepalive_timeout=config.header_timeout,
    )
    await runner.setup()
    assert runner.server is not None
    max_connections = config.max_connections or default_max_connections()
    loop = asyncio.get_running_loop()
    factory = protocol_factory(runner.server, max_connections)
    inherited = inherited_socket()  # a worker of `serve --workers N` accepts on its parent's
    if inherited is not None:
        listener = await loop.create_server(factory, sock=inherited)
        log.info("worker accepting on http://%s:%d (at most %d connections)", config.host,
                 config.port, max_connections)
        report_ready()  # the supervisor says "listening" once every worker has
    else:
        listener = await loop.create_server(factory, config.host, config.port,
                                            reuse_address=True)
        log.info("listening on http://%s:%d (at most %d connections)", config.host,
                 config.port, max_connections)

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    listener.close()  # refuse new connections
    in_flight = app[IN_FLIGHT]
    in_flight.drain()  # and new requests on open ones: 503 + Connection: close
    log.info("stopping: %d request(s) in flight, %g s to finish", in_flight.count,
             config.shutdown_grace)
    try:
        await asyncio.wait_for(in_flight.idle.wait(), config.shutdown_grace)
    except TimeoutError:
        log.warning("grace period over: cancelling %d request(s)", in_flight.count)
    await runner.cleanup()  # cancels what is left, then releases pool, storage, workers
    log.info("stopped")
