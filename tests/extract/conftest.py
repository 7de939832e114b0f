"""Fixtures for extraction: settings on ``source_db`` (a source database of its own per test,
tests/conftest.py), seeded on demand."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from pria_ml.db import Database
from pria_ml.settings import Settings


@pytest.fixture
def source_settings(settings: Settings, source_db: Database) -> Settings:
    """``settings`` whose source database is ``source_db``; PII detection in-process (the
    worker pool starts processes, which the pool tests pay for on purpose, the others not)."""
    return settings.model_copy(
        update={"source_database_url": SecretStr(source_db.url), "extract_workers": 1}
    )
