"""Schemas of the service endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields


class ServiceInfoSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(required=True)
    docs = fields.String(required=True, metadata={"description": "Swagger UI"})
    openapi = fields.String(required=True, metadata={"description": "OpenAPI 3 spec"})


# JSON first: generated clients read the first type they know.
INDEX_RESPONSES = {200: {
    "description": "About this service; the web page instead when the Accept header prefers "
                   "text/html to application/json (a browser)",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/ServiceInfo"}},
        "text/html": {"schema": {"type": "string"}},
    },
    "headers": {"Vary": {"description": "`Accept`", "schema": {"type": "string"}}},
}}


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})


class ReadinessSchema(Schema):
    status = fields.String(required=True, metadata={"description": "`ready` or `unavailable`"})
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": "`ok` or the reason, per dependency (database, storage)"},
    )
