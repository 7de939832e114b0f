"""Pure metric functions of the evaluation: per-sample scores and paired confidence intervals.

Everything here is arithmetic on strings and arrays - no model, no I/O - so each function is
tested on hand-made cases. ``evaluate.py`` applies them to generated outputs.

- ``normalise_action``: the canonical form of an agent action. ``categorize(category_id=7,
  merchant="Figma")`` and ``categorize( merchant='figma', category_id = 7 )`` are the same
  action; for anything that is not a call, whitespace is collapsed and case folded.
- ``exact_match``: the normalised output equals the normalised approved action.
- ``would_override``: a human would have corrected the output. For a call that carries a
  ``category_id`` (PRIA's categorize action) only the category decides - a reviewer corrects the
  filing, not the spelling of the merchant; for any other action it is ``not exact_match``.
- ``rouge_l``: ROUGE-L F-measure from Google's ``rouge-score`` package.
- ``paired_bootstrap``: candidate minus baseline on the same samples, with a seeded percentile
  bootstrap interval over samples (resampled in pairs, so prompt difficulty cancels out).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

BOOTSTRAP_SAMPLES = 2_000
CONFIDENCE = 0.95
_CALL = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*\((.*)\)\s*$", re.DOTALL)


def _literal(node: ast.expr) -> str:
    try:
        value = ast.literal_eval(node)
    except ValueError:
        value = ast.unparse(node)
    return " ".join(str(value).split()).casefold()


def parse_action(text: str) -> tuple[str, dict[str, str]] | None:
    """``(function, {argument: normalised value})`` of a call-shaped action, else None."""
    match = _CALL.match(text or "")
    if match is None:
        return None
    try:
        call = ast.parse(f"f({match.group(2)})", mode="eval").body
    except SyntaxError:
        return None
    assert isinstance(call, ast.Call)
    if call.args or any(k.arg is None for k in call.keywords):
        return None
    return match.group(1).casefold(), {k.arg: _literal(k.value) for k in call.keywords if k.arg}


def normalise_action(text: str) -> str:
    """The canonical form of an action: sorted keyword arguments, case and spaces folded."""
    parsed = parse_action(text)
    if parsed is None:
        return " ".join((text or "").split()).casefold()
    name, arguments = parsed
    return f"{name}({', '.join(f'{k}={arguments[k]!r}' for k in sorted(arguments))})"


def exact_match(output: str, reference: str) -> bool:
    """Whether ``output`` is the approved action ``reference`` once both are normalised."""
    return normalise_action(output) == normalise_action(reference)


def would_override(output: str, reference: str) -> bool:
    """Whether a human would have corrected ``output`` given the approved ``reference``.

    When the approved action is a call with a ``category_id``, the output is kept exactly when
    it is a call of the same function with the same category; otherwise the output must match
    the approved action exactly (normalised).
    """
    approved = parse_action(reference)
    if approved is None or "category_id" not in approved[1]:
        return not exact_match(output, reference)
    produced = parse_action(output)
    if produced is None:
        return True
    return (
        produced[0] != approved[0] or produced[1].get("category_id") != approved[1]["category_id"]
    )


@cache
def _rouge_scorer() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(output: str, reference: str) -> float:
    """ROUGE-L F-measure of ``output`` against ``reference`` (0 when either is empty)."""
    return float(_rouge_scorer().score(reference or "", output or "")["rougeL"].fmeasure)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap interval (``low`` <= ``high``)."""

    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def mean_difference(candidate: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Mean of ``candidate`` minus mean of ``baseline`` along the last axis."""
    import numpy as np

    return np.mean(candidate, axis=-1) - np.mean(baseline, axis=-1)


def p95_ratio_minus_one(candidate: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """``latency_delta``: p95(candidate) / p95(baseline) - 1, along the last axis."""
    import numpy as np

    return np.percentile(candidate, 95, axis=-1) / np.percentile(baseline, 95, axis=-1) - 1


def paired_bootstrap(
    candidate: Sequence[float],
    baseline: Sequence[float],
    statistic: Callable[[np.ndarray, np.ndarray], np.ndarray] = mean_difference,
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> Interval:
    """``statistic(candidate, baseline)`` with a 95% percentile bootstrap interval.

    Both sequences hold one value per sample, in the same order; each bootstrap replicate draws
    sample indices with replacement and keeps the pairs together. ``statistic`` reduces the
    last axis (all replicates are computed in one call). Seeded: the same inputs give the same
    interval. Empty input gives NaNs, which the gate treats as missing.
    """
    import numpy as np

    a = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in length: {a.shape} vs {b.shape}")
    if a.size == 0:
        return Interval(math.nan, math.nan, math.nan)
    indices = np.random.default_rng(seed).integers(0, a.size, size=(samples, a.size))
    replicates = statistic(a[indices], b[indices])
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return Interval(float(statistic(a, b)), float(low), float(high))


def percentage_points(interval: Interval) -> Interval:
    """A difference of rates (0..1) in percentage points."""
    return Interval(interval.value * 100, interval.low * 100, interval.high * 100)
