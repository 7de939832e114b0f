"""The gate cannot be fooled, and does not block equal adapters on noise: seeded measurements
drawn from the measured noise model (``quality.precision``) at the sizes the evaluation uses,
through the evaluation's own summaries (``evaluate.benchmark_result``,
``evaluate.summarise_latency``) and the rule (``rule.promote_if``). No model is trained."""

from __future__ import annotations

import numpy as np
import pytest

from pria_ml import evaluate
from pria_ml.quality import precision
from pria_ml.quality.rule import promote_if

RUNS = 20
OTHER_CLAUSES = {"accuracy_delta": 3.0, "override_delta": -3.0, "safety_flag_pct": 0.0}
PRECISE_LATENCY = {"latency_delta": 0.0, "latency_delta_low": -0.01, "latency_delta_high": 0.01}
NO_BENCHMARK_LOSS = {"t": {"delta_pp": 0.0, "delta_pp_low": 0.0, "delta_pp_high": 0.0}}


def benchmark_nights(lost_share: float) -> list:
    """Gate decisions on one critical task of the size the noise model asks for: seeded
    per-document scores of a baseline and of a candidate that answers a measured share of
    documents differently (either way) and loses ``lost_share`` of them on top."""
    documents = precision.documents_needed(precision.BENCHMARK_DISCORDANCE)
    decisions = []
    for seed in range(RUNS):
        rng = np.random.default_rng(seed)
        baseline = (rng.random(documents) < 0.6).astype(float)
        candidate = baseline.copy()
        flipped = rng.random(documents) < precision.BENCHMARK_DISCORDANCE
        candidate[flipped] = 1 - baseline[flipped]
        right = np.flatnonzero(candidate == 1)
        candidate[rng.choice(right, round(lost_share * documents), replace=False)] = 0
        task = evaluate.benchmark_result(candidate, baseline, critical=True, metric="acc")
        inputs = {**OTHER_CLAUSES, **PRECISE_LATENCY, "benchmarks": {"task": task}}
        decisions.append(promote_if(inputs))
    return decisions


def latency_nights(slowdown: float) -> list:
    """Gate decisions on latency timed as the evaluation times it (the default prompts x
    repeats), each timing drawn from the measured noise model, seeded."""
    decisions = []
    for seed in range(RUNS):
        candidate, baseline = precision.simulate_latency(
            precision.LATENCY_NOISE,
            precision.LATENCY_PROMPT_SECONDS,
            precision.LATENCY_REPEATS,
            slowdown=slowdown,
            seed=seed,
        )
        latency = evaluate.summarise_latency(
            {"candidate": candidate, "baseline": baseline}, new_tokens=16, seed=seed
        )
        delta = latency["latency_delta"]
        inputs = {
            **OTHER_CLAUSES,
            "benchmarks": NO_BENCHMARK_LOSS,
            "latency_delta": delta["value"],
            "latency_delta_low": delta["low"],
            "latency_delta_high": delta["high"],
            "latency_prompts": latency["prompts"],
            "latency_repeats": latency["repeats"],
        }
        decisions.append(promote_if(inputs))
    return decisions


def test_a_candidate_losing_3pp_on_a_critical_task_is_blocked_every_night() -> None:
    decisions = benchmark_nights(lost_share=0.03)
    assert not any(d.passed for d in decisions)
    for decision in decisions:
        (reason,) = decision.failed
        assert reason.startswith("benchmark task delta >= -1 pp failed")


def test_two_equal_adapters_pass_the_benchmark_clause_at_least_19_nights_of_20() -> None:
    passed = sum(d.passed for d in benchmark_nights(lost_share=0.0))
    assert passed >= 19, passed


def test_a_candidate_10_percent_slower_is_blocked() -> None:
    # Sized to block it in 99.9 % of nights (precision.LATENCY_TARGET_SE): in 19 of these 20 or
    # more; every night it slips through, its point estimate was under +5 % and precise.
    decisions = latency_nights(slowdown=0.10)
    blocked = [d for d in decisions if not d.passed]
    assert len(blocked) >= 19, len(blocked)
    for decision in blocked:
        (reason,) = decision.failed
        assert reason.startswith("latency_delta < 0.05 failed")


def test_two_equal_adapters_pass_the_latency_clause_at_least_19_nights_of_20() -> None:
    decisions = latency_nights(slowdown=0.0)
    passed = sum(d.passed for d in decisions)
    assert passed >= 19, [d.failed for d in decisions if not d.passed]


def test_the_repeats_timed_are_the_ones_the_noise_model_asks_for() -> None:
    needed = precision.latency_repeats_needed(
        precision.LATENCY_NOISE, precision.LATENCY_PROMPT_SECONDS
    )
    assert needed == precision.LATENCY_REPEATS


@pytest.mark.parametrize("discordance", [0.0, precision.BENCHMARK_DISCORDANCE, 0.02])
def test_more_discordant_adapters_need_more_documents(discordance: float) -> None:
    documents = precision.documents_needed(discordance)
    assert precision.benchmark_pass_rate(discordance, documents) >= 0.95
    smaller = [n for n in (24, 50, 100, 200, 400, 800, 1600) if n < documents]
    assert all(precision.benchmark_pass_rate(discordance, n) < 0.95 for n in smaller)
