"""The promotion gate as a stage: ``pria-ml gate --date D``.

Evaluation measures; the gate decides. ``run(settings, date)`` reads the candidate of D and its
evaluation record from the registry (validated, ``quality.record``), judges it with the spec's
rule (``quality.rule.promote_if``, a pure function) and stores the decision as structured data:
every clause with its value, threshold and outcome (``metrics_json["gate"]``), plus the
``gate_passed`` / ``gate_reason`` columns that promotion checks, in one transaction with a
``gate`` event. A blocked candidate is a normal result, not an error.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pria_ml import registry
from pria_ml.db import database
from pria_ml.errors import RegistryError
from pria_ml.quality import record, spotcheck
from pria_ml.quality.rule import GateDecision, promote_if

if TYPE_CHECKING:
    import uuid

    from pria_ml.db import Database
    from pria_ml.registry import Adapter
    from pria_ml.settings import Settings


@dataclass(frozen=True)
class GateResult:
    adapter_id: uuid.UUID
    decision: GateDecision


def run(settings: Settings, date: dt.date, *, now: dt.datetime | None = None) -> GateResult:
    """Decide on the newest candidate of ``date`` from its evaluation record; record it.

    Raises RegistryError when no adapter was trained on ``date`` or it has no evaluation
    record (run ``pria-ml eval --date D`` first), RecordInvalid when the record does not
    validate; in each case nothing is recorded.
    """
    db = database(settings)
    adapter = registry.adapter_of_date(db, date)
    if adapter is None:
        raise RegistryError(
            f"no adapter trained on {date} in model_registry: run `pria-ml train --date {date}`"
        )
    limit = settings.spot_check_max_failure_share
    return GateResult(
        adapter.adapter_id, decide(db, adapter, spot_check_max_failure_share=limit, now=now)
    )


def decide(
    db: Database,
    adapter: Adapter,
    *,
    spot_check_max_failure_share: float,
    now: dt.datetime | None = None,
) -> GateDecision:
    """Judge ``adapter``'s evaluation record, and the spot-check weeks nobody acknowledged
    (``spotcheck.gate_inputs``), and record the decision stamped ``now`` (default the real
    clock; see ``run``)."""
    measured = record.of_adapter(adapter)
    if measured is None:
        raise RegistryError(
            f"adapter {adapter.adapter_id} of {adapter.dataset_date} has no evaluation record: "
            f"run `pria-ml eval --date {adapter.dataset_date}` before the gate"
        )
    inputs = measured.gate_inputs()
    inputs.update(spotcheck.gate_inputs(db, max_failure_share=spot_check_max_failure_share))
    decision = promote_if(inputs)
    registry.record_gate_decision(
        db,
        adapter.adapter_id,
        passed=decision.passed,
        reason=decision.reason,
        metrics={"gate": decision.as_record().model_dump(mode="json")},
        now=now,
    )
    return decision


def complete(settings: Settings, date: dt.date) -> bool:
    """True when the newest adapter of ``date`` has a gate decision taken on its current
    evaluation record (recording an evaluation again clears the decision)."""
    adapter = registry.adapter_of_date(database(settings), date)
    return adapter is not None and adapter.gate_passed is not None
