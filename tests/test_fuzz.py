"""Spec-driven fuzzing: schemathesis drives the served /openapi.json against a real server,
authenticated and anonymous, with valid and invalid data. No answer may be a 5xx, and every
answer must conform to the documented schema (status, content type, body)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import _migrated_database
from tests.databases import drop_database
from tests.images import make_image
from tests.test_cli import serve

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, admin_dsn: str) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("fuzz")
    database_url = asyncio.run(_migrated_database(admin_dsn))  # its own: fuzzing leaves rows
    env = {**os.environ, "DATABASE_URL": database_url, "DATA_DIR": str(tmp),
           "STORAGE_URL": (tmp / "objects").as_uri(), "BCRYPT_COST": "4"}
    try:
        with serve(env, Path(tmp / "server.log")) as url:
            yield url
    finally:
        asyncio.run(drop_database(admin_dsn, database_url))


@pytest.fixture(scope="module")
def api_key(server: str) -> str:
    key = str(_post_json(f"{server}/users", {"username": "fuzzer", "password": "x" * 12})
              ["api_key"])
    boundary = "fuzzb0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"seed.png\"\r\n\r\n").encode() + make_image("PNG", seed=1) + (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"visibility\"\r\n\r\n"
        f"public\r\n--{boundary}--\r\n").encode()
    request = urllib.request.Request(
        f"{server}/images", data=body, method="POST",
        headers={"Authorization": f"Bearer {key}",
                 "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 201
    return key


def _operations(server: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the spec can be fuzzed
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("authenticated", [True, False])
def test_no_5xx_and_every_answer_as_documented(
    server: str, api_key: str, authenticated: bool, mode: GenerationMode
) -> None:
    headers = {"Authorization": f"Bearer {api_key}"} if authenticated else {}
    failures: list[str] = []
    for operation in _operations(server):
        if operation.method.upper() == "DELETE" and operation.path == "/users/me":
            continue  # would delete the fuzzing account (Basic auth is never sent anyway)

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(base_url=server, headers=headers)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to make invalid: an operation without parameters or body
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
