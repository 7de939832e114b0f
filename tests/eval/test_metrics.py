"""Each metric on hand-made cases, and the paired bootstrap's intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pria_ml.quality import metrics

FIGMA = 'categorize(category_id=7, merchant="Figma")'


@pytest.mark.parametrize(
    ("output", "reference", "exact"),
    [
        (FIGMA, FIGMA, True),
        ("categorize( merchant='figma',category_id = 7 )", FIGMA, True),
        ('categorize(category_id=7, merchant="Figma")  ', FIGMA, True),
        ('categorize(category_id=6, merchant="Figma")', FIGMA, False),
        ('categorize(category_id=7, merchant="Figma", note="x")', FIGMA, False),
        ("set_category  Travel", "set_category travel", True),
        ("set_category lodging", "set_category travel", False),
        ("", "set_category travel", False),
    ],
)  # fmt: skip
def test_exact_match_compares_normalised_actions(output: str, reference: str, exact: bool) -> None:
    assert metrics.exact_match(output, reference) is exact


@pytest.mark.parametrize(
    ("output", "overridden"),
    [
        ('categorize(category_id=7, merchant="Figma")', False),
        ('categorize(category_id=7, merchant="figma inc")', False),  # same filing, spelling aside
        ('categorize(category_id=7, merchant="Figma", note="x")', False),
        ('categorize(category_id=6, merchant="Figma")', True),
        ('approve(category_id=7, merchant="Figma")', True),
        ("category 7", True),
        ("", True),
    ],
)
def test_override_follows_the_category_decision(output: str, overridden: bool) -> None:
    assert metrics.would_override(output, FIGMA) is overridden


def test_override_of_other_actions_is_not_exact_match() -> None:
    assert metrics.would_override("set_category lodging", "set_category travel")
    assert not metrics.would_override("set_category  TRAVEL", "set_category travel")


def test_rouge_l_on_hand_made_cases() -> None:
    assert metrics.rouge_l("set category travel", "set category travel") == pytest.approx(1.0)
    assert metrics.rouge_l("lodging", "set category travel") == 0.0
    # LCS "set travel" = 2 tokens: precision 2/2, recall 2/3, F = 0.8
    assert metrics.rouge_l("set travel", "set category travel") == pytest.approx(0.8)
    assert metrics.rouge_l("", "set category travel") == 0.0


def test_paired_bootstrap_of_a_mean_difference() -> None:
    candidate = [1.0] * 80 + [0.0] * 20
    baseline = [1.0] * 50 + [0.0] * 50
    interval = metrics.paired_bootstrap(candidate, baseline, seed=3)
    assert interval.value == pytest.approx(0.30)
    assert 0.15 < interval.low < 0.30 < interval.high < 0.45
    assert interval == metrics.paired_bootstrap(candidate, baseline, seed=3)  # seeded


def test_identical_models_have_a_zero_width_interval_at_zero() -> None:
    same = [1.0, 0.0, 1.0, 1.0, 0.0]
    assert metrics.paired_bootstrap(same, same) == metrics.Interval(0.0, 0.0, 0.0)


def test_pairing_cancels_prompt_difficulty() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 10, 200)
    candidate, baseline = difficulty + 1.0, difficulty  # always exactly 1.0 better
    interval = metrics.paired_bootstrap(candidate, baseline)
    assert interval.low == pytest.approx(1.0) and interval.high == pytest.approx(1.0)


def test_p95_latency_ratio() -> None:
    baseline = np.linspace(1.0, 2.0, 101)
    assert float(metrics.p95_ratio_minus_one(baseline * 1.2, baseline)) == pytest.approx(0.2)
    interval = metrics.paired_bootstrap(baseline * 1.2, baseline, metrics.p95_ratio_minus_one)
    assert interval.low == pytest.approx(0.2) and interval.high == pytest.approx(0.2)


def test_empty_input_gives_nan_which_the_gate_rejects() -> None:
    interval = metrics.paired_bootstrap([], [])
    assert math.isnan(interval.value) and math.isnan(interval.low)


def test_percentage_points() -> None:
    interval = metrics.percentage_points(metrics.Interval(0.03, -0.01, 0.07))
    assert interval.as_dict() == pytest.approx({"value": 3.0, "low": -1.0, "high": 7.0})
