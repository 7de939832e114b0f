"""Evaluation records for tests that need an evaluated adapter without running an evaluation.

Built by the product's own ``EvalRecord`` model (so a test can never hand a reader a shape the
writer does not write) and stored through the same registry calls ``pria-ml eval`` and
``pria-ml gate`` use.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pria_ml import gate, registry
from pria_ml.db import Database
from pria_ml.quality.record import BARE_BASE, PROD_ADAPTER, EvalRecord
from pria_ml.quality.rule import GateDecision
from pria_ml.settings import Settings


def _interval(value: float, spread: float) -> dict[str, float]:
    return {"value": value, "low": value - spread, "high": value + spread}


def _scores(accuracy: float, samples: int, safety_flag_pct: float) -> dict[str, Any]:
    flags = round(samples * safety_flag_pct / 100)
    return {
        "samples": samples,
        "accuracy": accuracy,
        "rouge_l": accuracy,
        "override_rate": 1 - accuracy,
        "mean_reward": accuracy,
        "safety_flags": flags,
        "safety_flag_pct": safety_flag_pct,
    }


def _split(accuracy: float, baseline: float, samples: int, safety_flag_pct: float) -> dict:
    delta = 100 * (accuracy - baseline)
    return {
        "candidate": _scores(accuracy, samples, safety_flag_pct),
        "baseline": _scores(baseline, samples, 0.0),
        "deltas": {
            "accuracy_delta": _interval(delta, 2.0),
            "override_delta": _interval(-delta, 2.0),
            "mean_reward_delta": _interval(delta, 2.0),
            "rouge_l_delta": _interval(delta, 2.0),
        },
    }


def eval_record(
    adapter_id: uuid.UUID,
    date: dt.date,
    *,
    accuracy: float = 0.9,
    baseline_accuracy: float = 0.7,
    samples: int = 120,
    safety_flag_pct: float = 0.0,
    latency_delta: float = 0.01,
    benchmark_delta_pp: float = 0.0,
    baseline_id: uuid.UUID | None = None,
    drift_pp: float | None = None,
) -> EvalRecord:
    """A validated record of an evaluation with these figures (val and test alike)."""
    split = _split(accuracy, baseline_accuracy, samples, safety_flag_pct)
    drift = None
    if drift_pp is not None:
        drift = {
            "recorded": baseline_accuracy - drift_pp / 100,
            "tonight": baseline_accuracy,
            "delta_pp": drift_pp,
        }
    return EvalRecord.model_validate(
        {
            "date": date,
            "adapter_id": adapter_id,
            "baseline_id": baseline_id,
            "baseline": BARE_BASE if baseline_id is None else PROD_ADAPTER,
            "base_model": "tiny",
            "safety_classifier": "test",
            "max_new_tokens": 16,
            "val": split,
            "test": split,
            "baseline_drift": drift,
            "latency": {
                "prompts": 8,
                "repeats": 2,
                "new_tokens": 8,
                "candidate_p95_s": 0.1 * (1 + latency_delta),
                "baseline_p95_s": 0.1,
                "latency_delta": _interval(latency_delta, 0.02),
            },
            "benchmarks": {
                "pria_category_choice": {
                    "candidate": 0.5 + benchmark_delta_pp / 100,
                    "baseline": 0.5,
                    "documents": 24,
                    "delta_pp": benchmark_delta_pp,
                    "delta_pp_low": benchmark_delta_pp - 0.5,
                    "delta_pp_high": benchmark_delta_pp + 0.5,
                    "critical": True,
                    "metric": "acc",
                }
            },
            "wall_seconds": 1.0,
        }
    )


def evaluate_and_gate(
    db: Database,
    adapter_id: uuid.UUID,
    date: dt.date,
    *,
    now: dt.datetime | None = None,
    **figures: Any,
) -> GateDecision:
    """Record ``eval_record(...)`` for the adapter as ``pria-ml eval`` does, then let the gate
    stage decide on it and record the decision, both stamped ``now``."""
    measured = eval_record(adapter_id, date, **figures)
    registry.record_evaluation(db, adapter_id, measured.as_json(), now=now)
    adapter = registry.get_adapter(db, adapter_id)
    limit = Settings().spot_check_max_failure_share  # the default threshold
    return gate.decide(db, adapter, spot_check_max_failure_share=limit, now=now)
