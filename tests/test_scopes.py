"""Scoped API keys (issue 26): every operation taking a key names one scope and refuses a key
without it (403 `missing_scope`, the scope named); keys from before the scopes keep full
rights; an expired key is 401; a key cannot make a broader or longer-lived key."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient

from server.credentials import new_api_key
from server.db.migrations import load_migrations, migrate
from server.db.queries import load_queries
from server.scopes import SCOPES
from server.services.keys import resolve_key
from tests.conftest import basic, bearer, sign_up
from tests.databases import create_database, drop_database

Client = TestClient[web.Request, web.Application]

# Operations that take no API key at all, each for a stated reason. A new operation that
# takes none must be added here on purpose; one that takes a key must name its scope.
KEYLESS = {
    "get_service_info": "public", "get_health": "public", "get_readiness": "public",
    "get_metrics": "the operator's token", "sign_up": "public",
    "delete_account": "the password only: a key of any scopes cannot delete the account",
    "get_shared": "a share link's token", "list_shared_images": "a share link's token",
    "get_shared_image": "a share link's token", "get_shared_image_file": "a share link's token",
    "get_shared_image_thumbnail": "a share link's token",
    "search_shared_text": "a share link's token", "search_shared_by_image": "a share link's token",
}
# The scope each operation taking a key needs (docs/api.md has the same table). An operation
# missing here, or declaring another scope, fails the test below.
EXPECTED = {
    "get_profile": "read", "list_images": "read", "get_image": "read", "get_image_file": "read",
    "get_image_thumbnail": "read", "find_similar_images": "read", "search_text": "read",
    "search_by_image": "read", "list_albums": "read", "get_album": "read",
    "list_album_images": "read",
    "upload_images": "upload", "find_known_images": "upload",
    "update_image": "write", "delete_image": "write", "delete_images": "write",
    "create_album": "write", "update_album": "write", "delete_album": "write",
    "add_album_images": "write", "remove_album_images": "write",
    "create_key": "keys", "list_keys": "keys", "revoke_key": "keys",
    "share_image": "share", "share_album": "share", "list_shares": "share", "revoke_share": "share",
}
FAKE_ID = "00000000-0000-4000-8000-000000000000"
ALSO_READ = {"share_image", "share_album"}


async def key_with(client: Client, username: str, scopes: list[str], **extra: Any) -> str:
    resp = await client.post("/keys", headers=basic(username),
                             json={"scopes": scopes, **extra})
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert body["scopes"] == [s for s in SCOPES if s in scopes]
    return str(body["api_key"])


def key_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if any("ApiKeyBearer" in s for s in operation.get("security", [])):
                found.append((method, path, operation))
            else:
                assert operation["operationId"] in KEYLESS, (
                    f"{method.upper()} {path} takes no API key and is not in KEYLESS")
    return found


async def test_every_operation_taking_a_key_names_its_scope_and_enforces_it(
    client: Client,
) -> None:
    await sign_up(client, "tabula")
    spec = await (await client.get("/openapi.json")).json()
    operations = key_operations(spec)
    assert {op["operationId"]: op.get("x-scope") for _, _, op in operations} == EXPECTED
    keys = {}
    keys["share and read"] = await key_with(client, "tabula", ["share", "read"])
    for each in SCOPES:
        keys[f"only {each}"] = await key_with(client, "tabula", [each])
        keys[f"all but {each}"] = await key_with(
            client, "tabula", [s for s in SCOPES if s != each])
    for method, path, operation in operations:
        name = f"{method.upper()} {path}"
        declared = operation.get("x-scope")
        assert isinstance(declared, str) and declared in SCOPES, f"{name} declares no scope"
        scope: str = declared
        assert f"`{scope}` scope" in operation["description"], name
        forbidden = operation["responses"]["403"]
        assert forbidden["content"]["application/json"]["schema"]["$ref"].endswith("Error")
        url = path.replace("{id}", FAKE_ID)

        resp = await client.request(method, url, headers=bearer(keys[f"all but {scope}"]))
        assert resp.status == 403, (name, resp.status, await resp.text())
        error = (await resp.json())["error"]
        assert error["code"] == "missing_scope", name
        assert error["details"] == {"missing_scope": scope}, name
        assert f"`{scope}`" in error["message"], name

        # Making a share link needs `read` beside `share`: a link shows what the key could see.
        enough = "share and read" if operation["operationId"] in ALSO_READ else f"only {scope}"
        resp = await client.request(method, url, headers=bearer(keys[enough]))
        assert resp.status not in (401, 403), (name, resp.status, await resp.text())


async def test_a_key_without_read_is_refused_where_anonymous_callers_are_served(
    client: Client,
) -> None:
    await sign_up(client, "ursula")
    upload_only = await key_with(client, "ursula", ["upload"])
    for url in ("/images", "/search?q=x", f"/images/{FAKE_ID}"):
        anonymous = await client.get(url)
        assert anonymous.status in (200, 404), url
        resp = await client.get(url, headers=bearer(upload_only))
        assert resp.status == 403, url  # never served as if anonymous
        assert (await resp.json())["error"]["details"] == {"missing_scope": "read"}


async def test_keys_from_before_the_scopes_keep_full_rights(admin_dsn: str) -> None:
    """A database with a key, migrated to 0013: the key has every scope, no expiry."""
    dsn = await create_database(admin_dsn, prefix="imagerepo_scopes")
    try:
        conn = await asyncpg.connect(dsn)
        try:
            migrations = load_migrations()
            before = [m for m in migrations if m.version < 13]
            await migrate(conn, before)
            user_id = await conn.fetchval(
                "insert into users (username, password_hash) values ('old', '$2b$04$x') "
                "returning id")
            key = new_api_key()
            await conn.execute("insert into api_keys (user_id, name, prefix, digest) "
                               "values ($1, 'old', $2, $3)", user_id, key.prefix, key.digest)
            assert (await migrate(conn))[0] == "0013_key_scopes"
            owner = await resolve_key(conn, load_queries(), key.secret)
            assert owner is not None and owner.scopes == frozenset(SCOPES)
            assert owner.expires_at is None and not owner.expired
            # The table refuses what is not a scope, and no scopes at all.
            bads: list[list[str | None]] = [["read", "admin"], [], [None]]
            for bad in bads:
                try:
                    await conn.execute("update api_keys set scopes = $1", bad)
                except asyncpg.CheckViolationError:
                    continue
                raise AssertionError(f"scopes {bad} accepted")
        finally:
            await conn.close()
    finally:
        await drop_database(admin_dsn, dsn)


async def test_an_expired_key_is_401_and_says_so(client: Client, clean_db: str) -> None:
    await sign_up(client, "victor")
    key = await key_with(client, "victor", ["read"], expires_in_days=1)
    assert (await client.get("/images", headers=bearer(key))).status == 200
    conn = await asyncpg.connect(clean_db)
    try:
        await conn.execute("update api_keys set created_at = now() - interval '2 days', "
                           "expires_at = now() - interval '1 second' "
                           "where prefix = $1", key[:12])
    finally:
        await conn.close()
    resp = await client.get("/images", headers=bearer(key))
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "unauthorized" and "expired" in body["error"]["message"]
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_keys_are_listed_with_scopes_and_expiry(client: Client) -> None:
    first = (await sign_up(client, "wendy"))["api_key"]
    await key_with(client, "wendy", ["read", "upload"], expires_in_days=30, name="camera")
    listed = (await (await client.get("/keys", headers=bearer(first))).json())["keys"]
    assert [(k["name"], k["scopes"]) for k in listed] == [
        ("default", list(SCOPES)), ("camera", ["read", "upload"])]
    assert listed[0]["expires_at"] is None and listed[1]["expires_at"] is not None
    assert listed[0]["last_used_at"] is not None  # this very request used it
    bad: dict[str, Any]
    for bad in ({"scopes": []}, {"scopes": ["admin"]}, {"scopes": ["read", "read"]},
                {"expires_in_days": 0}, {"expires_in_days": 3651}):
        resp = await client.post("/keys", headers=basic("wendy"), json=bad)
        assert resp.status == 422, bad


async def test_a_key_cannot_make_a_broader_or_longer_lived_key(client: Client) -> None:
    await sign_up(client, "xena")
    read_only = await key_with(client, "xena", ["read"])
    resp = await client.post("/keys", headers=bearer(read_only), json={"scopes": ["read"]})
    assert resp.status == 403
    assert (await resp.json())["error"]["details"] == {"missing_scope": "keys"}

    keeper = await key_with(client, "xena", ["read", "keys"], expires_in_days=2)
    resp = await client.post("/keys", headers=bearer(keeper), json={"scopes": ["upload"]})
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "missing_scope" and error["details"] == {"missing_scope": "upload"}
    assert "`upload`" in error["message"]

    # Without scopes asked for, the new key gets the maker's; never a longer life than its.
    resp = await client.post("/keys", headers=bearer(keeper),
                             json={"name": "child", "expires_in_days": 365})
    assert resp.status == 201, await resp.text()
    child = await resp.json()
    assert child["scopes"] == ["read", "keys"]
    listed = (await (await client.get("/keys", headers=bearer(keeper))).json())["keys"]
    maker = next(k for k in listed if keeper.startswith(k["prefix"]))
    assert child["expires_at"] == maker["expires_at"]
    resp = await client.post("/keys", headers=bearer(keeper),
                             json={"scopes": ["read"], "expires_in_days": 1})
    assert (await resp.json())["expires_at"] < maker["expires_at"]  # shorter is fine

    # No operation changes a key's scopes.
    resp = await client.patch(f"/keys/{maker['id']}", headers=bearer(keeper),
                              json={"scopes": list(SCOPES)})
    assert resp.status == 405


async def test_a_revoked_key_is_refused_at_once_even_while_in_use(client: Client) -> None:
    first = (await sign_up(client, "yann"))["api_key"]
    busy = await key_with(client, "yann", ["read"])
    listed = (await (await client.get("/keys", headers=bearer(first))).json())["keys"]
    busy_id = next(k["id"] for k in listed if busy.startswith(k["prefix"]))

    async def use() -> int:
        return (await client.get("/images", headers=bearer(busy))).status

    uses = [asyncio.create_task(use()) for _ in range(20)]
    revoked = await client.delete(f"/keys/{busy_id}", headers=bearer(first))
    assert revoked.status == 204
    statuses = await asyncio.gather(*uses)
    assert set(statuses) <= {200, 401}  # before or after, never an error
    after = await asyncio.gather(*(use() for _ in range(10)))
    assert after == [401] * 10


async def test_the_sign_in_key_of_the_web_page_has_the_scopes_it_uses() -> None:
    from pathlib import Path

    js = (Path(__file__).parents[1] / "server/web/js/account.js").read_text()
    assert 'KEY_SCOPES = ["read", "upload", "write", "keys", "share"]' in js
    assert "scopes: KEY_SCOPES" in js

