"""Every mutation of tests/mutations.py still applies to today's code (no database needed).

A mutation whose `old` text has moved or changed is silently no longer a check: the code it
guarded can regress unseen. This fails first, naming the mutation to update.
"""

from __future__ import annotations

import re
from collections import Counter

import aiosql
import pytest

from tests.mutations import MUTATIONS, ROOT, Mutation, stale


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_mutation_applies(mutation: Mutation) -> None:
    why = stale(mutation)
    assert why is None, f"stale mutation {mutation.name!r}: {why} (update tests/mutations.py)"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_mutations_tests_exist(mutation: Mutation) -> None:
    assert mutation.tests, f"mutation {mutation.name!r} names no test"
    for test in mutation.tests:
        path, _, name = test.partition("::")
        assert (ROOT / path).is_file(), f"mutation {mutation.name!r}: no file {path}"
        name = name.split("[", 1)[0]
        if name:
            source = (ROOT / path).read_text()
            assert re.search(rf"^\s*(async )?def {re.escape(name)}\(", source, re.M), (
                f"mutation {mutation.name!r}: no test {name} in {path}")


def test_mutation_names_are_unique() -> None:
    twice = [name for name, n in Counter(m.name for m in MUTATIONS).items() if n > 1]
    assert not twice, f"mutations named twice: {twice}"


@pytest.mark.parametrize("mutation", MUTATIONS, ids=lambda m: m.name)
def test_the_mutant_still_loads(mutation: Mutation) -> None:
    """A mutant that does not even load (Python that does not compile, SQL that aiosql
    refuses) fails every test for that reason alone: it checks nothing of the promise."""
    if stale(mutation) is not None:
        pytest.skip("stale: test_the_mutation_applies names it")
    text = (ROOT / mutation.path).read_text().replace(mutation.old, mutation.new)
    if mutation.path.endswith(".py"):
        try:
            compile(text, mutation.path, "exec")
        except SyntaxError as exc:
            pytest.fail(f"mutant {mutation.name!r} does not compile: {exc}")
    elif mutation.path.startswith("sql/queries/") and mutation.path.endswith(".sql"):
        try:
            aiosql.from_str(text, "asyncpg")
        except aiosql.SQLParseException as exc:
            pytest.fail(f"mutant {mutation.name!r}: aiosql refuses {mutation.path}: {exc}")
