"""Fixtures for extraction: a source database of its own per test, seeded on demand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from pria_ml.db import Database
from pria_ml.settings import Settings
from pria_ml.world.seed import apply_schema


@pytest.fixture
def source_db(scratch_database) -> Iterator[Database]:
    """An empty source database (the read replica's stand-in) with the source schema."""
    with scratch_database("source", "source") as database:
        apply_schema(database)
        yield database


@pytest.fixture
def source_settings(settings: Settings, source_db: Database) -> Settings:
    """``settings`` whose source database is ``source_db``; PII detection in-process (the
    worker pool starts processes, which the pool tests pay for on purpose, the others not)."""
    return settings.model_copy(
        update={"source_database_url": SecretStr(source_db.url), "extract_workers": 1}
    )
