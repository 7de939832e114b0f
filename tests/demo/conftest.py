"""Demo fixtures: a fresh migrated registry (tests/conftest.py) with a source database of its
own, empty, for the simulated traffic to fill."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from pria_ml.settings import Settings


@pytest.fixture
def demo_settings(registry_settings: Settings, new_database) -> Iterator[Settings]:
    """``settings`` (a fresh, migrated registry) reading and writing its own source tables."""
    with new_database("empty", "demo_source", role="source") as source:
        yield registry_settings.model_copy(update={"source_database_url": SecretStr(source.url)})
