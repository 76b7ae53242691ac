"""Log lines: human-readable by default, one JSON object per line with LOG_FORMAT=json.

Every line written while a request is handled names its request id (and the user, once
known), whichever logger writes it; lines about no request have none.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from . import tracing
from .context import current

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"


class RequestFields(logging.Filter):
    """Adds the current request's id and user to a record that does not carry them, and,
    with tracing on, the trace and span it was written in (those of the request's span when
    no span is current any more)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current()
        if context is not None:
            if getattr(record, "request_id", None) is None:
                record.request_id = context.request_id
            if getattr(record, "user_id", None) is None and context.user_id is not None:
                record.user_id = str(context.user_id)
        if getattr(record, "trace_id", None) is None:
            ids = tracing.current_ids() or (context.trace if context is not None else None)
            if ids is not None:
                record.trace_id, record.span_id = ids
        return True


class TextFormatter(logging.Formatter):
    """The classic line, with the request id at its end when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request_id = getattr(record, "request_id", None)
        return f"{line} [request {request_id}]" if request_id else line


def json_formatter() -> logging.Formatter:
    # time: ISO 8601 in UTC; then the level, the logger, the message, the process, and the
    # record's extra fields (request_id, route, status, duration_ms, user_id, and with tracing
    # on trace_id and span_id, ...).
    return JsonFormatter("{levelname}{name}{message}{process}", style="{", timestamp="time",
                         rename_fields={"levelname": "level", "name": "logger",
                                        "process": "pid"})


def configure(log_format: str = "text", level: int = logging.INFO) -> None:
    """Where and how every logger writes: one handler on the root, to standard error."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestFields())
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
