"""Training fixtures: feature splits of a learnable synthetic task, written to the contract.

The task: each of 16 merchants belongs to one of 9 expense categories; the prompt (system +
user + tool messages) names the merchant among noise, the completion is the category action.
A rank-64 adapter on the random-init tiny model learns it in a few dozen steps at lr 1e-3.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from train_task import DATE, TEST_OVERRIDES, write_features

from pria_ml.db import Database
from pria_ml.settings import Settings


@pytest.fixture(scope="session")
def train_db(new_database) -> Iterator[Database]:
    """A registry database shared by the training tests (each test uses its own dates)."""
    with new_database("registry", "train") as database:
        yield database


@pytest.fixture(scope="session")
def train_settings(
    settings_for, train_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Settings with no PRIA_BASE_MODEL: the tiny model is built on first use under home."""
    return settings_for(train_db, tmp_path_factory.mktemp("train-storage"))


@pytest.fixture(scope="session")
def trained(train_settings: Settings):
    """One uninterrupted training run on the task (date DATE), shared by several tests."""
    from pria_ml import train
    from pria_ml.data.storage import open_storage

    write_features(open_storage(train_settings))
    config = train.PROFILES["demo"].with_overrides(**TEST_OVERRIDES)
    return train.run(train_settings, DATE, config)
