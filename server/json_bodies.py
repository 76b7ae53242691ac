"""JSON request bodies parsed once, defensively, by the schemas' own parser.

webargs turns only ``JSONDecodeError`` (and bad UTF-8) into a 400; a body nested 100,000
deep (RecursionError) or an integer of thousands of digits (ValueError from Python's digit
limit) would reach the error middleware as a 500. This parser answers them 400 too.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from webargs.aiohttpparser import AIOHTTPParser

from .errors import BadRequest


class JsonBodyParser(AIOHTTPParser):
    async def load_json(self, req: Any, schema: Schema) -> Any:
        try:
            return await super().load_json(req, schema)
        except (ValueError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)[:200]
            raise BadRequest("Request body is not valid JSON",
                             details={"_body": [f"Not valid JSON: {reason}."]}) from None
