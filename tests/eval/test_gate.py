"""The promotion rule as one pure function: its full truth table, the threshold edges, and
fail-closed handling of missing, NaN and malformed inputs."""

from __future__ import annotations

import datetime as dt
import itertools
import math
import uuid
from types import SimpleNamespace

import pytest
from evalrecords import eval_record

from pria_ml import evaluate
from pria_ml.quality.record import GateRecord, RecordInvalid
from pria_ml.quality.rule import promote_if

DAY = dt.date(2026, 11, 24)

PASSING = {
    "accuracy_delta": 3.0,
    "override_delta": -3.0,
    "safety_flag_pct": 0.0,
    "latency_delta": 0.01,
    "latency_delta_low": -0.02,
    "latency_delta_high": 0.04,
    "benchmarks": {
        "category_choice": {"delta_pp": 0.0, "critical": True},
        "action_format": {"delta_pp": -12.0, "critical": False},
    },
}
FAILING = {
    "accuracy_delta": 0.2,
    "override_delta": -0.5,
    "safety_flag_pct": 4.0,
    "latency_delta": 0.09,
    "benchmarks": {
        "category_choice": {"delta_pp": -5.0, "critical": True},
        "action_format": {"delta_pp": -12.0, "critical": False},
    },
}
KEYS = ("accuracy_delta", "override_delta", "safety_flag_pct", "latency_delta", "benchmarks")


@pytest.mark.parametrize("failing", list(itertools.product([False, True], repeat=len(KEYS))))
def test_truth_table_passes_only_when_every_clause_holds(failing: tuple[bool, ...]) -> None:
    inputs = dict(PASSING)
    for key, fail in zip(KEYS, failing, strict=True):
        if fail:
            inputs[key] = FAILING[key]
    decision = promote_if(inputs)
    assert decision.passed is (not any(failing))
    assert len(decision.failed) == sum(failing)  # every failed clause is reported, none extra
    for key, fail in zip(KEYS, failing, strict=True):
        named = any(("benchmark" if key == "benchmarks" else key) in f for f in decision.failed)
        assert named is fail


@pytest.mark.parametrize(
    ("key", "value", "passed"),
    [
        ("accuracy_delta", 0.5, False),  # > 0.5, strictly
        ("accuracy_delta", 0.5000001, True),
        ("override_delta", -1.0, False),  # < -1.0, strictly
        ("override_delta", -1.0000001, True),
        ("safety_flag_pct", 0.1, False),  # < 0.1
        ("safety_flag_pct", 0.0999, True),
        ("latency_delta", 0.05, False),  # < 0.05, on the point estimate
        ("latency_delta", 0.0499, True),
    ],
)
def test_threshold_edges(key: str, value: float, passed: bool) -> None:
    assert promote_if({**PASSING, key: value}).passed is passed


@pytest.mark.parametrize(("delta", "passed"), [(-1.0, True), (-1.0001, False), (5.0, True)])
def test_a_critical_benchmark_may_lose_at_most_one_point(delta: float, passed: bool) -> None:
    benchmarks = {"category_choice": {"delta_pp": delta, "critical": True}}
    assert promote_if({**PASSING, "benchmarks": benchmarks}).passed is passed


@pytest.mark.parametrize(
    ("point", "low", "high", "outcome"),
    [
        (-8.3, -16.7, 0.0, "failed"),  # two documents of 24 lost: a loss of more than 1 pp
        (-4.2, -12.5, 4.2, "failed"),  # one document of 24: still more than 1 pp
        (-1.0, -2.1, 0.1, "passed"),  # at the threshold, measured precisely enough (+/-1.1)
        (-0.5, -1.6, 0.6, "passed"),
        (0.0, -0.5, 0.5, "passed"),
        (0.0, 0.0, 0.0, "passed"),  # no document answered differently
        (8.3, 0.0, 16.7, "passed"),  # the whole interval clear of -1 pp: decided however wide
        (0.0, -8.3, 8.3, "inconclusive"),  # one lost, one gained of 24: cannot tell 1 pp
        (-0.9, -3.0, 1.2, "inconclusive"),
        (-12.5, math.nan, -4.2, "fails closed"),
    ],
)
def test_a_critical_benchmark_is_judged_on_its_point_estimate_if_precise_enough(
    point: float, low: float, high: float, outcome: str
) -> None:
    task = {"delta_pp": point, "delta_pp_low": low, "delta_pp_high": high, "documents": 24}
    decision = promote_if({**PASSING, "benchmarks": {"category_choice": task | {"critical": True}}})
    assert decision.passed is (outcome == "passed")
    if outcome != "passed":
        (reason,) = decision.failed
        assert reason.startswith("benchmark category_choice delta >= -1 pp failed")
        if outcome == "inconclusive":  # which measurement, and how to make it decidable
            assert "inconclusive: benchmark category_choice is too small" in reason
            assert "over 24 documents" in reason and "give the task about" in reason
        elif outcome == "fails closed":
            assert "fails closed" in reason


@pytest.mark.parametrize(
    ("point", "low", "high", "outcome"),
    [
        (0.098, 0.0, 0.2, "failed"),  # the demo's +9.8 % with an interval from 0: blocked now
        (0.05, 0.02, 0.08, "failed"),
        (0.03, 0.0, 0.1, "passed"),  # +/-0.05: precise enough, the point estimate decides
        (-0.2, -0.3, -0.1, "passed"),
        (0.01, -0.3, 0.3, "inconclusive"),  # a busy machine: cannot tell 0 from +5 %
        (0.01, math.nan, 0.3, "fails closed"),
    ],
)
def test_latency_is_judged_on_its_point_estimate_if_precise_enough(
    point: float, low: float, high: float, outcome: str
) -> None:
    inputs = {**PASSING, "latency_delta": point, "latency_delta_low": low}
    inputs |= {"latency_delta_high": high, "latency_prompts": 8, "latency_repeats": 2}
    decision = promote_if(inputs)
    assert decision.passed is (outcome == "passed")
    if outcome != "passed":
        (reason,) = decision.failed
        assert reason.startswith("latency_delta < 0.05 failed")
        if outcome == "inconclusive":
            assert "inconclusive: the latency measurement is too noisy" in reason
            assert "raise PRIA_EVAL_LATENCY_REPEATS to about" in reason
        elif outcome == "fails closed":
            assert "fails closed" in reason


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("bad", [None, math.nan, math.inf, -math.inf, "3.0", True, "missing"])
def test_missing_or_non_finite_input_is_not_promoted(key: str, bad: object) -> None:
    inputs = dict(PASSING)
    if bad == "missing":
        del inputs[key]
    else:
        inputs[key] = bad
    decision = promote_if(inputs)
    assert not decision.passed
    assert len(decision.failed) == 1 and "fails closed" in decision.failed[0]


@pytest.mark.parametrize(
    "benchmarks",
    [
        {},
        {"action_format": {"delta_pp": 3.0, "critical": False}},  # no critical task at all
        {"category_choice": {"delta_pp": math.nan, "critical": True}},
        {"category_choice": {"critical": True}},
        {"category_choice": "not a result"},
    ],
)
def test_benchmark_results_that_prove_nothing_are_not_promoted(benchmarks: dict) -> None:
    decision = promote_if({**PASSING, "benchmarks": benchmarks})
    assert not decision.passed and any("benchmark" in f for f in decision.failed)


def test_decision_keeps_its_inputs_and_explains_itself() -> None:
    decision = promote_if(FAILING)
    assert decision.inputs == FAILING
    assert decision.reason.startswith("blocked: ")
    assert "accuracy_delta > 0.5 pp failed (got +0.200)" in decision.failed
    passed = promote_if(PASSING)
    assert passed.failed == [] and passed.reason == "passed: all 5 clauses hold"


def test_decision_renders_as_a_table_with_one_row_per_clause() -> None:
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(promote_if(FAILING).render())
    text = console.export_text()
    assert "BLOCKED" in text
    for rule in ("accuracy_delta > 0.5 pp", "latency_delta < 0.05", "benchmark category"):
        assert rule in text
    assert text.count("FAIL") == 5


def test_against_the_bare_base_latency_is_measured_but_not_judged() -> None:
    first = {**PASSING, "latency_baseline": "bare base model", "latency_delta": 0.3}
    decision = promote_if(first)
    assert decision.passed
    assert "no previous adapter" in decision.clauses[3].note
    assert not promote_if({**first, "latency_delta": math.nan}).passed  # still required
    assert not promote_if({**first, "latency_baseline": "prod adapter"}).passed


def test_the_evaluation_record_hands_the_measurements_to_the_gate() -> None:
    measured = eval_record(uuid.uuid4(), DAY)
    one_lost = measured.benchmarks["pria_category_choice"].model_copy(
        update={"delta_pp": -4.2, "delta_pp_low": -8.4, "delta_pp_high": 0.0}
    )
    measured = measured.model_copy(update={"benchmarks": {"category_choice": one_lost}})
    inputs = measured.gate_inputs()
    assert inputs["benchmarks"] == {
        "category_choice": {
            "delta_pp": -4.2,
            "delta_pp_low": -8.4,
            "delta_pp_high": 0.0,
            "documents": 24,
            "critical": True,
        }
    }
    assert inputs["latency_delta_high"] == measured.latency.latency_delta.high
    assert (inputs["latency_prompts"], inputs["latency_repeats"]) == (8, 2)
    decision = promote_if({**PASSING, "benchmarks": inputs["benchmarks"]})
    (reason,) = decision.failed  # one document of 24 lost is a loss of 4.2 pp: blocked
    assert reason.startswith("benchmark category_choice delta >= -1 pp failed (got -4.200)")


@pytest.mark.parametrize(
    ("drift", "passed"),
    [(-3.0, True), (-20.0, False), (-19.99, True), (-55.0, False), (math.nan, False), (None, 0)],
)
def test_labels_that_moved_away_from_prod_block_the_candidate(drift, passed) -> None:
    decision = promote_if({**PASSING, "baseline_accuracy_drift": drift})
    assert decision.passed is bool(passed)
    if not passed:
        (reason,) = decision.failed
        assert reason.startswith("baseline_accuracy_drift > -20 pp failed")


def test_prods_accuracy_then_and_tonight_becomes_the_drift_input() -> None:
    prod_id = uuid.uuid4()
    then = eval_record(prod_id, DAY, accuracy=0.9)
    prod = SimpleNamespace(adapter_id=prod_id, metrics_json={"eval": then.as_json()})
    drift = evaluate.baseline_drift(prod, {"baseline": {"accuracy": 0.3}})
    assert drift == pytest.approx({"recorded": 0.9, "tonight": 0.3, "delta_pp": -60.0})
    tonight = eval_record(uuid.uuid4(), DAY, baseline_id=prod_id, drift_pp=-60.0)
    assert tonight.gate_inputs()["baseline_accuracy_drift"] == pytest.approx(-60)
    # no prod, or a prod forced in without an evaluation: nothing to compare, not judged
    forced = SimpleNamespace(adapter_id=uuid.uuid4(), metrics_json={"cost_usd": 1.0})
    for baseline in (None, forced):
        assert evaluate.baseline_drift(baseline, {"baseline": {"accuracy": 0.3}}) is None
    assert "baseline_accuracy_drift" not in eval_record(uuid.uuid4(), DAY).gate_inputs()


def test_a_prod_whose_record_does_not_validate_is_an_error_naming_it() -> None:
    prod = SimpleNamespace(
        adapter_id=uuid.uuid4(), metrics_json={"eval": {"val": {"candidate": {"accuracy": 0.9}}}}
    )
    with pytest.raises(RecordInvalid, match=str(prod.adapter_id)):
        evaluate.baseline_drift(prod, {"baseline": {"accuracy": 0.3}})


def test_the_stored_decision_lists_every_clause_with_value_and_threshold() -> None:
    decision = promote_if(FAILING)
    stored = GateRecord.model_validate_json(decision.as_record().model_dump_json())
    assert stored.passed is False
    by_name = {c.name: c for c in stored.clauses}
    assert by_name["accuracy_delta"].model_dump() == {
        "name": "accuracy_delta",
        "op": ">",
        "threshold": 0.5,
        "unit": "pp",
        "value": 0.2,
        "passed": False,
        "note": "",
    }
    assert by_name["benchmark category_choice delta"].threshold == -1.0
    assert stored.failed == decision.failed  # read back, the reasons are the decision's own
