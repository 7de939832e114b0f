import datetime
import hashlib

import psycopg
import pytest

from pria_ml.db import Database
from pria_ml.errors import RegistryError
from pria_ml.registry import (
    artifact_referenced,
    get_adapter,
    record_gate_decision,
    register_candidate,
)

DAY = datetime.date(2026, 11, 24)
URI = "file:///adapters/2026-11-24.safetensors"
SHA = hashlib.sha256(b"adapter").hexdigest()


def _register(db: Database, **overrides):
    args = dict(
        dataset_date=DAY,
        artifact_uri=URI,
        artifact_sha256=SHA,
        base_model="tiny-mistral",
        metrics={"train_loss": 0.42, "gpu_hours": 0.1},
    )
    args.update(overrides)
    return register_candidate(db, **args)


def test_register_candidate_writes_row_and_event(registry_db: Database) -> None:
    adapter_id = _register(registry_db)
    adapter = get_adapter(registry_db, adapter_id)
    assert adapter.status == "candidate"
    assert adapter.dataset_date == DAY
    assert adapter.artifact_uri == URI and adapter.artifact_sha256 == SHA
    assert adapter.metrics_json == {"train_loss": 0.42, "gpu_hours": 0.1}
    assert adapter.gate_passed is None and adapter.safety_flags is None
    with registry_db.connect() as conn:
        events = conn.execute(
            "SELECT action, adapter_id, to_status FROM pria.registry_event"
        ).fetchall()
    assert events == [("register", adapter_id, "candidate")]
    assert artifact_referenced(registry_db, URI)
    assert not artifact_referenced(registry_db, URI + ".other")


def test_registering_the_same_artifact_again_returns_the_same_id(registry_db: Database) -> None:
    assert _register(registry_db) == _register(registry_db)
    with registry_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM pria.registry_event").fetchone() == (1,)


def test_same_uri_with_another_checksum_is_refused(registry_db: Database) -> None:
    _register(registry_db)
    with pytest.raises(RegistryError, match="already registered.*immutable"):
        _register(registry_db, artifact_sha256=hashlib.sha256(b"other").hexdigest())


def test_malformed_checksum_is_refused(registry_db: Database) -> None:
    with pytest.raises(RegistryError, match="not a lowercase hex sha256"):
        _register(registry_db, artifact_sha256="abc")
    assert not artifact_referenced(registry_db, URI)


def test_gate_decision_merges_metrics_and_records_event(registry_db: Database) -> None:
    adapter_id = _register(registry_db)
    record_gate_decision(
        registry_db,
        adapter_id,
        passed=False,
        reason="override_delta -0.5 >= -1.0",
        metrics={"override_delta": -0.5, "safety_flags": 3, "train_loss": 0.40},
    )
    adapter = get_adapter(registry_db, adapter_id)
    assert adapter.gate_passed is False
    assert adapter.gate_reason == "override_delta -0.5 >= -1.0"
    assert adapter.safety_flags == 3
    assert adapter.metrics_json == {
        "train_loss": 0.40,
        "gpu_hours": 0.1,
        "override_delta": -0.5,
        "safety_flags": 3,
    }
    with registry_db.connect() as conn:
        actions = conn.execute(
            "SELECT action FROM pria.registry_event ORDER BY event_id"
        ).fetchall()
    assert actions == [("register",), ("gate",)]


def test_gate_decision_for_unknown_adapter_is_refused(registry_db: Database) -> None:
    with pytest.raises(RegistryError, match="no adapter"):
        record_gate_decision(
            registry_db,
            "00000000-0000-0000-0000-000000000000",
            passed=True,
            reason="ok",
            metrics={},
        )


def test_get_adapter_unknown_or_malformed_id(registry_db: Database) -> None:
    with pytest.raises(RegistryError, match="no adapter"):
        get_adapter(registry_db, "00000000-0000-0000-0000-000000000001")
    with pytest.raises(RegistryError, match="is not an adapter id"):
        get_adapter(registry_db, "not-a-uuid")


def test_direct_updates_are_refused_by_the_database(registry_db: Database) -> None:
    adapter_id = _register(registry_db)
    with (
        pytest.raises(psycopg.Error, match="only through the pria registry functions"),
        registry_db.connect() as conn,
    ):
        conn.execute(
            "UPDATE pria.model_registry SET status = 'prod', promoted_at = now()"
            " WHERE adapter_id = %s",
            (adapter_id,),
        )
    assert get_adapter(registry_db, adapter_id).status == "candidate"
