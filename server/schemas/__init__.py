"""Marshmallow schemas: request validation and the source of the OpenAPI spec."""
