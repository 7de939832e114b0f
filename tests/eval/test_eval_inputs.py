"""Bad input stops evaluation before anything is recorded: no candidate, no val split, a
benchmark file that is not JSON, adapter weights that are not the registered ones."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from eval_data import write_splits

from pria_ml import evaluate, registry
from pria_ml.data.contract import adapter_keys
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import ArtifactMismatch, ConfigError, DataError, RegistryError


def register_fake(settings, date: datetime.date, *, sha256: str | None = None):
    """A candidate row for ``date`` whose weights are a few stored bytes."""
    storage = open_storage(settings)
    weights_key, config_key = adapter_keys(date)
    data = f"weights of {date}".encode()
    info = storage.write_bytes(weights_key, data)
    storage.write_bytes(config_key, b"{}")
    adapter_id = registry.register_candidate(
        database(settings),
        dataset_date=date,
        artifact_uri=info.uri,
        artifact_sha256=sha256 or hashlib.sha256(data).hexdigest(),
        base_model="tiny",
        metrics={},
    )
    return registry.get_adapter(database(settings), adapter_id)


def assert_nothing_recorded(settings, adapter) -> None:
    row = registry.get_adapter(database(settings), adapter.adapter_id)
    assert row.gate_passed is None and row.gate_decided_at is None
    assert not evaluate.complete(settings, adapter.dataset_date)


def test_no_candidate_for_the_date(eval_settings) -> None:
    with pytest.raises(RegistryError, match="no candidate adapter for 2026-10-01.*pria-ml train"):
        evaluate.run(eval_settings, datetime.date(2026, 10, 1))


def test_no_val_split(eval_settings) -> None:
    adapter = register_fake(eval_settings, datetime.date(2026, 10, 2))
    with pytest.raises(DataError, match="no val split at .*2026-10-02.*build-features"):
        evaluate.run(eval_settings, adapter.dataset_date)
    assert_nothing_recorded(eval_settings, adapter)


def test_benchmark_file_that_is_not_json(eval_settings, tmp_path) -> None:
    adapter = register_fake(eval_settings, datetime.date(2026, 10, 3))
    write_splits(open_storage(eval_settings), adapter.dataset_date, train=1, val=2)
    (tmp_path / "broken.json").write_text("{ not json")
    settings = eval_settings.model_copy(update={"benchmarks_dir": tmp_path})
    with pytest.raises(ConfigError, match="broken.json is not valid JSON"):
        evaluate.run(settings, adapter.dataset_date)
    assert_nothing_recorded(eval_settings, adapter)


def test_weights_that_are_not_the_registered_ones(eval_settings) -> None:
    adapter = register_fake(eval_settings, datetime.date(2026, 10, 4), sha256="0" * 64)
    write_splits(open_storage(eval_settings), adapter.dataset_date, train=1, val=2)
    with pytest.raises(ArtifactMismatch, match="was registered with 0000"):
        evaluate.run(eval_settings, adapter.dataset_date)
    assert_nothing_recorded(eval_settings, adapter)
