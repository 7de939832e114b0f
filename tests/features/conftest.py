"""Feature-pipeline fixtures: one SparkSession for the whole run and temp storage."""

from __future__ import annotations

from pathlib import Path

import pytest
from features_raw import storage_settings

from pria_ml.settings import Settings


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory):
    """The one SparkSession of the test run (local[2], as on the CI machine)."""
    from pria_ml.data.spark import session

    home = tmp_path_factory.mktemp("spark-home")
    spark = session(Settings(home=home, spark_master="local[2]"), app_name="pria-ml tests")
    yield spark
    spark.stop()


@pytest.fixture
def feature_settings(tmp_path: Path) -> Settings:
    """Settings with a fresh local storage root (no database needed by this stage)."""
    return storage_settings(tmp_path)
