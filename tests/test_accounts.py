"""Sign-up, API keys, authentication and account deletion, over HTTP on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import statistics
import time
from typing import Any

import asyncpg
import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config
from tests.conftest import basic, bearer, sign_up

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery"


async def error_of(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status == status, await resp.text()
    body = await resp.json()
    assert body["error"]["code"] == code
    error: dict[str, Any] = body["error"]
    return error


# --- sign-up -------------------------------------------------------------------------------


async def test_sign_up_answers_the_user_and_a_first_key(client: Client) -> None:
    body = await sign_up(client, "Ada.Lovelace")
    assert set(body) == {"id", "username", "created_at", "api_key"}
    assert body["username"] == "Ada.Lovelace"
    assert body["api_key"].startswith("irk_") and len(body["api_key"]) == 4 + 43

    resp = await client.get("/users/me", headers=bearer(body["api_key"]))
    assert resp.status == 200
    me = await resp.json()
    assert me == {k: body[k] for k in ("id", "username", "created_at")}


async def test_usernames_are_unique_without_regard_to_case(client: Client) -> None:
    await sign_up(client, "Alice")
    resp = await client.post("/users", json={"username": "aLICE", "password": PASSWORD})
    error = await error_of(resp, 409, "conflict")
    assert "username" in error["details"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": PASSWORD}, "username"),
        ({"username": "bob"}, "password"),
        ({"username": 12345, "password": PASSWORD}, "username"),
        ({"username": "bob", "password": ["x" * 12]}, "password"),
        ({"username": "ab", "password": PASSWORD}, "username"),
        ({"username": "b" * 33, "password": PASSWORD}, "username"),
        ({"username": "bob smith", "password": PASSWORD}, "username"),
        ({"username": "bøb", "password": PASSWORD}, "username"),
        ({"username": "../etc", "password": PASSWORD}, "username"),
        ({"username": "bob", "password": "123456789"}, "password"),
        # 37 characters but 74 bytes: bcrypt would silently ignore the last two.
        ({"username": "bob", "password": "é" * 37}, "password"),
        ({"username": "bob", "password": "a" * 73}, "password"),
        ({"username": "bob", "password": "abcdefghij\x00k"}, "password"),
        ({"username": "bob", "password": PASSWORD, "admin": True}, "admin"),
        ({"username": None, "password": PASSWORD}, "username"),
    ],
)
async def test_invalid_sign_ups_are_422_naming_the_field(
    client: Client, payload: dict[str, Any], field: str
) -> None:
    resp = await client.post("/users", json=payload)
    error = await error_of(resp, 422, "validation_error")
    assert field in error["details"]


async def test_a_72_byte_password_is_accepted(client: Client) -> None:
    password = "é" * 36  # exactly 72 bytes
    body = await sign_up(client, "maxlen", password)
    resp = await client.post("/keys", headers=basic("maxlen", password), json={})
    assert resp.status == 201, body


@pytest.mark.parametrize(
    ("data", "content_type"),
    [(b"{not json", "application/json"), (b"\xff\xfe", "application/json")],
)
async def test_malformed_json_is_400(client: Client, data: bytes, content_type: str) -> None:
    resp = await client.post("/users", data=data, headers={"Content-Type": content_type})
    await error_of(resp, 400, "bad_request")


@pytest.mark.parametrize("data", [b"[]", b'"text"', b"", b"null"])
async def test_a_body_that_is_not_an_object_is_rejected(client: Client, data: bytes) -> None:
    resp = await client.post("/users", data=data, headers={"Content-Type": "application/json"})
    assert resp.status in (400, 422)
    assert (await resp.json())["error"]["code"] in ("bad_request", "validation_error")


async def test_an_oversize_sign_up_is_413(client: Client) -> None:
    body = io.BytesIO(b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'"}')
    resp = await client.post("/users", data=body, headers={"Content-Type": "application/json"})
    await error_of(resp, 413, "payload_too_large")


# --- authentication ------------------------------------------------------------------------


async def test_both_headers_authenticate(client: Client) -> None:
    key = (await sign_up(client, "carol"))["api_key"]
    for headers in (bearer(key), {"X-API-Key": key}, {"Authorization": f"bearer  {key}"}):
        resp = await client.get("/users/me", headers=headers)
        assert resp.status == 200, headers
        assert (await resp.json())["username"] == "carol"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer irk_" + "A" * 43},
        {"X-API-Key": "irk_nope"},
        {"Authorization": "Bearer "},
        {"Authorization": "Token something"},
        {"X-API-Key": "irk_" + "x" * 4000},
        basic("carol"),
        {"Authorization": "Basic !!!not-base64"},
    ],
)
async def test_missing_or_wrong_keys_are_401_with_a_challenge(
    client: Client, headers: dict[str, str]
) -> None:
    await sign_up(client, "carol")
    resp = await client.get("/users/me", headers=headers)
    await error_of(resp, 401, "unauthorized")
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: Client, clean_db: str
) -> None:
    key = (await sign_up(client, "dave"))["api_key"]
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("select last_used_at from api_keys") is None
        await client.get("/users/me", headers=bearer(key))
        first = await conn.fetchval("select last_used_at from api_keys")
        assert first is not None
        await client.get("/users/me", headers=bearer(key))
        assert await conn.fetchval("select last_used_at from api_keys") == first
        await conn.execute("update api_keys set last_used_at = now() - interval '2 minutes'")
        await client.get("/users/me", headers=bearer(key))
        assert await conn.fetchval("select last_used_at from api_keys") > first
    finally:
        await conn.close()


async def test_authentication_is_one_indexed_lookup(clean_db: str) -> None:
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("set enable_seqscan = off")  # a tiny table would be scanned anyway
        rows = await conn.fetch(
            "explain (format text) select k.id from api_keys k join users u on u.id = k.user_id "
            "where k.digest = $1 and k.revoked_at is null", b"\x00" * 32,
        )
        assert "api_keys_digest" in "\n".join(row[0] for row in rows)
    finally:
        await conn.close()


# --- keys ----------------------------------------------------------------------------------


async def test_issue_list_and_revoke_keys(client: Client) -> None:
    first = (await sign_up(client, "erin"))["api_key"]

    resp = await client.post("/keys", headers=basic("erin"), json={"name": "laptop"})
    assert resp.status == 201
    new = await resp.json()
    assert set(new) == {"id", "name", "prefix", "scopes", "created_at", "expires_at", "api_key"}
    assert new["scopes"] == ["read", "upload", "write", "keys", "share"]  # by default: all
    assert new["expires_at"] is None
    assert new["name"] == "laptop" and new["api_key"].startswith(new["prefix"])
    assert (await client.get("/users/me", headers=bearer(new["api_key"]))).status == 200

    resp = await client.get("/keys", headers=bearer(first))
    listed = (await resp.json())["keys"]
    assert [k["name"] for k in listed] == ["default", "laptop"]
    for key in listed:
        assert set(key) == {"id", "name", "prefix", "scopes", "created_at", "expires_at",
                            "last_used_at", "revoked_at"}
        assert key["revoked_at"] is None
    assert first not in str(listed) and new["api_key"] not in str(listed)

    resp = await client.delete(f"/keys/{new['id']}", headers=bearer(first))
    assert resp.status == 204
    resp = await client.get("/users/me", headers=bearer(new["api_key"]))
    await error_of(resp, 401, "unauthorized")
    listed = (await (await client.get("/keys", headers=bearer(first))).json())["keys"]
    assert listed[1]["revoked_at"] is not None
    # Revoking twice is harmless.
    assert (await client.delete(f"/keys/{new['id']}", headers=bearer(first))).status == 204


async def test_a_key_can_revoke_itself(client: Client) -> None:
    body = await sign_up(client, "frank")
    keys = (await (await client.get("/keys", headers=bearer(body["api_key"]))).json())["keys"]
    resp = await client.delete(f"/keys/{keys[0]['id']}", headers=bearer(body["api_key"]))
    assert resp.status == 204
    assert (await client.get("/users/me", headers=bearer(body["api_key"]))).status == 401


async def test_another_users_key_is_404(client: Client) -> None:
    grace = (await sign_up(client, "grace"))["api_key"]
    heidi = (await sign_up(client, "heidi"))["api_key"]
    heidi_keys = (await (await client.get("/keys", headers=bearer(heidi))).json())["keys"]
    resp = await client.delete(f"/keys/{heidi_keys[0]['id']}", headers=bearer(grace))
    await error_of(resp, 404, "not_found")
    assert (await client.get("/users/me", headers=bearer(heidi))).status == 200


@pytest.mark.parametrize("key_id", ["not-a-uuid", "1", "00000000-0000-0000-0000-00000000000g"])
async def test_a_malformed_key_id_is_422(client: Client, key_id: str) -> None:
    key = (await sign_up(client, "ivan"))["api_key"]
    resp = await client.delete(f"/keys/{key_id}", headers=bearer(key))
    error = await error_of(resp, 422, "validation_error")
    assert "id" in error["details"]


async def test_issuing_a_key_needs_the_password_or_a_key(client: Client) -> None:
    key = (await sign_up(client, "judy"))["api_key"]
    for headers in ({}, bearer("irk_" + "x" * 43), basic("judy", "wrong password"),
                    basic("nobody")):
        resp = await client.post("/keys", headers=headers, json={})
        await error_of(resp, 401, "unauthorized")
        challenge = resp.headers["WWW-Authenticate"]
        assert challenge.startswith("Basic" if "Bearer" not in str(headers) else "Bearer")
    resp = await client.post("/keys", headers=bearer(key), json={})  # a key with `keys`
    assert resp.status == 201
    resp = await client.post("/keys", headers=basic("JUDY"))  # any case; no body at all
    assert resp.status == 201
    assert (await resp.json())["name"].startswith("key of ")  # a label, never ""
    resp = await client.post("/keys", headers=basic("judy"), json={"name": "x" * 101})
    await error_of(resp, 422, "validation_error")


# --- account deletion ----------------------------------------------------------------------


async def test_deleting_the_account_removes_it_and_its_keys(client: Client, clean_db: str) -> None:
    body = await sign_up(client, "mallory")
    await client.post("/keys", headers=basic("mallory"), json={"name": "second"})
    other = await sign_up(client, "niaj")

    resp = await client.delete("/users/me", headers=bearer(body["api_key"]))
    await error_of(resp, 401, "unauthorized")  # a key is not enough: the password is needed
    resp = await client.delete("/users/me", headers=basic("mallory"))
    assert resp.status == 204

    assert (await client.get("/users/me", headers=bearer(body["api_key"]))).status == 401
    conn = await asyncpg.connect(clean_db)
    try:
        assert await conn.fetchval("select count(*) from users") == 1
        assert await conn.fetchval("select count(*) from api_keys") == 1
    finally:
        await conn.close()
    assert (await client.get("/users/me", headers=bearer(other["api_key"]))).status == 200
    # The name is free again.
    await sign_up(client, "Mallory")


# --- nothing readable at rest ----------------------------------------------------------------


async def test_no_password_or_key_can_be_read_back_from_the_database(
    client: Client, clean_db: str
) -> None:
    password = "a very particular secret"
    body = await sign_up(client, "oscar", password)
    resp = await client.post("/keys", headers=basic("oscar", password), json={"name": "n"})
    secrets = [password, body["api_key"], (await resp.json())["api_key"]]
    secrets += [s.removeprefix("irk_") for s in secrets[1:]]

    conn = await asyncpg.connect(clean_db)
    try:
        tables = await conn.fetch(
            "select tablename from pg_tables where schemaname = 'public'"
        )
        dump = ""
        for table in tables:
            rows = await conn.fetch(f'select * from "{table["tablename"]}"')
            dump += "\n".join(str(dict(row)) for row in rows)
        for secret in secrets:
            assert secret not in dump
        stored = await conn.fetchval("select password_hash from users")
        assert stored.startswith("$2b$") and bcrypt.checkpw(password.encode(), stored.encode())
        digests = await conn.fetch("select digest from api_keys")
        assert all(len(row["digest"]) == 32 for row in digests)
    finally:
        await conn.close()


# --- cost of bcrypt: timing and the event loop ---------------------------------------------


@pytest.fixture
async def slow_client(config: Config, aiohttp_client: AiohttpClient) -> Client:
    """The app with the production bcrypt cost (12)."""
    return await aiohttp_client(create_app(dataclasses.replace(config, bcrypt_cost=12)))


async def test_a_missing_user_costs_as_much_time_as_a_wrong_password(
    slow_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both answers do the same work: one bcrypt check at the configured cost (counted, which
    no load disturbs), and so spend as much CPU time. The times alternate between the two and
    each side is judged by its least, since a busy machine only adds to them (it once made a
    median of three, taken one side after the other, 2.2 times the other); the bound leaves
    room for that and still sees a cheaper check (cost 11 is half, 4 a 256th)."""
    await sign_up(slow_client, "peggy")
    costs: list[int] = []
    checkpw = bcrypt.checkpw

    def counted(password: bytes, hashed: bytes) -> bool:
        costs.append(int(hashed.split(b"$")[2]))
        return checkpw(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counted)

    async def timed(username: str) -> float:
        """CPU seconds the check costs (every thread of this process: the server runs here),
        not wall time, which a busy machine stretches at random."""
        costs.clear()
        start = time.process_time()
        resp = await slow_client.post("/keys", headers=basic(username, "not the password"))
        assert resp.status == 401
        spent = time.process_time() - start
        assert costs == [12], (username, costs)
        return spent

    await timed("nobody-here")  # the first makes the dummy hash it compares against
    existing: list[float] = []
    missing: list[float] = []
    for _ in range(4):  # fewer than the ten failures that lock a name out
        existing.append(await timed("peggy"))
        missing.append(await timed("nobody-here"))
    ratio = min(missing) / min(existing)
    assert 0.6 < ratio < 1.7, (existing, missing)
    assert min(missing) > 0.05  # a real bcrypt check ran


@pytest.mark.serial  # a latency bound: another test's CPU work would stretch it
async def test_health_answers_quickly_while_passwords_hash(slow_client: Client) -> None:
    sign_ups = [
        asyncio.create_task(
            slow_client.post("/users", json={"username": f"user{i}", "password": PASSWORD})
        )
        for i in range(6)
    ]
    latencies = []
    while not all(task.done() for task in sign_ups):
        start = time.perf_counter()
        resp = await slow_client.get("/health")
        assert resp.status == 200
        latencies.append(time.perf_counter() - start)
        await asyncio.sleep(0.01)
    for task in sign_ups:
        assert (await task).status == 201
    assert len(latencies) >= 10, "the sign-ups took long enough to overlap"
    # bcrypt on the event loop would hold every /health for a check's 0.25 s: the median
    # would be that long. Generous bounds, so that a loaded CI machine does not flake.
    assert statistics.median(latencies) < 0.1, latencies
    assert max(latencies) < 1.0, latencies


# --- brute force ---------------------------------------------------------------------------


async def test_ten_failures_lock_the_name_out_until_they_expire(
    client: Client, clean_db: str
) -> None:
    await sign_up(client, "trent")
    await sign_up(client, "victor")
    for _ in range(10):
        resp = await client.post("/keys", headers=basic("trent", "wrong password"))
        assert resp.status == 401

    for username in ("trent", "TRENT"):  # even the right password, in any case
        resp = await client.post("/keys", headers=basic(username))
        error = await error_of(resp, 429, "too_many_requests")
        retry_after = int(resp.headers["Retry-After"])
        assert 0 < retry_after <= 15 * 60
        assert error["details"]["retry_after"] == retry_after
    # Other names are unaffected.
    assert (await client.post("/keys", headers=basic("victor"))).status == 201

    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute(
            "update password_attempts set attempted_at = attempted_at - interval '16 minutes'"
        )
    finally:
        await conn.close()
    resp = await client.post("/keys", headers=basic("trent"))
    assert resp.status == 201


async def test_the_lockout_holds_across_app_processes(
    client: Client, config: Config, aiohttp_client: AiohttpClient
) -> None:
    await sign_up(client, "walter")
    for _ in range(10):
        await client.post("/keys", headers=basic("walter", "wrong password"))
    other_process = await aiohttp_client(create_app(config))
    resp = await other_process.post("/keys", headers=basic("walter"))
    await error_of(resp, 429, "too_many_requests")


async def test_failures_for_unknown_names_count_too(client: Client) -> None:
    for _ in range(10):
        await client.post("/keys", headers=basic("ghost", "wrong password"))
    resp = await client.post("/keys", headers=basic("ghost"))
    await error_of(resp, 429, "too_many_requests")


async def test_a_good_password_forgives_the_failures_before_it(
    config: Config, aiohttp_client: AiohttpClient
) -> None:
    """With the limits a deployment has by default (not the tests' lifted address limit):
    three failures, then twelve good logins in a row, all answered. Were successes counted
    as failures, the eighth would be locked out."""
    default = next(f.default for f in dataclasses.fields(Config) if f.name == "password_attempts")
    assert isinstance(default, int) and default < 100
    app = create_app(dataclasses.replace(config, password_attempts=default))
    client = await aiohttp_client(app)
    await sign_up(client, "forgiven")
    for _ in range(3):
        assert (await client.post("/keys", headers=basic("forgiven", "wrong"))).status == 401
    statuses = [(await client.post("/keys", headers=basic("forgiven"), json={})).status
                for _ in range(12)]
    assert statuses == [201] * 12


# --- spec ----------------------------------------------------------------------------------


async def test_account_routes_are_documented_with_their_security(client: Client) -> None:
    spec = await (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert "security" not in paths["/users"]["post"]
    assert paths["/users/me"]["get"]["security"] == [{"ApiKeyBearer": []}, {"ApiKeyHeader": []}]
    assert paths["/users/me"]["delete"]["security"] == [{"PasswordBasic": []}]
    assert paths["/keys"]["post"]["security"] == [{"PasswordBasic": []}, {"ApiKeyBearer": []},
                                                  {"ApiKeyHeader": []}]
    assert "201" in paths["/users"]["post"]["responses"]
    assert "409" in paths["/users"]["post"]["responses"]
    assert paths["/keys/{id}"]["delete"]["parameters"][0]["in"] == "path"
