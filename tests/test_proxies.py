"""The client's address behind a load balancer (issue 25, item 5): forwarded headers believed
only from TRUSTED_PROXIES, the right-most untrusted address taken, and that address seen by
the per-address password limit and the access log; X-Request-ID kept only from a trusted
proxy.

The servers started as processes are reached from 127.0.0.1, which is the proxy when
TRUSTED_PROXIES=127.0.0.1 and a stranger otherwise. The in-process tests read which address
the password limit counted straight from its table.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict
from pytest_aiohttp import AiohttpClient

from server.app import create_app
from server.config import Config, ConfigError
from server.observability.proxies import MalformedForwarding, TrustedProxies, node
from tests.conftest import basic
from tests.raw_http import read_answer
from tests.test_cli import serve_own_database
from tests.test_operability import fetch, json_lines

Client = TestClient[web.Request, web.Application]
Headers = list[tuple[str, str]]
ID_RE = re.compile(r"[0-9a-f]{32}")


# --- a real server, reached as a stranger would --------------------------------------------


def guess(url: str, username: str, headers: dict[str, str] | None = None
          ) -> tuple[int, dict[str, str], dict[str, Any]]:
    """One wrong password for `username` (a password check: counted against the address)."""
    status, answer_headers, body = fetch(url + "/keys", "POST", b"{}", {
        "Content-Type": "application/json", **basic(username, "wrong password"),
        **(headers or {})})
    return status, answer_headers, json.loads(body)


def access_lines(log: Path, path: str) -> list[dict[str, Any]]:
    time.sleep(0.3)  # the access line follows the answer's last byte
    return [r for r in json_lines(log) if r["logger"] == "aiohttp.access" and r["path"] == path]


@pytest.fixture(scope="module")
def behind_a_proxy(tmp_path_factory: pytest.TempPathFactory,
                   admin_dsn: str) -> Iterator[tuple[str, Path]]:
    """A server whose proxy is 127.0.0.1, allowing two password checks per address a minute."""
    tmp = tmp_path_factory.mktemp("behind-a-proxy")
    with serve_own_database(tmp, admin_dsn, TRUSTED_PROXIES="127.0.0.1",
                            PASSWORD_ATTEMPTS="2", LOG_FORMAT="json") as url:
        yield url, tmp / "server.log"


def test_each_forwarded_client_has_its_own_quota_and_its_own_log_lines(
    behind_a_proxy: tuple[str, Path]
) -> None:
    """Bugs caught: forwarded headers ignored from the trusted proxy, or resolved but not
    handed on (everyone behind the proxy shares its quota: the second client's first check
    is refused); the access log naming the proxy instead of the client."""
    url, log = behind_a_proxy
    ada, bob = {"X-Forwarded-For": "203.0.113.7"}, {"X-Forwarded-For": "203.0.113.8"}
    for headers in (ada, ada, bob, bob):
        status, _, body = guess(url, "quota", headers)
        assert status == 401, body
    for headers in (ada, bob):
        status, answer_headers, body = guess(url, "quota", headers)
        assert status == 429 and body["error"]["code"] == "too_many_requests", body
        assert 1 <= int(answer_headers["Retry-After"]) <= 60
    # The proxy's own requests (no header: a health check, say) are the proxy's.
    assert guess(url, "quota")[0] == 401

    lines = access_lines(log, "/keys")
    by_client = {c: [r["status"] for r in lines if r["client"] == c]
                 for c in ("203.0.113.7", "203.0.113.8", "127.0.0.1")}
    assert by_client == {"203.0.113.7": [401, 401, 429], "203.0.113.8": [401, 401, 429],
                         "127.0.0.1": [401]}, lines


def test_a_trusted_proxys_request_id_is_kept_and_a_bad_one_replaced(
    behind_a_proxy: tuple[str, Path]
) -> None:
    """Bug caught: nginx's $request_id not carried through (its lines and ours cannot be
    joined), or an id that cannot be logged as it is echoed anyway."""
    url, log = behind_a_proxy
    given = "4f1c0e9a2b7d4e6f8a9b0c1d2e3f4a5b"
    status, headers, body = guess(url, "ids", {"X-Forwarded-For": "203.0.113.20",
                                               "X-Request-ID": given})
    assert status == 401 and headers["X-Request-ID"] == given
    assert body["error"]["request_id"] == given
    (line,) = [r for r in access_lines(log, "/keys") if r.get("request_id") == given]
    assert line["client"] == "203.0.113.20" and line["status"] == 401

    status, headers, body = guess(url, "ids", {"X-Forwarded-For": "203.0.113.20",
                                               "X-Request-ID": "two words"})
    assert status == 401 and ID_RE.fullmatch(headers["X-Request-ID"])
    assert body["error"]["request_id"] == headers["X-Request-ID"]


def test_a_malformed_header_from_the_proxy_is_a_json_400_naming_the_request(
    behind_a_proxy: tuple[str, Path]
) -> None:
    """Bug caught: the parser's error escaping as aiohttp's text page or as a 500, or the
    request going on as if it came from the proxy."""
    url, log = behind_a_proxy
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /keys HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"X-Forwarded-For: 203.0.113.30, not-an-address\r\n"
                     b"Authorization: Basic " + base64.b64encode(b"malformed:wrong password")
                     + b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        status, headers, body = read_answer(sock)
        assert status == 400, body
        assert headers["content-type"].startswith("application/json")
        error = json.loads(body)["error"]
        assert error["code"] == "bad_request" and error["details"] == {
            "header": "X-Forwarded-For"}
        assert error["request_id"] == headers["x-request-id"]
        # The connection stays usable: this was an answer, not a protocol error.
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_answer(sock)[0] == 200
    (line,) = [r for r in access_lines(log, "/keys")
               if r.get("request_id") == error["request_id"]]
    assert line["status"] == 400 and line["client"] == "127.0.0.1"
    assert any(r["level"] == "WARNING" and "not-an-address" in r["message"]
               and r.get("request_id") == error["request_id"] for r in json_lines(log))


@pytest.mark.parametrize("trusted", ["", "10.0.0.0/8"], ids=["unset", "another-network"])
def test_a_strangers_forwarded_headers_and_request_id_are_ignored(
    tmp_path: Path, admin_dsn: str, trusted: str
) -> None:
    """Bug caught: forwarded headers believed from any peer (each spoofed address would get a
    quota of its own, and the logs would name whoever the stranger says); a stranger's
    X-Request-ID echoed (its requests could pass for another's in the logs)."""
    with serve_own_database(tmp_path, admin_dsn, TRUSTED_PROXIES=trusted,
                            PASSWORD_ATTEMPTS="2", LOG_FORMAT="json") as url:
        spoofs = [{"X-Forwarded-For": "198.51.100.1"}, {"X-Forwarded-For": "10.0.0.9"},
                  {"Forwarded": "for=198.51.100.3", "X-Forwarded-For": "198.51.100.3"},
                  {"X-Forwarded-For": "not even an address"}]
        statuses = [guess(url, "spoofer", {**spoof, "X-Request-ID": f"forged-{n}"})
                    for n, spoof in enumerate(spoofs)]
        assert [s for s, _, _ in statuses] == [401, 401, 429, 429], statuses
        for n, (_, headers, body) in enumerate(statuses):
            assert headers["X-Request-ID"] != f"forged-{n}"
            assert ID_RE.fullmatch(headers["X-Request-ID"])
            assert body["error"]["request_id"] == headers["X-Request-ID"]
        lines = access_lines(tmp_path / "server.log", "/keys")
    assert [r["client"] for r in lines] == ["127.0.0.1"] * 4
    assert not any(r["request_id"].startswith("forged") for r in lines)


# --- which address, for every shape of header ----------------------------------------------


async def counted_address(config: Config, aiohttp_client: AiohttpClient, headers: Headers,
                          trusted: str = "127.0.0.1", header: str = "x-forwarded-for") -> str:
    """The address one password check was counted against, as the limit's table has it."""
    app = create_app(replace(config, trusted_proxies=tuple(trusted.split(",")),
                             forwarded_header=header))
    client = await aiohttp_client(app)
    resp = await client.post("/keys", json={}, headers=CIMultiDict(
        [*basic("someone", "wrong password").items(), *headers]))
    assert resp.status == 401, await resp.text()
    assert config.database_url is not None
    conn = await asyncpg.connect(config.database_url)
    try:
        subjects = [r["subject"] for r in await conn.fetch(
            "select subject from password_attempts where subject like 'address:%'")]
    finally:
        await conn.close()
    assert len(subjects) == 1, subjects
    return str(subjects[0]).removeprefix("address:")


XFF = "X-Forwarded-For"


@pytest.mark.parametrize(
    ("trusted", "headers", "client"),
    [
        # The right-most address that is not a trusted proxy.
        ("127.0.0.1,10.0.0.0/8", [(XFF, "198.51.100.1, 10.0.0.5")], "198.51.100.1"),
        ("127.0.0.1", [(XFF, "198.51.100.1, 10.0.0.5")], "10.0.0.5"),
        ("127.0.0.1", [(XFF, "6.6.6.6, 198.51.100.2")], "198.51.100.2"),
        # Every hop trusted: the furthest one.
        ("127.0.0.1,10.0.0.0/8", [(XFF, "10.0.0.7,10.0.0.5")], "10.0.0.7"),
        # What the client wrote on the left is never read, junk included.
        ("127.0.0.1", [(XFF, "unknown, not an address,, 198.51.100.9")], "198.51.100.9"),
        # A second line is the list's continuation (HAProxy adds one instead of appending).
        ("127.0.0.1", [(XFF, "6.6.6.6"), (XFF, "198.51.100.10")], "198.51.100.10"),
        ("127.0.0.1", [(XFF, "2001:db8::7")], "2001:db8::7"),
        ("127.0.0.1", [(XFF, "198.51.100.11:4711")], "198.51.100.11"),
        ("127.0.0.1", [(XFF, "[2001:db8::8]:4711")], "2001:db8::8"),
        ("127.0.0.1", [(XFF, "::ffff:198.51.100.12")], "198.51.100.12"),
        # No header (or an empty one): the proxy's own request.
        ("127.0.0.1", [], "127.0.0.1"),
        ("127.0.0.1", [(XFF, " ")], "127.0.0.1"),
        # Forwarded is not the header this proxy writes: passed through from the client.
        ("127.0.0.1", [("Forwarded", "for=6.6.6.6")], "127.0.0.1"),
        # The trusted list is a list of networks.
        ("10.0.0.0/8,127.0.0.0/8", [(XFF, "198.51.100.13")], "198.51.100.13"),
    ],
)
async def test_x_forwarded_for_names_the_right_most_untrusted_address(
    config: Config, aiohttp_client: AiohttpClient, trusted: str, headers: Headers,
    client: str
) -> None:
    """Bugs caught: the left-most address taken (the client's own claim), the first trusted
    hop taken for the client, a second header line refused or dropped."""
    assert await counted_address(config, aiohttp_client, headers, trusted) == client


FWD = "Forwarded"


@pytest.mark.parametrize(
    ("trusted", "headers", "client"),
    [
        # RFC 7239's own examples.
        ("127.0.0.1", [(FWD, 'for="_gazonk"')], "_gazonk"),
        ("127.0.0.1", [(FWD, 'For="[2001:db8:cafe::17]:4711"')], "2001:db8:cafe::17"),
        ("127.0.0.1", [(FWD, "for=192.0.2.60;proto=http;by=203.0.113.43")], "192.0.2.60"),
        ("127.0.0.1", [(FWD, "for=192.0.2.43, for=198.51.100.17")], "198.51.100.17"),
        ("127.0.0.1", [(FWD, 'for="[2001:db8::1]"')], "2001:db8::1"),
        ("127.0.0.1", [(FWD, 'for="192.0.2.44:47011"')], "192.0.2.44"),
        ("127.0.0.1", [(FWD, "for=unknown")], "unknown"),
        ("127.0.0.1,10.0.0.0/8", [(FWD, 'for=198.51.100.1, for="10.0.0.5"')],
         "198.51.100.1"),
        ("127.0.0.1", [(FWD, "for=198.51.100.1, for=10.0.0.5")], "10.0.0.5"),
        # Two lines: one list.
        ("127.0.0.1", [(FWD, "for=6.6.6.6"), (FWD, "for=192.0.2.45;proto=https")],
         "192.0.2.45"),
        # X-Forwarded-For is not the header this proxy writes.
        ("127.0.0.1", [(XFF, "6.6.6.6"), (FWD, "for=192.0.2.46")], "192.0.2.46"),
        ("127.0.0.1", [(XFF, "6.6.6.6")], "127.0.0.1"),
    ],
)
async def test_forwarded_names_the_right_most_untrusted_node(
    config: Config, aiohttp_client: AiohttpClient, trusted: str, headers: Headers,
    client: str
) -> None:
    """Bugs caught: a quoted IPv6 node with its port taken for an address as it is (a 500),
    the left-most element believed, X-Forwarded-For believed in Forwarded's place."""
    assert await counted_address(config, aiohttp_client, headers, trusted,
                                 "forwarded") == client


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-forwarded-for", "not-an-address"),
        ("x-forwarded-for", "198.51.100.1, 300.1.2.3"),
        ("x-forwarded-for", "198.51.100.1:port"),
        ("x-forwarded-for", "[198.51.100.1]"),
        ("x-forwarded-for", "2001:db8::1]:80"),
        ("forwarded", "for="),
        ("forwarded", "proto=https"),
        ("forwarded", "for=garbage"),
        ("forwarded", 'for="[2001:db8::1"'),
        ("forwarded", 'for="[2001:db8::1]:http"'),
        # A client's unterminated quote swallowing what the proxy appended: the last element
        # then has no for=, and the client's own claim must not be taken instead.
        ("forwarded", 'for=6.6.6.6, x=", for="[2001:db8::9]"'),
    ],
)
async def test_a_malformed_header_from_the_proxy_is_400_and_counts_nothing(
    config: Config, aiohttp_client: AiohttpClient, header: str, value: str
) -> None:
    """Bugs caught: junk in the proxy's part of the chain skipped (the next address to its
    left, the client's own claim, would be believed), or answered with a 500."""
    app = create_app(replace(config, trusted_proxies=("127.0.0.1",), forwarded_header=header))
    client = await aiohttp_client(app)
    name = "X-Forwarded-For" if header == "x-forwarded-for" else "Forwarded"
    resp = await client.post("/keys", json={}, headers={
        **basic("someone", "wrong password"), name: value})
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "bad_request" and error["details"] == {"header": name}
    assert error["request_id"] == resp.headers["X-Request-ID"]
    assert config.database_url is not None
    conn = await asyncpg.connect(config.database_url)
    try:
        assert await conn.fetchval("select count(*) from password_attempts") == 0
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("value", "parsed"),
    [("192.0.2.43", "192.0.2.43"), ("192.0.2.43:47011", "192.0.2.43"),
     ("[2001:db8::1]:4711", "2001:db8::1"), ("2001:DB8::1", "2001:db8::1"),
     ("[2001:db8::1]:_port", "2001:db8::1"), ("_hidden", "_hidden"), ("UNKNOWN", "unknown"),
     ("[::ffff:192.0.2.1]", "192.0.2.1")],
)
def test_nodes_are_read_without_their_port(value: str, parsed: str) -> None:
    assert node(value) == parsed


@pytest.mark.parametrize("value", [None, "", "_", "[]", "[::1", "[::1]x", "[::1]:",
                                   "1.2.3.4:123456", "1.2.3", "a.b.c.d", "[1.2.3.4]:80"])
def test_anything_else_is_no_node(value: str | None) -> None:
    with pytest.raises(MalformedForwarding):
        node(value)


def test_the_settings() -> None:
    env = {"TRUSTED_PROXIES": "172.30.0.10, 10.0.0.0/8", "FORWARDED_HEADER": "Forwarded"}
    config = Config.from_env(env)
    assert config.trusted_proxies == ("172.30.0.10", "10.0.0.0/8")
    assert config.forwarded_header == "forwarded"
    assert Config.from_env({}).forwarded_header == "x-forwarded-for"
    assert Config.from_env({}).trusted_proxies == ()
    with pytest.raises(ConfigError, match="FORWARDED_HEADER"):
        Config.from_env({"FORWARDED_HEADER": "X-Real-IP"})
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        Config.from_env({"TRUSTED_PROXIES": "nginx"})
    trusted = TrustedProxies(("10.0.0.0/8",))
    assert trusted.trusts("10.1.2.3") and trusted.trusts("::ffff:10.1.2.3")
    assert not trusted.trusts("127.0.0.1") and not trusted.trusts(None)
    assert not TrustedProxies().trusts("127.0.0.1")
