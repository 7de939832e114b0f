"""Fixtures for extraction: a source database of its own per test, seeded on demand."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from pydantic import SecretStr

from pria_ml.db import Database, embedded_url
from pria_ml.seed import apply_schema
from pria_ml.settings import Settings


@pytest.fixture
def source_db(pg_home) -> Iterator[Database]:
    """An empty source database (the read replica's stand-in) with the source schema."""
    admin = embedded_url(pg_home)
    name = f"source_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(role="source", url=admin.replace("/pria?", f"/{name}?"), embedded=False)
    apply_schema(database)
    yield database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def source_settings(settings: Settings, source_db: Database) -> Settings:
    """``settings`` whose source database is ``source_db``."""
    return settings.model_copy(update={"source_database_url": SecretStr(source_db.url)})
