"""The service endpoints, the error envelope and the OpenAPI spec."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from aiohttp_apigami import docs, request_schema
from marshmallow import Schema, fields
from openapi_spec_validator import validate
from pytest_aiohttp import AiohttpClient

from server.keys import POOL
from server.openapi import OPERATION_IDS

Client = TestClient[web.Request, web.Application]


def assert_envelope(body: Any, code: str) -> dict[str, Any]:
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    # Every error names its request (quoted back to an operator), as the header does.
    assert set(error) == {"code", "message", "details", "request_id"}
    assert len(error["request_id"]) == 32
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


async def test_index(client: Client) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    body = await resp.json()
    assert body["name"] == "imagerepo"
    assert body["docs"] == "/docs"
    assert body["openapi"] == "/openapi.json"


async def test_health(client: Client) -> None:
    resp = await client.get("/health")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}


async def test_ready(client: Client) -> None:
    resp = await client.get("/ready")
    assert resp.status == 200
    assert await resp.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}


async def test_ready_reports_a_database_outage(client: Client) -> None:
    assert client.app is not None
    await client.app[POOL].close()  # every later acquire fails, as during an outage
    resp = await client.get("/ready")
    assert resp.status == 503
    body = await resp.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("unavailable")
    assert body["checks"]["storage"] == "ok"


async def test_unknown_route_is_404_envelope(client: Client) -> None:
    resp = await client.get("/no/such/thing")
    assert resp.status == 404
    assert_envelope(await resp.json(), "not_found")


async def test_wrong_method_is_405_envelope(client: Client) -> None:
    resp = await client.delete("/health")
    assert resp.status == 405
    assert "GET" in resp.headers["Allow"]
    assert_envelope(await resp.json(), "method_not_allowed")


async def test_one_path_one_resource(client: Client) -> None:
    """/images/delete is the bulk delete only: other methods are 405, never a malformed id."""
    for method in ("PATCH", "GET", "DELETE"):
        resp = await client.request(method, "/images/delete", json={"title": "x"})
        assert resp.status == 405, method
        assert resp.headers["Allow"] == "POST"
    resp = await client.get("/images/not-a-uuid")
    assert resp.status == 422  # an id route still says what is wrong with the id


class _EchoSchema(Schema):
    name = fields.String(required=True)
    count = fields.Integer(required=True)


@docs(summary="test only")
@request_schema(_EchoSchema)
async def _echo(request: web.Request) -> web.Response:
    return web.json_response(request["data"])


async def _boom(request: web.Request) -> web.Response:
    raise RuntimeError("secret internal detail")


async def _read_json(request: web.Request) -> web.Response:
    return web.json_response(await request.json())


@pytest.fixture
async def probe_client(app: web.Application, aiohttp_client: AiohttpClient) -> Client:
    """The real app with three extra routes that exercise the error middleware."""
    app.router.add_post("/_test/echo", _echo)
    app.router.add_get("/_test/boom", _boom)
    app.router.add_post("/_test/json", _read_json)
    return await aiohttp_client(app)


async def test_validation_is_422_with_per_field_details(probe_client: Client) -> None:
    resp = await probe_client.post("/_test/echo", json={"count": "many"})
    assert resp.status == 422
    error = assert_envelope(await resp.json(), "validation_error")
    assert set(error["details"]) == {"name", "count"}

    resp = await probe_client.post("/_test/echo", json={"name": "a", "count": 2})
    assert resp.status == 200
    assert await resp.json() == {"name": "a", "count": 2}


async def test_malformed_json_is_400(probe_client: Client) -> None:
    resp = await probe_client.post(
        "/_test/echo", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400
    assert_envelope(await resp.json(), "bad_request")


async def test_oversize_body_is_413(probe_client: Client) -> None:
    resp = await probe_client.post("/_test/json", data=io.BytesIO(b"x" * (2 * 1024 * 1024)))
    assert resp.status == 413
    assert_envelope(await resp.json(), "payload_too_large")


async def test_unexpected_error_is_a_generic_500(
    probe_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="server.errors"):
        resp = await probe_client.get("/_test/boom")
    assert resp.status == 500
    text = await resp.text()
    assert "secret internal detail" not in text and "Traceback" not in text
    assert_envelope(await resp.json(), "internal_error")
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)


async def test_openapi_spec_is_valid_openapi_3(client: Client) -> None:
    resp = await client.get("/openapi.json")
    assert resp.status == 200
    spec = await resp.json()
    assert spec["openapi"].startswith("3.")
    validate(spec)
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKeyBearer"] == {
        "type": "http", "scheme": "bearer", "description": "`Authorization: Bearer <api_key>`"
    }
    assert schemes["ApiKeyHeader"]["name"] == "X-API-Key"
    for path in ("/", "/health", "/ready"):
        assert "get" in spec["paths"][path]


async def test_every_operation_is_named_summarised_and_answers_as_documented(
    client: Client,
) -> None:
    """What generated clients need: a unique operationId and a summary per operation, no
    HEAD operation (every GET answers HEAD, with no body), required bodies (but the optional
    one of POST /keys), and the statuses any request can get (a malformed request, a body
    over the limit or too slow, an outage)."""
    spec = await (await client.get("/openapi.json")).json()
    ids = []
    for path, item in spec["paths"].items():
        assert "head" not in item, path
        for method, operation in item.items():
            ids.append(operation["operationId"])
            assert operation.get("summary"), (method, path)
            assert {"400", "503"} <= set(operation["responses"]), (method, path)
            if "requestBody" in operation:
                optional = (method, path) == ("post", "/keys")
                assert operation["requestBody"]["required"] is not optional, (method, path)
                assert {"408", "413"} <= set(operation["responses"]), (method, path)
    # Every operation has the stable name of OPERATION_IDS (generated clients' functions).
    assert len(ids) == len(set(ids)) and set(ids) == set(OPERATION_IDS.values())


async def test_retry_after_and_idempotent_replayed_are_declared_where_sent(
    client: Client,
) -> None:
    """Retry-After comes with every 429 (password attempts), every 503 (outages, overload)
    and the 409 of an Idempotency-Key still in use; Idempotent-Replayed with a replayed
    upload."""
    spec = await (await client.get("/openapi.json")).json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                headers = response.get("headers", {})
                if status in ("429", "503"):
                    assert headers["Retry-After"]["schema"]["type"] == "integer", (method, path)
    paths = spec["paths"]
    for method, path in (("post", "/users"), ("post", "/keys"), ("delete", "/users/me")):
        assert "Retry-After" in paths[path][method]["responses"]["429"]["headers"], path
    upload = paths["/images"]["post"]["responses"]
    assert "Retry-After" in upload["409"]["headers"]
    assert upload["201"]["headers"]["Idempotent-Replayed"]["schema"]["enum"] == ["true"]


async def test_swagger_ui_is_served(client: Client) -> None:
    resp = await client.get("/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert "/openapi.json" in await resp.text()
