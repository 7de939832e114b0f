"""The promotion rule as one pure function: its full truth table, the threshold edges, and
fail-closed handling of missing, NaN and malformed inputs."""

from __future__ import annotations

import itertools
import math

import pytest

from pria_ml.gate import promote_if

PASSING = {
    "accuracy_delta": 3.0,
    "override_delta": -3.0,
    "safety_flag_pct": 0.0,
    "latency_delta": 0.01,
    "latency_delta_low": -0.02,
    "benchmarks": {
        "category_choice": {"delta_pp": 0.0, "critical": True},
        "action_format": {"delta_pp": -12.0, "critical": False},
    },
}
FAILING = {
    "accuracy_delta": 0.2,
    "override_delta": -0.5,
    "safety_flag_pct": 4.0,
    "latency_delta_low": 0.09,
    "benchmarks": {
        "category_choice": {"delta_pp": -5.0, "critical": True},
        "action_format": {"delta_pp": -12.0, "critical": False},
    },
}
KEYS = ("accuracy_delta", "override_delta", "safety_flag_pct", "latency_delta_low", "benchmarks")


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
        ("latency_delta_low", 0.05, False),  # < 0.05
        ("latency_delta_low", 0.0499, True),
    ],
)
def test_threshold_edges(key: str, value: float, passed: bool) -> None:
    assert promote_if({**PASSING, key: value}).passed is passed


@pytest.mark.parametrize(("delta", "passed"), [(-1.0, True), (-1.0001, False), (5.0, True)])
def test_a_critical_benchmark_may_lose_at_most_one_point(delta: float, passed: bool) -> None:
    benchmarks = {"category_choice": {"delta_pp": delta, "critical": True}}
    assert promote_if({**PASSING, "benchmarks": benchmarks}).passed is passed


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
    for rule in ("accuracy_delta > 0.5 pp", "latency_delta_low < 0.05", "benchmark category"):
        assert rule in text
    assert text.count("FAIL") == 5


def test_against_the_bare_base_latency_is_measured_but_not_judged() -> None:
    first = {**PASSING, "latency_baseline": "bare base model", "latency_delta_low": 0.3}
    decision = promote_if(first)
    assert decision.passed
    assert "no previous adapter" in decision.clauses[3].note
    assert not promote_if({**first, "latency_delta_low": math.nan}).passed  # still required
    assert not promote_if({**first, "latency_baseline": "prod adapter"}).passed
