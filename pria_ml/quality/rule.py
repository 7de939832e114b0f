"""The promotion gate (spec section 6): one pure function from measured deltas to a decision.

``promote_if`` judges a candidate against the spec's rule::

    accuracy_delta  > 0.5  AND  override_delta < -1.0  AND
    safety_flag_pct < 0.1  AND  latency_delta  < 0.05  AND  no critical benchmark loses > 1 pp

and two clauses of pria-ml's own: ``baseline_accuracy_drift > -20 pp``, judged when the
baseline is an adapter with a recorded evaluation (``_baseline_drift_clause``), and
``spot_check_failure_share <= PRIA_SPOT_CHECK_MAX_FAILURE_SHARE``, judged when a reviewed
spot-check week is not acknowledged (``_spot_check_clause``): QA's weekly verdicts on live
conversations block promotions until someone acknowledges a bad week.

It fails closed: an input that is missing, NaN, infinite or not a number fails its clause, and
a candidate with no benchmark results fails the benchmark clause. Every clause is evaluated
(not short-circuited), so the decision lists all the reasons a candidate was blocked.

Latency and critical benchmarks are judged as the spec writes them, on their point estimates
(``latency_delta < 0.05``, each critical task's ``delta_pp >= -1``), provided the measurement is
precise enough to decide: two equal adapters must pass at least 95 % of nights. A measurement
whose 95 % interval is wider than that (``quality.precision``) and reaches past the threshold
blocks as *inconclusive*, naming the measurement and how much larger it must be. A task given
only ``delta_pp`` (older registry rows) is judged on it alone.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pria_ml.quality import precision
from pria_ml.quality.record import ClauseRecord, GateRecord, describe_failure, show

if TYPE_CHECKING:
    from rich.console import RenderableType

ACCURACY_DELTA_MIN_PP = 0.5
OVERRIDE_DELTA_MAX_PP = -1.0
SAFETY_FLAG_PCT_MAX = 0.1
LATENCY_DELTA_MAX = 0.05
CRITICAL_BENCHMARK_LOSS_MAX_PP = 1.0
# The prod adapter's val accuracy tonight may fall at most this far below the accuracy recorded
# when it was evaluated itself: beyond it, the approved actions moved, not the model.
BASELINE_DRIFT_MAX_PP = 20.0


@dataclass(frozen=True)
class Clause:
    """One condition of the rule: ``inputs[key] <op> threshold``."""

    key: str
    symbol: str
    threshold: float
    unit: str

    @property
    def compare(self) -> Callable[[float, float], bool]:
        return {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}[
            self.symbol
        ]

    @property
    def rule(self) -> str:
        return f"{self.key} {self.symbol} {self.threshold:g}{self.unit}"


CLAUSES = (
    Clause("accuracy_delta", ">", ACCURACY_DELTA_MIN_PP, " pp"),
    Clause("override_delta", "<", OVERRIDE_DELTA_MAX_PP, " pp"),
    Clause("safety_flag_pct", "<", SAFETY_FLAG_PCT_MAX, " %"),
    Clause("latency_delta", "<", LATENCY_DELTA_MAX, ""),
)


@dataclass(frozen=True)
class ClauseResult:
    """How one clause came out: the clause, the value it saw, and whether it held."""

    clause: Clause
    value: Any
    passed: bool
    note: str = ""

    @property
    def rule(self) -> str:
        return self.clause.rule

    def describe(self) -> str:
        """The clause as an on-call engineer reads it in a failure message."""
        return describe_failure(self.rule, self.value, self.note)

    def as_record(self) -> ClauseRecord:
        return ClauseRecord(
            name=self.clause.key,
            op=self.clause.symbol,
            threshold=self.clause.threshold,
            unit=self.clause.unit.strip(),
            value=_number(self.value),
            passed=self.passed,
            note=self.note,
        )


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict: ``passed``, every ``input`` it saw, every ``failed`` clause."""

    passed: bool
    inputs: dict[str, Any]
    failed: list[str]
    clauses: list[ClauseResult] = field(default_factory=list)

    def as_record(self) -> GateRecord:
        """The decision as stored in the registry: every clause, value, threshold, outcome."""
        return GateRecord(
            passed=self.passed,
            clauses=[result.as_record() for result in self.clauses],
            inputs=self.inputs,
        )

    @property
    def reason(self) -> str:
        """One line for the registry's ``gate_reason``."""
        if self.passed:
            return f"passed: all {len(self.clauses)} clauses hold"
        return "blocked: " + "; ".join(self.failed)

    def render(self) -> RenderableType:
        """The decision as a rich table: one row per clause, the value seen, pass or fail."""
        from rich.box import SIMPLE
        from rich.table import Table

        verdict = "[bold green]PASSED[/]" if self.passed else "[bold red]BLOCKED[/]"
        table = Table(
            title=f"promotion gate: {verdict}", title_justify="left", box=SIMPLE, pad_edge=False
        )
        table.add_column("clause", no_wrap=True)
        table.add_column("value", justify="right", no_wrap=True)
        table.add_column("result", no_wrap=True)
        table.add_column("note", overflow="fold")
        for clause in self.clauses:
            table.add_row(
                clause.rule,
                show(clause.value),
                "[green]pass[/]" if clause.passed else "[red]FAIL[/]",
                clause.note,
            )
        return table


def _number(value: Any) -> float | None:
    """``value`` as a finite float, or None (missing, NaN, infinite, a bool, not a number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _judge(clause: Clause, value: Any, note: str = "") -> ClauseResult:
    number = _number(value)
    if number is None:
        what = "missing" if value is None else f"not a finite number ({value!r})"
        return ClauseResult(clause, value, False, f"{what}: fails closed")
    return ClauseResult(clause, number, clause.compare(number, clause.threshold), note)


def promote_if(inputs: Mapping[str, Any]) -> GateDecision:
    """Decide whether the candidate may be promoted; pure, never raises on bad values.

    ``inputs`` keys (percentage points unless noted): ``accuracy_delta``, ``override_delta``,
    ``safety_flag_pct`` (% of samples), ``latency_delta`` (p95 ratio - 1, with its 95% interval
    ``latency_delta_low`` / ``latency_delta_high`` and the ``latency_prompts`` x
    ``latency_repeats`` it was measured on; ``latency_baseline`` = "bare base model" when there
    is no previous adapter) and ``benchmarks``: ``{task: {"delta_pp": float, "delta_pp_low":
    float, "delta_pp_high": float, "documents": int, "critical": bool}}``. Missing or
    non-finite values fail their clause; so do missing benchmarks; a measurement too imprecise
    to decide its clause fails it as inconclusive.
    """
    results: list[ClauseResult] = []
    for clause in CLAUSES:
        if clause.key == "latency_delta":
            results.append(_latency_clause(clause, inputs))
        else:
            results.append(_judge(clause, inputs.get(clause.key)))
    results.extend(_benchmark_clauses(inputs.get("benchmarks")))
    if "baseline_accuracy_drift" in inputs:
        results.append(_baseline_drift_clause(inputs["baseline_accuracy_drift"]))
    if SPOT_CHECK_KEY in inputs:
        results.append(_spot_check_clause(inputs))
    failed = [r.describe() for r in results if not r.passed]
    return GateDecision(passed=not failed, inputs=dict(inputs), failed=failed, clauses=results)


def _latency_clause(clause: Clause, inputs: Mapping[str, Any]) -> ClauseResult:
    """``latency_delta < 0.05`` on the point estimate, decided only by a precise measurement;
    against the bare base model it asks only for a measurement.

    The spec budgets latency "vs previous adapter". Before the first promotion there is none:
    the candidate is timed against the bare base model, which measures what any LoRA adapter
    adds rather than a regression, so the measurement must exist but no threshold applies.
    """
    judged = _judge(clause, inputs.get(clause.key))
    point = _number(judged.value)
    if point is None:
        return judged
    if inputs.get("latency_baseline") == "bare base model":
        return ClauseResult(
            clause,
            point,
            True,
            "no previous adapter: measured against the bare base, reported, not judged",
        )
    low, high = _number(inputs.get("latency_delta_low")), _number(inputs.get("latency_delta_high"))
    if low is None or high is None:
        return ClauseResult(
            clause, point, False, "no 95% interval: precision unknown, fails closed"
        )
    verdict = precision.judge(
        point,
        low,
        high,
        threshold=LATENCY_DELTA_MAX,
        margin=precision.LATENCY_MARGIN,
        passes_above=False,
    )
    shown = f"95% interval [{low:+.3f}, {high:+.3f}]"
    if verdict.outcome != "inconclusive":
        return ClauseResult(clause, point, verdict.outcome == "pass", shown)
    prompts, repeats = inputs.get("latency_prompts"), inputs.get("latency_repeats")
    scale = verdict.scale_needed
    more = (
        f"time about {scale:.1f}x as many prompt x repeat pairs"
        if not isinstance(repeats, int) or not isinstance(prompts, int)
        else f"measured on {prompts} prompts x {repeats} repeats: raise PRIA_EVAL_LATENCY_REPEATS "
        f"to about {math.ceil(repeats * scale)} (or time on a quieter machine)"
    )
    return ClauseResult(
        clause,
        point,
        False,
        f"inconclusive: the latency measurement is too noisy to decide the 5% rule ({shown}, "
        f"+/-{verdict.half_width:.3f}; deciding needs +/-{verdict.required:.3f}); {more}",
    )


def _baseline_drift_clause(value: Any) -> ClauseResult:
    """pria-ml's addition to the spec's rule: the evaluation's labels must still agree with
    the prod adapter about as well as they did when it was evaluated.

    A labelling incident corrupts the approved actions of the newest days, which are exactly
    the val and test splits: the prod adapter's accuracy on them collapses, and the deltas of
    a candidate measured against corrupted labels say nothing (one trained on the same
    corruption even looks better). Judged only when the baseline is an adapter with a recorded
    evaluation (``EvalRecord.gate_inputs`` leaves the key out otherwise).
    """
    clause = Clause("baseline_accuracy_drift", ">", -BASELINE_DRIFT_MAX_PP, " pp")
    judged = _judge(clause, value)
    if judged.passed:
        return judged
    note = judged.note or (
        "prod's accuracy on tonight's val fell this far below its own evaluation: the approved "
        "actions look corrupted (a labelling incident?); check them before promoting"
    )
    return ClauseResult(clause, judged.value, False, note)


SPOT_CHECK_KEY = "spot_check_failure_share"


def _spot_check_clause(inputs: Mapping[str, Any]) -> ClauseResult:
    """QA's weekly spot-check of live conversations (spec section 6.4): the worst week not
    yet acknowledged may have at most ``spot_check_max_failure_share`` of its reviewed samples
    wrong or unsafe. Inputs (``quality.spotcheck.gate_inputs``): the share, the week, its
    counts and the threshold; a missing threshold fails closed."""
    threshold = _number(inputs.get("spot_check_max_failure_share"))
    clause = Clause(SPOT_CHECK_KEY, "<=", threshold if threshold is not None else 0.0, "")
    week = inputs.get("spot_check_week", "?")
    judged = _judge(clause, inputs.get(SPOT_CHECK_KEY))
    if threshold is None:
        return ClauseResult(clause, judged.value, False, "no threshold: fails closed")
    if judged.note:
        return judged
    counts = f"{inputs.get('spot_check_failures')} of {inputs.get('spot_check_reviewed')}"
    if judged.passed:
        return ClauseResult(clause, judged.value, True, f"spot-check {week}: {counts} failed")
    return ClauseResult(
        clause,
        judged.value,
        False,
        f"spot-check {week}: {counts} reviewed conversations wrong or unsafe; blocks promotion "
        f"until acknowledged: pria-ml spot-check ack --week {week} --by NAME",
    )


def _benchmark_clauses(benchmarks: Any) -> list[ClauseResult]:
    """One clause per critical benchmark task: it may not lose more than 1 pp (point estimate),
    decided only by a measurement precise enough to decide it."""
    every = Clause("critical benchmarks delta", ">=", -CRITICAL_BENCHMARK_LOSS_MAX_PP, " pp")
    if not isinstance(benchmarks, Mapping) or not benchmarks:
        return [ClauseResult(every, None, False, "no benchmark results: fails closed")]
    critical = {
        name: result
        for name, result in benchmarks.items()
        if not isinstance(result, Mapping) or result.get("critical", True) is not False
    }
    if not critical:
        return [ClauseResult(every, None, False, "no critical benchmark task: fails closed")]
    return [
        _benchmark_clause(name, critical[name] if isinstance(critical[name], Mapping) else {})
        for name in sorted(critical)
    ]


def _benchmark_clause(name: str, result: Mapping[str, Any]) -> ClauseResult:
    clause = Clause(f"benchmark {name} delta", ">=", -CRITICAL_BENCHMARK_LOSS_MAX_PP, " pp")
    judged = _judge(clause, result.get("delta_pp"))
    point = _number(judged.value)
    if point is None:
        return judged
    low, high = _number(result.get("delta_pp_low")), _number(result.get("delta_pp_high"))
    if ("delta_pp_low" in result or "delta_pp_high" in result) and (low is None or high is None):
        return ClauseResult(clause, point, False, "interval not finite: fails closed")
    verdict = precision.judge(
        point,
        low,
        high,
        threshold=-CRITICAL_BENCHMARK_LOSS_MAX_PP,
        margin=precision.BENCHMARK_MARGIN_PP,
        passes_above=True,
    )
    documents = result.get("documents")
    over = f" over {documents} documents" if isinstance(documents, int) else ""
    shown = "critical task" + (
        "" if low is None else f"; 95% interval [{low:+.1f}, {high:+.1f}] pp"
    )
    if verdict.outcome != "inconclusive":
        return ClauseResult(clause, point, verdict.outcome == "pass", shown + over)
    needed = (
        f"about {math.ceil(documents * verdict.scale_needed)} documents"
        if isinstance(documents, int)
        else f"about {verdict.scale_needed:.1f}x the documents"
    )
    return ClauseResult(
        clause,
        point,
        False,
        f"inconclusive: benchmark {name} is too small to decide the 1 pp rule (95% interval "
        f"[{low:+.1f}, {high:+.1f}] pp{over}, +/-{verdict.half_width:.1f}; deciding needs "
        f"+/-{verdict.required:.1f}): give the task {needed} (benchmarks/data, "
        "PRIA_EVAL_BENCHMARK_LIMIT)",
    )
