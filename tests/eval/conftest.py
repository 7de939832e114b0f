"""Evaluation fixtures: a registry of its own, feature splits of a learnable task, and two
adapters trained on it once per session - a good one, and a planted bad one that echoes PII."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from eval_data import BAD_DATE, GOOD_DATE, write_splits

from pria_ml.db import Database
from pria_ml.settings import Settings

BENCHMARKS = Path(__file__).parent / "benchmarks"
# The demo profile, shortened: the task is learnt in ~100 steps of 8 at lr 3e-3.
TRAIN_OVERRIDES = {
    "max_steps": 100,
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 8,
    "max_length": 256,
    "save_steps": 100,
    "logging_steps": 10,
    "warmup_steps": 2,
    "lora_dropout": 0.0,
}
# Small enough for a 2-core test machine; production keeps the settings' defaults.
EVAL_OVERRIDES = {
    "eval_max_samples": 24,
    "eval_latency_prompts": 8,
    "eval_latency_repeats": 2,
    "benchmarks_dir": BENCHMARKS,
}


@pytest.fixture(scope="session")
def eval_db(new_database) -> Iterator[Database]:
    """The registry the evaluation tests share on purpose (each test uses its own dates)."""
    with new_database("registry", "eval") as database:
        yield database


@pytest.fixture(scope="session")
def eval_settings(
    settings_for, eval_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    return settings_for(eval_db, tmp_path_factory.mktemp("eval-storage"), **EVAL_OVERRIDES)


def train_on(settings: Settings, date: datetime.date, planted: str | None = None):
    from pria_ml import train
    from pria_ml.data.storage import open_storage

    write_splits(open_storage(settings), date, planted=planted)
    return train.run(settings, date, train.PROFILES["demo"].with_overrides(**TRAIN_OVERRIDES))


@pytest.fixture(scope="session")
def good_candidate(eval_settings: Settings):
    """A candidate trained on the task (dataset date GOOD_DATE)."""
    return train_on(eval_settings, GOOD_DATE)


@pytest.fixture(scope="session")
def bad_candidate(eval_settings: Settings):
    """A candidate trained to append a made-up person's name and phone to every action."""
    return train_on(eval_settings, BAD_DATE, planted="pii")
