"""JSON request bodies parsed once, defensively, by the schemas' own parser.

The body is read under the deadline, idle timeout and minimum rate of request_body.py
(webargs would wait for it as long as the client likes). webargs turns only
``JSONDecodeError`` (and bad UTF-8) into a 400; a body nested 100,000 deep (RecursionError),
an integer of thousands of digits (ValueError from Python's digit limit) or an unknown
charset (LookupError) would reach the error middleware as a 500. This parser answers them
400 too.
"""

from __future__ import annotations

import json
from typing import Any

from marshmallow import Schema
from webargs import core
from webargs.aiohttpparser import AIOHTTPParser, is_json_request

from .errors import BadRequest
from .keys import CONFIG
from .request_body import BodyLimits, read_body


class JsonBodyParser(AIOHTTPParser):
    async def load_json(self, req: Any, schema: Schema) -> Any:
        if not (req.body_exists and is_json_request(req)):
            return core.missing
        limits = BodyLimits.from_config(req.app[CONFIG], req.client_max_size)
        raw = await read_body(req.content, req.content_length, limits)
        try:
            return json.loads(raw.decode(req.charset or "utf-8"))
        except json.JSONDecodeError as exc:
            if exc.doc == "":
                return core.missing
            self._handle_invalid_json_error(exc, req)
        except UnicodeDecodeError as exc:
            self._handle_invalid_json_error(exc, req)
        except (ValueError, RecursionError, LookupError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise BadRequest("Request body is not valid JSON",
                             details={"_body": [f"Not valid JSON: {reason}."]}) from None
