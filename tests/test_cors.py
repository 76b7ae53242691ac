"""CORS: off by default; when configured, answers preflights and labels every response."""

from __future__ import annotations

import dataclasses

from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config

Client = TestClient[web.Request, web.Application]
ORIGIN = "https://gallery.example"


async def test_off_by_default(client: Client) -> None:
    resp = await client.get("/health", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.options("/images", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert resp.status == 405


async def test_configured_origins(config: Config, aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(create_app(dataclasses.replace(config, cors_origins=(ORIGIN,))))
    resp = await client.options("/images", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert resp.status == 204
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN

    resp = await client.get("/no/such/route", headers={"Origin": ORIGIN})
    assert resp.status == 404  # error envelopes are readable cross-origin too
    assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "ETag" in resp.headers["Access-Control-Expose-Headers"]
    assert "Origin" in resp.headers["Vary"]

    resp = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


def test_from_the_environment() -> None:
    config = Config.from_env({"CORS_ORIGINS": "https://a.example/, https://b.example"})
    assert config.cors_origins == ("https://a.example", "https://b.example")
    assert Config.from_env({}).cors_origins == ()
