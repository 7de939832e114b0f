"""The pgTAP suite of the registry's SQL functions and invariants, run on the embedded server.

Each ``pria_test.test_*`` function in pgtap/registry_test.sql is one pytest case, run with
pgTAP's ``runtests()`` (which rolls every test back) against a database migrated once.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from pria_ml.db import Database

SUITE = Path(__file__).parent / "pgtap" / "registry_test.sql"
TESTS = re.findall(r"FUNCTION pria_test\.(test_\w+)\(", SUITE.read_text())


@pytest.fixture(scope="module")
def pgtap_db(new_database, pgtap_installed: None) -> Iterator[Database]:
    with new_database("registry", "pgtap") as db:
        with db.connect() as conn:
            conn.execute("CREATE EXTENSION pgtap")
            conn.execute(SUITE.read_text())
        yield db


def test_suite_is_not_empty() -> None:
    assert len(TESTS) >= 15


@pytest.mark.parametrize("name", TESTS)
def test_pgtap(pgtap_db: Database, name: str) -> None:
    with pgtap_db.connect() as conn:
        tap = [
            row[0]
            for row in conn.execute(
                "SELECT * FROM runtests('pria_test'::name, %s)", (f"^{name}$",)
            ).fetchall()
        ]
        conn.rollback()
    report = "\n".join(tap)
    assert any(re.match(r"\s+ok \d+", line) for line in tap), report
    assert not any(re.match(r"\s*not ok", line) for line in tap), report
    assert not any("# Looks like" in line for line in tap), report
