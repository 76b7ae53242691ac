"""Reintroduce, one at a time, bugs that once passed the whole suite, and check that the
tests holding the promise they break now fail (issue 17).

    DATABASE_URL=postgresql://... .venv/bin/python -m tests.mutations [NAME ...]

Each mutation is applied to a copy of the tracked files in a temporary folder (the working
tree is never touched), and only the tests named for it run there. The script prints one
line per mutation and exits non-zero if any mutation survived.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTATIONS = (
    Mutation(
        "visibility removed from the frequent-word search plan", "sql/queries/search.sql",
        "    where i.search_doc @@ image_search_query(:q, :head, :last_word)\n"
        "      and (i.visibility = 'public' or i.owner_id = :viewer_id)\n",
        "    where i.search_doc @@ image_search_query(:q, :head, :last_word)\n",
        ("tests/test_guarantees.py::test_every_text_search_plan_keeps_others_private_images_out",),
    ),
    Mutation(
        "XMP kept in the location-free copy", "server/imaging/privacy.py",
        '_JPEG_DISPLAY = ((0xE0, b"JFIF\\x00"), ',
        '_JPEG_DISPLAY = ((0xE1, b"http://ns.adobe.com/xap/1.0/"), (0xE0, b"JFIF\\x00"), ',
        ("tests/test_privacy.py",),
    ),
    Mutation(
        "file size checked only after the file was stored", "server/uploads.py",
        "            if size > limits.max_file_bytes:\n                raise PayloadTooLarge(\n"
        '                    f"{label} is larger than {limits.max_file_bytes} bytes",',
        "            if size > limits.max_file_bytes and data is None:\n"
        "                raise PayloadTooLarge(\n"
        '                    f"{label} is larger than {limits.max_file_bytes} bytes",',
        ("tests/test_guarantees.py::test_a_file_is_cut_off_at_the_limit_while_it_streams",),
    ),
    Mutation(
        "lockout window of 60 s instead of 15 min", "server/services/logins.py",
        "WINDOW_SECONDS = 15 * 60.0", "WINDOW_SECONDS = 60.0",
        ("tests/test_guarantees.py::test_the_lockout_lasts_fifteen_minutes",),
    ),
    Mutation(
        "key lookup made non-indexable", "sql/queries/keys.sql",
        "where k.digest = :digest\n", "where k.digest::text = :digest::text\n",
        ("tests/test_guarantees.py::test_the_apps_own_key_lookup_uses_its_index",),
    ),
    Mutation(
        "JPEG reduced-scale decode removed", "server/imaging/decoding.py",
        "        im.draft(im.mode, (WORKING_SHORT_SIDE, WORKING_SHORT_SIDE))\n",
        "        pass\n",
        ("tests/test_guarantees.py::test_jpeg_is_decoded_at_reduced_scale",
         "tests/test_hostile.py::test_memory_stays_bounded"),
    ),
    Mutation(
        "S3 outage answered without Retry-After", "server/middlewares.py",
        '                              "Object storage is unavailable; retry later",\n'
        '                              headers={"Retry-After": "5"})',
        '                              "Object storage is unavailable; retry later")',
        ("tests/test_faults.py::test_s3_outage_is_503_and_recovers",),
    ),
    Mutation(
        "clean-up skipped when the database fails after objects were stored",
        "server/handlers/images.py",
        "    except BaseException:\n        # Also on cancellation",
        "    except (ConnectionRefusedError, OSError, asyncpg.PostgresConnectionError,\n"
        "            asyncpg.InterfaceError):\n        raise\n"
        "    except BaseException:\n        # Also on cancellation",
        ("tests/test_faults.py::"
         "test_database_failing_after_the_objects_are_stored_leaves_no_object",),
    ),
    Mutation(
        "rare words routed to the bounded recent plan", "server/services/search.py",
        '    if await estimate(in_head=False) <= EXACT_RANKING_LIMIT:\n        return "exact"',
        '    if await estimate(in_head=False) <= EXACT_RANKING_LIMIT:\n        return "recent"',
        ("tests/test_guarantees.py::test_every_text_search_plan_keeps_others_private_images_out",
         "tests/test_guarantees.py::test_a_rare_word_finds_every_match"),
    ),
    Mutation(
        "an Idempotency-Key replayed whatever the request", "server/services/idempotency.py",
        "        if request_fingerprint != self.stored_fingerprint:\n",
        "        if False:\n",
        ("tests/test_idempotency.py::test_the_same_key_with_another_request_is_422",),
    ),
    Mutation(
        "thumbnails left behind when their image is deleted", "server/services/images.py",
        '        keys.extend(row["thumbnail_keys"])\n', "",
        ("tests/test_thumbnails.py::test_deletion_removes_every_thumbnail",),
    ),
    Mutation(
        "others' files counted as yours by the import lookup", "sql/queries/idempotency.sql",
        "where owner_id = :owner_id and sha256 = any(:digests::bytea[])\n",
        "where sha256 = any(:digests::bytea[])\n",
        ("tests/test_idempotency.py::test_known_images_are_the_callers_own",),
    ),
    Mutation(
        "JSON body deadline removed", "server/request_body.py",
        "        left = limits.deadline - (time.monotonic() - started)\n",
        '        left = float("inf")\n',
        ("tests/test_slow_bodies.py",),
    ),
    Mutation(
        "JSON body idle timeout removed", "server/request_body.py",
        "            async with asyncio.timeout(min(left, limits.idle_timeout)):\n",
        "            async with asyncio.timeout(left):\n",
        ("tests/test_slow_clients.py::test_a_json_body_that_stalls_is_cut_off",),
    ),
    Mutation(
        "JSON body minimum rate removed", "server/request_body.py",
        "        pace.check(limits.min_rate, limits.idle_timeout)\n", "",
        ("tests/test_slow_clients.py::"
         "test_a_json_body_slower_than_the_minimum_rate_is_cut_off",),
    ),
    Mutation(
        "a 408 lingers on its connection", "server/protocol.py",
        "        if sent.status == 408 and not reset:\n", "        if False:\n",
        ("tests/test_slow_bodies.py::test_a_trickled_json_body_is_cut_off_at_the_deadline",),
    ),
    Mutation(
        "keep-alive requests accepted after stop", "server/lifecycle.py",
        "    in_flight.drain()  # and new requests on open ones: 503 + Connection: close\n", "",
        ("tests/test_shutdown.py::test_after_sigterm_kept_alive_connections_get_no_new_work",),
    ),
    Mutation(
        "answers after stop keep their connection alive", "server/middlewares.py",
        "    if request.app[IN_FLIGHT].draining:\n        response.force_close()",
        "    if False:\n        response.force_close()",
        ("tests/test_shutdown.py::test_after_sigterm_kept_alive_connections_get_no_new_work",),
    ),
    Mutation(
        "worker exit 0 not replaced", "server/workers.py",
        "                if code is None or self.stopping:\n",
        "                if code is None or code == 0 or self.stopping:\n",
        ("tests/test_workers.py::test_a_worker_that_exits_with_status_0_is_replaced",),
    ),
)


def _copy_tree(dest: Path) -> None:
    """The tracked files; sql/ also as the package server.sql, as a wheel installs it (the
    editable install would otherwise serve the working tree's SQL)."""
    tracked = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    for name in tracked:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    shutil.copytree(dest / "sql", dest / "server" / "sql")
    for package in ("", "migrations", "queries"):
        (dest / "server" / "sql" / package / "__init__.py").touch()


def _apply(dest: Path, mutation: Mutation) -> None:
    paths = [dest / mutation.path]
    if mutation.path.startswith("sql/"):
        paths.append(dest / "server" / mutation.path)
    for path in paths:
        text = path.read_text()
        if text.count(mutation.old) != 1:
            raise SystemExit(f"{mutation.name}: the code to mutate is gone from {mutation.path}"
                             " (update tests/mutations.py)")
        path.write_text(text.replace(mutation.old, mutation.new))
    if mutation.path == "server/handlers/images.py":  # the mutant names asyncpg
        path = dest / mutation.path
        future = "from __future__ import annotations\n"
        path.write_text(path.read_text().replace(future, future + "import asyncpg\n", 1))


def run(mutation: Mutation | None, tests: tuple[str, ...]) -> tuple[bool, float]:
    """Whether the tests failed on a copy with the mutation applied (None: unmutated)."""
    with tempfile.TemporaryDirectory(prefix="imagerepo-mutant-") as tmp:
        dest = Path(tmp)
        _copy_tree(dest)
        if mutation is not None:
            _apply(dest, mutation)
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             "-o", "addopts=", *tests],
            cwd=dest, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True, text=True, timeout=900)
        if mutation is None and result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-2000:])
        return result.returncode != 0, time.monotonic() - started


def main(names: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not names or any(n in m.name for n in names)]
    every_test = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
    failed, seconds = run(None, every_test)  # the control: they pass on the code as it is
    if failed:
        print("the tests fail without any mutation: nothing to learn")
        return 2
    print(f"control   {seconds:5.1f} s  the tests pass on the unmutated copy", flush=True)
    survived = 0
    for mutation in chosen:
        caught, seconds = run(mutation, mutation.tests)
        survived += not caught
        verdict = "caught" if caught else "SURVIVED"
        print(f"{verdict:<9} {seconds:5.1f} s  {mutation.name}  ({', '.join(mutation.tests)})",
              flush=True)
    print(f"{len(chosen) - survived} of {len(chosen)} mutations caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
