"""The metrics in Prometheus' text format: this process's, or every worker's summed."""

from __future__ import annotations

import hmac
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE: str = CONTENT_TYPE_LATEST


def render() -> bytes:
    """The current values. Under `serve --workers N` each worker writes its values to files
    in PROMETHEUS_MULTIPROC_DIR, and whichever worker a scrape reaches reads them all."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison, so that the token cannot be guessed a byte at a time."""
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())
