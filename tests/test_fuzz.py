"""Spec-driven fuzzing: schemathesis drives the served /openapi.json against a real server,
authenticated and anonymous, with valid and invalid data. No answer may be a 5xx, and every
answer must conform to the documented schema (status, content type, body)."""

from __future__ import annotations

import base64
import json
import os
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS as CHECKS_REGISTRY
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from server.imaging import sniff_format
from tests.images import make_image
from tests.test_cli import serve_own_database

# Every check schemathesis has (`--checks all`).
CHECKS = list(CHECKS_REGISTRY.get_all())
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
PASSWORD_MAX_BYTES = 72


def _unexpressible(case: Any) -> list[Any]:
    """Checks that cannot hold for this case, because the rule it meets is one JSON Schema
    cannot state (each is in the spec's descriptions instead):"""
    excluded = []
    query = case.query or {}
    body = case.body if isinstance(case.body, dict) else {}
    # A cursor is signed by the service: no generated string is a valid one.
    if "cursor" in query or "cursor" in body:
        excluded.append(positive_data_acceptance)
    # created_before must be later than created_after: a rule across two fields.
    if "created_after" in query and "created_before" in query:
        excluded.append(positive_data_acceptance)
    # A Range is satisfiable only within the file's size, which no schema can know (past it:
    # 416, documented).
    if any(name.lower() == "range" for name in (case.headers or {})):
        excluded.append(positive_data_acceptance)
    # Passwords are limited in UTF-8 bytes (bcrypt's 72); maxLength counts characters.
    password = body.get("password")
    if isinstance(password, str) and len(password.encode("utf-8", "surrogatepass")) > 72:
        excluded.append(positive_data_acceptance)
    # An album's `before` must be one of its images, and a title is trimmed before its
    # length counts (blank is 422): rules of the data and of text, not of the shapes.
    if body.get("before") is not None or str(body.get("title", "x")).strip() == "":
        excluded.append(positive_data_acceptance)
    # Schemathesis infers a link from a request's `image_ids` (adding to an album) to an
    # image's `id`: the whole list lands in the path, which no schema of ours can accept.
    if any(isinstance(v, list) for v in (case.path_parameters or {}).values()):
        excluded.append(positive_data_acceptance)
    # Multipart fields are text on the wire: a value "of another type" arrives as a string.
    if case.media_type == "multipart/form-data":
        excluded.append(negative_data_rejection)
        # "format: binary" cannot say "the bytes of an image": random bytes are refused (415).
        files = body.get("file", [])
        for data in files if isinstance(files, list) else [files]:
            if not isinstance(data, bytes) or sniff_format(data) is None:
                excluded.append(positive_data_acceptance)
        # `metadata` is JSON inside a string, one object per file part: a rule across parts.
        if "metadata" in body:
            excluded.append(positive_data_acceptance)
    return excluded


def _post_json(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        result: dict[str, Any] = json.loads(resp.read())
        return result


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, admin_dsn: str) -> Iterator[str]:
    # A database of its own: fuzzing leaves rows.
    with serve_own_database(tmp_path_factory.mktemp("fuzz"), admin_dsn) as url:
        yield url


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


@pytest.fixture(scope="module")
def basic(server: str) -> str:
    """HTTP Basic of an account of its own (POST /keys, DELETE /users/me need it)."""
    _post_json(f"{server}/users", {"username": "fuzzbasic", "password": "y" * 12})
    return "Basic " + base64.b64encode(b"fuzzbasic:" + b"y" * 12).decode()


def _headers(operation: Any, api_key: str, basic: str, authenticated: bool) -> dict[str, str]:
    if not authenticated:
        return {}
    if (operation.method.upper(), operation.path) in (("POST", "/keys"),
                                                      ("DELETE", "/users/me")):
        return {"Authorization": basic}
    return {"Authorization": f"Bearer {api_key}"}


def _needs_credentials(operation: Any) -> bool:
    """Every security requirement of the operation names a scheme (none is `{}`)."""
    security = operation.definition.raw.get("security")
    return bool(security) and all(security)


# Without credentials, an operation that needs them answers 401 whatever the input (the
# authentication middleware decides before anything reads the request; each case checks
# it, or the 429 of too many password attempts): a few examples prove that as well as many,
# which cost a third of the fuzz run.
UNAUTHENTICATED_EXAMPLES = max(5, EXAMPLES // 5)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.parametrize("authenticated", [True, False])
def test_no_5xx_and_every_answer_as_documented(
    server: str, api_key: str, basic: str, authenticated: bool, mode: GenerationMode
) -> None:
    failures: list[str] = []
    for operation in _operations(server):
        if (authenticated and operation.method.upper() == "DELETE"
                and operation.path == "/users/me"):
            continue  # with the right password it would delete the account the run uses
        headers = _headers(operation, api_key, basic, authenticated)
        refused = not authenticated and _needs_credentials(operation)

        @settings(max_examples=UNAUTHENTICATED_EXAMPLES if refused else EXAMPLES,
                  deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            # Called at once, inside this iteration: the loop variable is the current one.
            response = case.call(base_url=server, headers=headers)  # noqa: B023
            # 404/405: a generated path parameter that no longer names the route ("" or "/");
            # 429: the per-address limit on password attempts, which the wrong passwords reach
            # (schemathesis generates credentials of the documented schemes too); 400: the
            # HTTP parser's, before any middleware, for a generated header value with a control
            # character (an operation declaring headers, such as a thumbnail's Accept).
            assert not refused or response.status_code in (400, 401, 404, 405, 429), (  # noqa: B023
                response.status_code)
            case.validate_response(response, checks=CHECKS,
                                   excluded_checks=_unexpressible(case))

        try:
            run()
        except Unsatisfiable:
            continue  # nothing to make invalid: an operation without parameters or body
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)


def test_stateful_sequences(server: str, api_key: str) -> None:
    """Sequences of calls linked through their answers (ids from an upload into get, patch,
    delete...), every answer checked as above."""
    schema = schemathesis.openapi.from_url(f"{server}/openapi.json")
    bearer = {"Authorization": f"Bearer {api_key}"}

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": bearer}

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                              **kwargs: Any) -> None:
            case.validate_response(response, checks=CHECKS,
                                   excluded_checks=_unexpressible(case))

    # Which rules a step may take depends on the live answers (a link needs an earlier 201),
    # so Hypothesis can see the same choices take other rules and stop with
    # FlakyStrategyDefinition, with no check failed (seen once in a fresh clone's run; known
    # upstream: schemathesis#4132). Such a run is tried once more; a second one counts.
    for attempt in (1, 2):
        try:
            Machine.run(settings=settings(max_examples=max(10, EXAMPLES // 2), deadline=None,
                                          database=None, stateful_step_count=6,
                                          suppress_health_check=list(HealthCheck)))
            return
        except FlakyStrategyDefinition:
            if attempt == 2:
                raise
