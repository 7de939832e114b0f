"""The evaluation record: what eval writes and everything downstream reads."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import TYPE_CHECKING, Any

from pria_ml.errors import DataError, StorageError

if TYPE_CHECKING:
    from pria_ml.data.storage import Storage

GATE_INPUTS = ("accuracy_delta", "override_delta", "safety_flag_pct", "latency_delta")


def gate_inputs(recorded: dict[str, Any]) -> dict[str, Any]:
    """The promote_if inputs (spec section 6) recorded in an adapter's metrics_json: top-level
    keys, or under ``gate`` / ``gate.inputs``."""
    nested = recorded.get("gate", {}) if isinstance(recorded.get("gate"), dict) else {}
    sources = [recorded, nested, nested.get("inputs", {}) if nested else {}]
    found = {}
    for name in GATE_INPUTS:
        for source in sources:
            if isinstance(source, dict) and isinstance(source.get(name), int | float):
                found[name] = source[name]
                break
    return found


def eval_key(date: datetime.date, adapter_id: uuid.UUID, name: str) -> str:
    """``evals/D/<adapter_id>/<name>``: where the evaluation of a candidate lives in storage."""
    return f"evals/{date.isoformat()}/{adapter_id}/{name}"


def read_report(storage: Storage, date: datetime.date, adapter_id: uuid.UUID) -> dict[str, Any]:
    """The report.json of an evaluation; StorageError when it is missing or unreadable."""
    key = eval_key(date, adapter_id, "report.json")
    if not storage.exists(key):
        raise StorageError(
            f"no evaluation report at {storage.uri(key)}: run `pria-ml eval --date {date}`"
        )
    try:
        return json.loads(storage.read_bytes(key))
    except ValueError as exc:
        raise StorageError(f"{storage.uri(key)} is not valid JSON ({exc})") from None


def load_evaluated_samples(
    storage: Storage, date: datetime.date, adapter_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The per-sample rows an evaluation wrote for ``adapter_id``."""
    key = eval_key(date, adapter_id, "samples.parquet")
    if not storage.exists(key):
        raise DataError(
            f"no evaluated samples at {storage.uri(key)}: run `pria-ml eval --date {date}`"
        )
    return storage.read_parquet(key).to_pylist()
