"""Pre-flight cost estimate of a training run, and the nightly budget guard.

Pure arithmetic on the configured GPU tier (spec section 8, ``settings.tier``): a run that
processes ``tokens`` training tokens at the tier's QLoRA throughput takes
``tokens / tokens_per_second`` seconds per GPU; GPU-hours times the tier's $/GPU-hour is the
estimate. ``check_budget`` refuses a run that would cost more than the nightly budget, before
any GPU time is spent.

Where the throughput comes from, in order (``throughput``): the tier's fixed
``tokens_per_second`` when one is configured; else the newest run measured on the tier's GPU
type (``metrics_json.throughput``, read by ``measured_tokens_per_second``); else physics, the
GPU's dense bf16 peak times the tier's planning MFU over the FLOPs one training token costs
(``flops_per_token``). docs/training.md ("Throughput from FLOPs") has the figures and sources.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from pria_ml.errors import BudgetExceeded
from pria_ml.settings import GpuTier

if TYPE_CHECKING:
    from pria_ml.db import Database
    from pria_ml.memory import ModelShape


def flops_per_token(
    shape: ModelShape, lora_parameters: int, *, gradient_checkpointing: bool
) -> float:
    """Matmul FLOPs one training token costs in QLoRA (attention scores left out: < 2 %).

    The frozen base does a forward (2 x N), the backward's input gradients (2 x N) and, with
    checkpointing, a second forward (2 x N): 6 x N, not the 8 x N of full fine-tuning, because
    no weight gradient of the base is computed. The adapter also gets weight gradients:
    (6 or 8) x its parameters. N counts the decoder projections and ``lm_head``; an embedding
    lookup is no matmul.
    """
    matmul_parameters = shape.linear_parameters + shape.vocab_size * shape.hidden_size
    forwards = 2 if gradient_checkpointing else 1
    base = 2 * matmul_parameters * (forwards + 1)
    adapter = 2 * lora_parameters * (forwards + 2)
    return float(base + adapter)


@dataclass(frozen=True)
class Throughput:
    """Tokens/s per GPU the estimate plans with, and where that figure comes from."""

    tokens_per_second: float
    source: str  # "configured", "measured (adapter ..., D)", or "physics (...)"


def physics_tokens_per_second(tier: GpuTier, flops: float) -> float:
    """The tier GPU's dense bf16 peak x the planning MFU, over ``flops`` per token."""
    assert tier.peak_bf16_tflops is not None  # filled from GPU_SPECS by the tier's validator
    return tier.peak_bf16_tflops * 1e12 * tier.planning_mfu / flops


def throughput(tier: GpuTier, flops: float, measured: tuple[float, str] | None) -> Throughput:
    """Configured figure, else the measured one, else physics (see the module docstring)."""
    if tier.tokens_per_second is not None:
        return Throughput(tier.tokens_per_second, "configured (tier tokens_per_second)")
    if measured is not None:
        return Throughput(measured[0], f"measured ({measured[1]})")
    return Throughput(
        physics_tokens_per_second(tier, flops),
        f"physics ({flops / 1e9:.1f} GFLOP/token, {tier.peak_bf16_tflops:g} TFLOPS bf16 peak "
        f"x {tier.planning_mfu:.0%} MFU)",
    )


def measured_tokens_per_second(db: Database, gpu_type: str) -> tuple[float, str] | None:
    """``(tokens/s per GPU, which run)`` of the newest registered run on ``gpu_type``."""
    from pria_ml.migrate import ensure_current
    from pria_ml.sqlfiles import read_sql

    ensure_current(db)
    with db.connect() as conn:
        row = conn.execute(
            read_sql("train/measured_throughput.sql"), {"gpu_type": gpu_type}
        ).fetchone()
    if row is None:
        return None
    return float(row[0]), f"adapter {row[1]}, dataset {row[2]}"


@dataclass(frozen=True)
class CostEstimate:
    """What a run is expected to cost on the configured tier."""

    tier: str
    gpu_type: str
    tokens: int
    tokens_per_second: float
    throughput_source: str
    gpu_hours: float
    usd: float
    budget_usd: float

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def estimate(
    tokens: int, *, tier_name: str, tier: GpuTier, rate: Throughput, budget_usd: float
) -> CostEstimate:
    """GPU-hours and $ to train on ``tokens`` tokens at ``rate``, all epochs counted.

    Data-parallel GPUs share the tokens: more GPUs shorten the wall time, not the GPU-hours.
    """
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    gpu_hours = tokens / rate.tokens_per_second / 3600.0
    return CostEstimate(
        tier=tier_name,
        gpu_type=tier.gpu_type,
        tokens=tokens,
        tokens_per_second=rate.tokens_per_second,
        throughput_source=rate.source,
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
