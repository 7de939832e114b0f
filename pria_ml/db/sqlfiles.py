"""Access to the SQL files under ``sql/`` (migrations, extraction queries, registry functions).

In a checkout (and an editable install) they are read from the top-level ``sql/`` directory; a
built wheel ships the same files as the ``pria_ml.sql`` package (see pyproject.toml).
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path


@cache
def sql_dir() -> Path:
    checkout = Path(__file__).resolve().parents[2] / "sql"
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files("pria_ml.sql")))


def read_sql(relative: str) -> str:
    """The text of ``sql/<relative>``."""
    return (sql_dir() / relative).read_text(encoding="utf-8")
