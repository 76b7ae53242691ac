"""Schemas of the service endpoints."""

from __future__ import annotations

from marshmallow import Schema, fields


class ServiceInfoSchema(Schema):
    name = fields.String(required=True)
    version = fields.String(required=True)
    docs = fields.String(required=True, metadata={"description": "Swagger UI"})
    openapi = fields.String(required=True, metadata={"description": "OpenAPI 3 spec"})


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
