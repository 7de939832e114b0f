"""Pre-flight cost estimate of a training run, and the nightly budget guard.

Pure arithmetic on the configured GPU tier (spec section 8, ``settings.tier``): a run that
processes ``tokens`` training tokens at the tier's QLoRA throughput takes
``tokens / tokens_per_second`` seconds per GPU; GPU-hours times the tier's $/GPU-hour is the
estimate. ``check_budget`` refuses a run that would cost more than the nightly budget, before
any GPU time is spent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from pria_ml.errors import BudgetExceeded
from pria_ml.settings import GpuTier


@dataclass(frozen=True)
class CostEstimate:
    """What a run is expected to cost on the configured tier."""

    tier: str
    gpu_type: str
    tokens: int
    tokens_per_second: float
    gpu_hours: float
    usd: float
    budget_usd: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def estimate(tokens: int, *, tier_name: str, tier: GpuTier, budget_usd: float) -> CostEstimate:
    """GPU-hours and $ to train on ``tokens`` tokens, all epochs counted.

    Data-parallel GPUs share the tokens: more GPUs shorten the wall time, not the GPU-hours.
    """
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    gpu_hours = tokens / tier.tokens_per_second / 3600.0
    return CostEstimate(
        tier=tier_name,
        gpu_type=tier.gpu_type,
        tokens=tokens,
        tokens_per_second=tier.tokens_per_second,
        gpu_hours=gpu_hours,
        usd=gpu_hours * tier.usd_per_gpu_hour,
        budget_usd=budget_usd,
    )


def check_budget(cost: CostEstimate) -> None:
    """Raise ``BudgetExceeded`` when the estimate is over the nightly budget."""
    if cost.usd > cost.budget_usd:
        raise BudgetExceeded(
            f"training {cost.tokens:,} tokens on tier {cost.tier!r} ({cost.gpu_type}, "
            f"{cost.tokens_per_second:,.0f} tokens/s) is estimated at {cost.gpu_hours:.2f} "
            f"GPU-hours = ${cost.usd:.2f}, over the nightly budget of ${cost.budget_usd:.2f}; "
            "raise PRIA_NIGHTLY_BUDGET_USD, use a faster tier (PRIA_GPU_TIER) or train on fewer "
            "tokens (--max-steps, --num-train-epochs)"
        )
