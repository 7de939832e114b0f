"""Registry fixtures: a migrated fresh database and a helper that registers candidates."""

from __future__ import annotations

import datetime
import hashlib
import uuid
from collections.abc import Callable

import pytest

from pria_ml.db import Database
from pria_ml.migrate import migrate
from pria_ml.registry import record_gate_decision, register_candidate


@pytest.fixture
def registry_db(fresh_db: Database) -> Database:
    """A fresh database with every migration applied."""
    migrate(fresh_db)
    return fresh_db


Register = Callable[..., uuid.UUID]


@pytest.fixture
def candidate(registry_db: Database) -> Register:
    """Register a candidate (gated as passing unless ``gate=None`` / ``gate=False``)."""
    counter = iter(range(1, 10_000))

    def make(
        day: datetime.date | None = None, *, gate: bool | None = True, **metrics: float
    ) -> uuid.UUID:
        n = next(counter)
        day = day or datetime.date(2026, 11, n % 28 + 1)
        uri = f"file:///adapters/{day.isoformat()}-{n}.safetensors"
        adapter_id = register_candidate(
            registry_db,
            dataset_date=day,
            artifact_uri=uri,
            artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
            base_model="tiny-mistral",
            metrics={"train_loss": 0.5, **metrics},
        )
        if gate is not None:
            record_gate_decision(
                registry_db,
                adapter_id,
                passed=gate,
                reason="all gate metrics within limits" if gate else "accuracy_delta 0.1 <= 0.5",
                metrics={"accuracy_delta": 1.0 if gate else 0.1, "safety_flags": 0},
            )
        return adapter_id

    return make
