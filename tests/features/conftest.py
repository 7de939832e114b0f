"""Feature-pipeline fixtures: temp storage (the run's one SparkSession, ``spark``, is in
tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from features_raw import storage_settings

from pria_ml.settings import Settings


@pytest.fixture
def feature_settings(tmp_path: Path) -> Settings:
    """Settings with a fresh local storage root (no database needed by this stage)."""
    return storage_settings(tmp_path)
