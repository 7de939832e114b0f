"""What eval and the gate store in the registry, and the one lookup of a date's adapters."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from evalrecords import eval_record, evaluate_and_gate

from pria_ml import registry
from pria_ml.db import Database
from pria_ml.db.sqlfiles import read_sql
from pria_ml.errors import RegistryError
from pria_ml.quality import record
from pria_ml.quality.rule import promote_if

DAY = dt.date(2026, 11, 24)


def test_the_adapters_of_a_date_come_newest_attempt_first_from_one_indexed_query(
    registry_db: Database, candidate
) -> None:
    first, second = candidate(DAY, gate=None), candidate(DAY, gate=None)
    candidate(DAY - dt.timedelta(days=1), gate=None)
    assert [a.adapter_id for a in registry.adapters_of_date(registry_db, DAY)] == [second, first]
    assert registry.adapter_of_date(registry_db, DAY).adapter_id == second
    assert registry.adapter_of_date(registry_db, DAY + dt.timedelta(days=1)) is None
    with registry_db.connect() as conn:
        conn.execute("SET enable_seqscan = off")  # a handful of rows: ask what a big table gets
        plan = conn.execute(
            "EXPLAIN " + read_sql("registry/adapters_of_date.sql"), {"date": DAY}
        ).fetchall()
    assert "model_registry_date_attempt" in " ".join(row[0] for row in plan)
    assert [a.attempt for a in registry.adapters_of_date(registry_db, DAY)] == [2, 1]


def test_the_evaluation_record_is_stored_as_written_and_read_back_validated(
    registry_db: Database, candidate
) -> None:
    adapter_id = candidate(DAY, gate=None)
    measured = eval_record(adapter_id, DAY, safety_flag_pct=2.5)
    registry.record_evaluation(registry_db, adapter_id, measured.as_json())
    row = registry.get_adapter(registry_db, adapter_id)
    assert record.of_adapter(row) == measured
    assert row.safety_flags == measured.val.candidate.safety_flags == 3
    assert row.gate_passed is None and record.gate_of_adapter(row) is None
    assert registry.history(registry_db, limit=1)[0].action == "evaluate"


def test_evaluating_again_clears_the_decision_taken_on_the_old_record(
    registry_db: Database, candidate
) -> None:
    adapter_id = candidate(DAY, gate=None)
    assert evaluate_and_gate(registry_db, adapter_id, DAY).passed
    assert registry.get_adapter(registry_db, adapter_id).gate_passed is True
    worse = eval_record(adapter_id, DAY, accuracy=0.5)
    registry.record_evaluation(registry_db, adapter_id, worse.as_json())
    row = registry.get_adapter(registry_db, adapter_id)
    assert row.gate_passed is None and row.gate_reason is None
    with pytest.raises(RegistryError, match="no gate decision"):
        registry.promote(registry_db, adapter_id=adapter_id)


def test_a_record_without_a_schema_version_or_of_a_prod_adapter_is_refused(
    registry_db: Database, candidate
) -> None:
    adapter_id = candidate(DAY)
    with pytest.raises(RegistryError, match="schema_version"):
        registry.record_evaluation(registry_db, adapter_id, {"val": {}})
    registry.promote(registry_db, adapter_id=adapter_id)
    with pytest.raises(RegistryError, match="not a candidate"):
        registry.record_evaluation(registry_db, adapter_id, eval_record(adapter_id, DAY).as_json())


def test_an_unmeasurable_figure_is_stored_as_null_and_fails_its_clause_closed(
    registry_db: Database, candidate
) -> None:
    adapter_id = candidate(DAY, gate=None)
    measured = eval_record(adapter_id, DAY, baseline_id=candidate(DAY, gate=None))
    unmeasurable = {"value": math.inf, "low": math.nan, "high": math.inf}
    latency = {**measured.latency.model_dump(), "latency_delta": unmeasurable}
    measured = record.EvalRecord.model_validate({**measured.model_dump(), "latency": latency})
    assert measured.latency.latency_delta.low is None
    registry.record_evaluation(registry_db, adapter_id, measured.as_json())
    stored = record.of_adapter(registry.get_adapter(registry_db, adapter_id))
    assert stored.latency.latency_delta.value is None
    decision = promote_if(stored.gate_inputs())
    assert not decision.passed
    assert any(f.startswith("latency_delta < 0.05 failed (got missing)") for f in decision.failed)


def test_a_record_that_does_not_validate_names_its_adapter(
    registry_db: Database, candidate
) -> None:
    adapter_id = candidate(DAY, gate=None)
    broken = eval_record(adapter_id, DAY).as_json()
    del broken["latency"]
    registry.record_evaluation(registry_db, adapter_id, broken)
    with pytest.raises(record.RecordInvalid, match=f"adapter {adapter_id}.*latency"):
        record.of_adapter(registry.get_adapter(registry_db, adapter_id))
