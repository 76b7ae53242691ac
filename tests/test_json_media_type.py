"""A JSON body sent without saying it is JSON (text/plain, a form type, no Content-Type) is
415 `unsupported_media_type`, not read as an absent body ("Nothing to change", "Missing
data"), and changes nothing. Requests written by hand on a socket: the client library adds
no header of its own."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from server.json_media_type import is_json_media_type
from tests.conftest import basic, bearer, sign_up
from tests.images import make_image

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery"
NOT_JSON = ["text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
            "application/octet-stream", None]


async def raw(client: Client, method: str, path: str, body: bytes,
              headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """One request as written here, header by header; the answer's status, headers, body."""
    assert client.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  f"{head}Content-Length: {len(body)}\r\n\r\n").encode() + body)
    answer = await reader.read()
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    header_text, _, payload = rest.partition(b"\r\n\r\n")
    answer_headers = dict(line.split(": ", 1) for line in header_text.decode().split("\r\n"))
    return int(status_line.split()[1]), answer_headers, payload


def typed(content_type: str | None) -> dict[str, str]:
    return {} if content_type is None else {"Content-Type": content_type}


def assert_415(status: int, headers: dict[str, str], payload: bytes,
               content_type: str | None) -> None:
    assert status == 415, payload
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(payload)["error"]
    assert error["code"] == "unsupported_media_type"
    assert error["details"] == {"content_type": content_type}


async def an_image(client: Client, key: str) -> str:
    data = FormData()
    data.add_field("file", make_image("PNG", seed=3), filename="a.png", content_type="image/png")
    data.add_field("title", "kept")
    resp = await client.post("/images", data=data, headers=bearer(key))
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["images"][0]["id"])


@pytest.mark.parametrize("content_type", NOT_JSON)
async def test_a_change_not_sent_as_json_is_415_and_changes_nothing(
    client: Client, alice: str, content_type: str | None
) -> None:
    image_id = await an_image(client, alice)
    answer = await raw(client, "PATCH", f"/images/{image_id}", b'{"title": "changed"}',
                       {**bearer(alice), **typed(content_type)})
    assert_415(*answer, content_type)
    image = await (await client.get(f"/images/{image_id}", headers=bearer(alice))).json()
    assert image["title"] == "kept"


@pytest.mark.parametrize("content_type", NOT_JSON)
async def test_a_sign_up_not_sent_as_json_is_415_and_creates_nobody(
    client: Client, content_type: str | None
) -> None:
    body = json.dumps({"username": "plain", "password": PASSWORD}).encode()
    assert_415(*await raw(client, "POST", "/users", body, typed(content_type)), content_type)
    resp = await client.post("/keys", headers=basic("plain"), json={})
    assert resp.status == 401


@pytest.mark.parametrize("content_type", NOT_JSON)
async def test_other_json_bodies_not_sent_as_json_are_415(
    client: Client, alice: str, content_type: str | None
) -> None:
    image_id = await an_image(client, alice)
    for path, body, headers in [
        ("/keys", {"name": "plain"}, basic("alice")),
        ("/images/delete", {"ids": [image_id]}, bearer(alice)),
        ("/images/known", {"sha256": ["0" * 64]}, bearer(alice)),
    ]:
        answer = await raw(client, "POST", path, json.dumps(body).encode(),
                           {**headers, **typed(content_type)})
        assert_415(*answer, content_type)
    keys = (await (await client.get("/keys", headers=bearer(alice))).json())["keys"]
    assert [k["name"] for k in keys if k["name"] == "plain"] == []
    assert (await client.get(f"/images/{image_id}", headers=bearer(alice))).status == 200


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=UTF-8",
                                          "application/merge-patch+json"])
async def test_every_json_media_type_is_read(
    client: Client, alice: str, content_type: str
) -> None:
    image_id = await an_image(client, alice)
    status, _, payload = await raw(client, "PATCH", f"/images/{image_id}",
                                   b'{"title": "changed"}', {**bearer(alice),
                                                             "Content-Type": content_type})
    assert status == 200, payload
    assert json.loads(payload)["title"] == "changed"
    status, _, payload = await raw(client, "POST", "/keys", b'{"name": "typed"}',
                                   {**basic("alice"), "Content-Type": content_type})
    assert status == 201, payload
    assert json.loads(payload)["name"] == "typed"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json"])
async def test_a_new_key_needs_no_body_at_all(client: Client, content_type: str | None) -> None:
    """The body of POST /keys is optional: without one (whatever the Content-Type says, as
    there is nothing to read), the key is named after the time it was made."""
    await sign_up(client, "nobody")
    status, _, payload = await raw(client, "POST", "/keys", b"",
                                   {**basic("nobody"), **typed(content_type)})
    assert status == 201, payload
    key: dict[str, Any] = json.loads(payload)
    assert key["api_key"].startswith("irk_") and key["name"]


async def test_a_required_body_left_out_is_still_422(client: Client, alice: str) -> None:
    image_id = await an_image(client, alice)
    status, _, payload = await raw(client, "PATCH", f"/images/{image_id}", b"", bearer(alice))
    assert status == 422, payload
    status, _, payload = await raw(client, "POST", "/users", b"", {})
    assert status == 422, payload
    assert set(json.loads(payload)["error"]["details"]) == {"username", "password"}


@pytest.mark.parametrize(("media_type", "expected"), [
    ("application/json", True), ("application/problem+json", True), ("APPLICATION/JSON", True),
    ("text/json", False), ("application/jsonp", False), ("text/plain", False),
    ("application/octet-stream", False), ("", False),
])
def test_which_media_types_are_json(media_type: str, expected: bool) -> None:
    assert is_json_media_type(media_type) is expected


async def test_the_spec_declares_415_for_every_json_body(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    with_json = set()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                with_json.add((method, path))
                assert "415" in operation["responses"], (method, path)
    assert with_json == {("post", "/users"), ("post", "/keys"), ("patch", "/images/{id}"),
                         ("post", "/images/delete"), ("post", "/images/known"),
                         ("post", "/albums"), ("patch", "/albums/{id}"),
                         ("post", "/albums/{id}/images"), ("post", "/albums/{id}/images/remove"),
                         ("post", "/images/{id}/shares"), ("post", "/albums/{id}/shares")}
    keys = spec["paths"]["/keys"]["post"]
    assert keys["requestBody"]["required"] is False
