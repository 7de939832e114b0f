"""`pria-ml train --date D --retrain`: a date trained before gets a new attempt beside the old
one (both immutable, both registered, the attempt number in the key), and everything that asks
for "the adapter of D" gets the newest attempt. One real two-step training on the tiny model;
attempt 1 is seeded as a registered file."""

from __future__ import annotations

import datetime
import hashlib
import json

import pytest
from train_task import TEST_OVERRIDES, write_features
from typer.testing import CliRunner

from pria_ml import evaluate, registry, train
from pria_ml.cli import app
from pria_ml.data.contract import adapter_keys, features_key
from pria_ml.data.storage import open_storage
from pria_ml.db import database

DATE = datetime.date(2026, 10, 7)
TWO_STEPS = ["--profile", "demo", "--max-steps", "2", "--max-length", "256"]


def train_split_sha256(storage) -> str:
    manifest = json.loads(storage.read_bytes(features_key(DATE, "manifest.json")))
    return manifest["files"]["train.parquet"]["sha256"]


@pytest.fixture
def attempt_1(train_settings):
    """Attempt 1 of DATE, registered with the train split of the features it was trained on."""
    storage = open_storage(train_settings)
    write_features(storage, DATE, train=32, val=0)
    weights_key, config_key = adapter_keys(DATE)
    stored = storage.write_bytes(weights_key, b"attempt 1 weights")
    storage.write_bytes(config_key, b"{}")
    adapter_id = registry.register_candidate(
        database(train_settings),
        dataset_date=DATE,
        artifact_uri=stored.uri,
        artifact_sha256=hashlib.sha256(b"attempt 1 weights").hexdigest(),
        base_model="tiny-mistral",
        metrics={"dataset": {"train_sha256": train_split_sha256(storage)}},
    )
    return registry.get_adapter(database(train_settings), adapter_id)


def test_retrain_writes_a_new_attempt_beside_the_old_one(
    attempt_1, train_settings, monkeypatch
) -> None:
    storage = open_storage(train_settings)
    db = database(train_settings)
    assert attempt_1.attempt == 1 and train.complete(train_settings, DATE)

    # Without --retrain a trained date is refused, and the refusal says how to retrain it.
    config = train.PROFILES["demo"].with_overrides(**{**TEST_OVERRIDES, "max_steps": 2})
    with pytest.raises(registry.RegistryError, match="pass --retrain to train attempt 2"):
        train.run(train_settings, DATE, config)

    # Patched filters, features rebuilt: attempt 1 was trained on another train split.
    write_features(storage, DATE, train=40, val=0)
    assert not train.complete(train_settings, DATE)

    monkeypatch.setenv("PRIA_HOME", str(train_settings.home))
    monkeypatch.setenv("PRIA_DATABASE_URL", train_settings.database_url.get_secret_value())
    monkeypatch.setenv("PRIA_STORAGE_URL", train_settings.storage_url)
    result = CliRunner().invoke(app, ["train", "--date", DATE.isoformat(), "--retrain", *TWO_STEPS])
    assert result.exit_code == 0, result.output
    assert "(attempt 2)" in result.output

    newest = registry.adapter_of_date(db, DATE)
    assert newest is not None and newest.attempt == 2
    assert newest.artifact_uri == storage.uri(adapter_keys(DATE, 2)[0])
    assert newest.artifact_uri.endswith(f"adapters/{DATE}.a2.safetensors")
    assert storage.exists(adapter_keys(DATE, 2)[1])
    assert newest.metrics_json["dataset"]["train_sha256"] == train_split_sha256(storage)
    # The old attempt is untouched and still registered.
    assert storage.read_bytes(adapter_keys(DATE)[0]) == b"attempt 1 weights"
    assert [a.attempt for a in registry.adapters_of_date(db, DATE)] == [2, 1]
    assert registry.get_adapter(db, attempt_1.adapter_id).artifact_uri == attempt_1.artifact_uri
    # The night's stages and eval work on the newest attempt.
    assert train.complete(train_settings, DATE)
    assert evaluate.find_candidate(db, DATE, None).adapter_id == newest.adapter_id


def test_an_attempt_number_is_never_registered_twice(attempt_1, train_settings) -> None:
    with pytest.raises(registry.RegistryError, match="attempt 1 of 2026-10-07 is already"):
        registry.register_candidate(
            database(train_settings),
            dataset_date=DATE,
            artifact_uri="file:///elsewhere/2026-10-07.safetensors",
            artifact_sha256="1" * 64,
            base_model="tiny-mistral",
            metrics={},
            attempt=1,
        )
