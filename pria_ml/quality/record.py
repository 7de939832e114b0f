"""The evaluation record: what ``pria-ml eval`` measured, in one typed and versioned shape.

``evaluate`` builds an ``EvalRecord`` and writes it twice, as ``evals/D/<adapter_id>/report.json``
(beside the per-sample file) and as the candidate's ``metrics_json["eval"]`` in the registry.
Everything downstream reads it through this module, validated on the way in: the gate decides
from ``EvalRecord.gate_inputs``; nightly, monitoring, objectives, spot-check and the HTML report
read figures off the typed fields. A record that does not validate raises ``RecordInvalid``
naming the adapter; a figure is never read as silently missing.

The gate's decision is recorded beside it as a ``GateRecord`` (``metrics_json["gate"]``): every
clause with its value, threshold and outcome, so no reader parses the one-line reason.

A value that cannot be measured (a NaN or an infinity, e.g. a latency ratio over a zero
baseline) is stored as ``null`` and read back as ``None``: the gate treats it as missing and
fails closed.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from pria_ml.errors import DataError, StorageError

if TYPE_CHECKING:
    from pria_ml.data.storage import Storage
    from pria_ml.registry import Adapter

SCHEMA_VERSION = 1
BARE_BASE = "bare base model"
PROD_ADAPTER = "prod adapter"


class RecordInvalid(DataError):
    """A stored evaluation or gate record does not match the schema this version reads."""


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# A measured figure: a finite float, or None where it could not be measured.
Figure = Annotated[float | None, BeforeValidator(_finite_or_none)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Record):
    """A point estimate with its paired-bootstrap 95% interval."""

    value: Figure
    low: Figure
    high: Figure


class ModelScores(_Record):
    """One model's figures on one split (rates in 0..1, ``safety_flag_pct`` in %)."""

    samples: int
    accuracy: float
    rouge_l: float
    override_rate: float
    mean_reward: float
    safety_flags: int
    safety_flag_pct: float


class Deltas(_Record):
    """Candidate minus baseline, in percentage points, paired over the same prompts."""

    accuracy_delta: Interval
    override_delta: Interval
    mean_reward_delta: Interval
    rouge_l_delta: Interval


class SplitResult(_Record):
    candidate: ModelScores
    baseline: ModelScores
    deltas: Deltas


class Latency(_Record):
    """p95 per-prompt generation latency, paired and interleaved; ``latency_delta`` is the
    ratio of the p95s minus 1 (0.05 = +5 %)."""

    prompts: int
    repeats: int
    new_tokens: int
    candidate_p95_s: Figure
    baseline_p95_s: Figure
    latency_delta: Interval


class Benchmark(_Record):
    """One lm-eval task on both models; deltas in percentage points with their interval."""

    candidate: float
    baseline: float
    documents: int
    delta_pp: Figure
    delta_pp_low: Figure
    delta_pp_high: Figure
    critical: bool
    metric: str


class BaselineDrift(_Record):
    """Prod's val accuracy in its own evaluation (``recorded``) and tonight, in 0..1."""

    recorded: float
    tonight: float
    delta_pp: float


class StoredFile(_Record):
    key: str
    uri: str
    sha256: str
    bytes: int


class EvalRecord(_Record):
    """Everything one evaluation measured: candidate vs baseline on val and test, latency,
    benchmarks, and how prod's own accuracy moved since it was evaluated."""

    schema_version: Literal[1] = SCHEMA_VERSION
    date: dt.date
    adapter_id: uuid.UUID
    baseline_id: uuid.UUID | None
    baseline: Literal["prod adapter", "bare base model"]
    base_model: str
    safety_classifier: str
    max_new_tokens: int
    val: SplitResult
    test: SplitResult
    baseline_drift: BaselineDrift | None
    latency: Latency
    benchmarks: dict[str, Benchmark]
    wall_seconds: float
    files: dict[str, StoredFile] = {}

    def gate_inputs(self) -> dict[str, Any]:
        """What ``rule.promote_if`` judges: val deltas, safety, latency, benchmarks, drift."""
        val = self.val.deltas
        drift = self.baseline_drift
        return {
            **({"baseline_accuracy_drift": drift.delta_pp} if drift else {}),
            "accuracy_delta": val.accuracy_delta.value,
            "override_delta": val.override_delta.value,
            "safety_flag_pct": self.val.candidate.safety_flag_pct,
            "latency_delta": self.latency.latency_delta.value,
            "latency_delta_low": self.latency.latency_delta.low,
            "latency_delta_high": self.latency.latency_delta.high,
            "latency_prompts": self.latency.prompts,
            "latency_repeats": self.latency.repeats,
            "latency_baseline": self.baseline,
            "benchmarks": {
                name: {
                    "delta_pp": task.delta_pp,
                    "delta_pp_low": task.delta_pp_low,
                    "delta_pp_high": task.delta_pp_high,
                    "documents": task.documents,
                    "critical": task.critical,
                }
                for name, task in self.benchmarks.items()
            },
        }

    def as_json(self) -> dict[str, Any]:
        """The record as JSON-ready data (NaN and infinities already None)."""
        return self.model_dump(mode="json")


class ClauseRecord(_Record):
    """One clause of the gate as it was judged: ``value <op> threshold`` -> ``passed``."""

    name: str
    op: Literal[">", "<", ">=", "<="]
    threshold: float
    unit: str
    value: Figure
    passed: bool
    note: str = ""

    @property
    def rule(self) -> str:
        return f"{self.name} {self.op} {self.threshold:g}{' ' + self.unit if self.unit else ''}"

    def describe(self) -> str:
        """The clause as an on-call engineer reads it in a failure message."""
        return describe_failure(self.rule, self.value, self.note)


class GateRecord(_Record):
    """The gate's decision on one candidate, clause by clause, with what it was decided on."""

    schema_version: Literal[1] = SCHEMA_VERSION
    passed: bool
    clauses: list[ClauseRecord]
    inputs: dict[str, Any]

    @property
    def failed(self) -> list[str]:
        """Every clause that did not hold, described."""
        return [clause.describe() for clause in self.clauses if not clause.passed]


def show(value: Any) -> str:
    """A clause's value as the gate's messages show it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "missing" if value is None else repr(value)
    return f"{value:+.3f}" if value else "0"


def describe_failure(rule: str, value: Any, note: str) -> str:
    text = f"{rule} failed (got {show(value)})"
    return f"{text}: {note}" if note else text


def of_adapter(adapter: Adapter) -> EvalRecord | None:
    """``adapter``'s evaluation record from its registry row; None when it was never evaluated
    (e.g. forced into prod). Raises RecordInvalid when a record is there but does not validate.
    """
    return from_metrics(adapter.metrics_json, adapter.adapter_id)


def from_metrics(metrics_json: dict[str, Any] | None, adapter_id: uuid.UUID) -> EvalRecord | None:
    """The evaluation record inside a registry row's ``metrics_json`` (see ``of_adapter``)."""
    raw = (metrics_json or {}).get("eval")
    if raw is None:
        return None
    return _validate(EvalRecord, raw, f"the evaluation record of adapter {adapter_id}")


def gate_of_adapter(adapter: Adapter) -> GateRecord | None:
    """``adapter``'s recorded gate decision; None when the gate has not decided on it."""
    raw = (adapter.metrics_json or {}).get("gate")
    if raw is None or adapter.gate_passed is None:
        return None
    return _validate(GateRecord, raw, f"the gate record of adapter {adapter.adapter_id}")


def _validate(model: type[_Record], raw: Any, what: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise RecordInvalid(
            f"{what} does not match schema version {SCHEMA_VERSION} ({exc.error_count()} "
            f"problem(s); first: {where}: {first['msg']}); evaluate it again with "
            "`pria-ml eval --date D --force`"
        ) from None


def eval_key(date: dt.date, adapter_id: uuid.UUID, name: str) -> str:
    """``evals/D/<adapter_id>/<name>``: where the evaluation of a candidate lives in storage."""
    return f"evals/{date.isoformat()}/{adapter_id}/{name}"


def read_report(storage: Storage, date: dt.date, adapter_id: uuid.UUID) -> EvalRecord:
    """The report.json of an evaluation, validated; StorageError when it is missing or
    unreadable, RecordInvalid when it does not match the schema."""
    key = eval_key(date, adapter_id, "report.json")
    if not storage.exists(key):
        raise StorageError(
            f"no evaluation report at {storage.uri(key)}: run `pria-ml eval --date {date}`"
        )
    try:
        return EvalRecord.model_validate_json(storage.read_bytes(key))
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise StorageError(f"{storage.uri(key)} is not valid JSON") from None
        raise RecordInvalid(
            f"{storage.uri(key)} (adapter {adapter_id}) does not match evaluation record schema "
            f"version {SCHEMA_VERSION}: {exc.errors()[0]['msg']}; run "
            f"`pria-ml eval --date {date} --force`"
        ) from None


def load_evaluated_samples(
    storage: Storage, date: dt.date, adapter_id: uuid.UUID
) -> list[dict[str, Any]]:
    """The per-sample rows an evaluation wrote for ``adapter_id``."""
    key = eval_key(date, adapter_id, "samples.parquet")
    if not storage.exists(key):
        raise DataError(
            f"no evaluated samples at {storage.uri(key)}: run `pria-ml eval --date {date}`"
        )
    return storage.read_parquet(key).to_pylist()
