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

import datetime
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pria_ml import clock, registry
from pria_ml.db import database
from pria_ml.errors import BudgetExceeded
from pria_ml.registry import NightSpend
from pria_ml.settings import GpuTier

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pria_ml.db import Database
    from pria_ml.settings import Settings
    from pria_ml.training.memory import ModelShape


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
    measured = registry.measured_throughput(db, gpu_type)
    if measured is None:
        return None
    tokens_per_second, adapter_id, date = measured
    return tokens_per_second, f"adapter {adapter_id}, dataset {date}"


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


def spent_on_night(settings: Settings, date: datetime.date) -> float:
    """USD already recorded for the night of ``date`` by GPU machines (boot to now, this one
    included when it recorded its start): what an earlier attempt or a retry of the night has
    spent."""
    return sum(
        night.usd
        for night in recorded_nights(settings)
        if night.date == date and night.source == MACHINE_SOURCE
    )


def check_budget(cost: CostEstimate, *, spent_usd: float = 0.0) -> None:
    """Raise ``BudgetExceeded`` when what the night already spent (``spent_usd``: its GPU
    machines so far) plus the estimate is over the nightly budget."""
    if spent_usd + cost.usd > cost.budget_usd:
        spent = f"${spent_usd:.2f} already spent on this night + " if spent_usd else ""
        raise BudgetExceeded(
            f"training {cost.tokens:,} tokens on tier {cost.tier!r} ({cost.gpu_type}, "
            f"{cost.tokens_per_second:,.0f} tokens/s) is estimated at {cost.gpu_hours:.2f} "
            f"GPU-hours = {spent}${cost.usd:.2f}, over the nightly budget of "
            f"${cost.budget_usd:.2f}; "
            "raise PRIA_NIGHTLY_BUDGET_USD, use a faster tier (PRIA_GPU_TIER) or train on fewer "
            "tokens (--max-steps, --num-train-epochs)"
        )


# ---------------------------------------------------------------------------------------------
# Spend: what the recorded runs cost (``pria-ml cost``, the nightly's cost metrics). Read from
# model_registry, where train records each run's cost_usd and gpu_hours in metrics_json.

SPEND_WINDOW_DAYS = 30  # spec section 8: the budget alert is a 30-day roll-up
MACHINE_SOURCE = "machine boot to exit"  # NightSpend.source of nights GPU machines recorded


@dataclass(frozen=True)
class SpendReport:
    """Per-night spend of the last SPEND_WINDOW_DAYS, the rolling total and the limits."""

    as_of: datetime.date
    nights: list[NightSpend]
    window_usd: float
    all_time_usd: float
    nightly_budget_usd: float
    alert_usd: float

    @property
    def window_start(self) -> datetime.date:
        return self.as_of - datetime.timedelta(days=SPEND_WINDOW_DAYS - 1)

    @property
    def alerting(self) -> bool:
        return self.window_usd > self.alert_usd

    def as_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "window_days": SPEND_WINDOW_DAYS,
            "window_usd": round(self.window_usd, 4),
            "all_time_usd": round(self.all_time_usd, 4),
            "nightly_budget_usd": self.nightly_budget_usd,
            "alert_usd": self.alert_usd,
            "alerting": self.alerting,
            "nights": [{**asdict(night), "date": night.date.isoformat()} for night in self.nights],
        }


def recorded_nights(settings: Settings) -> list[NightSpend]:
    """Every night with a training run recorded in model_registry, oldest first."""
    return registry.spend_by_night(database(settings))


def spend(settings: Settings, *, as_of: datetime.date | None = None) -> SpendReport:
    """Training spend per night over the 30 days ending ``as_of`` (default: today on the real
    clock, UTC), their
    total against ``cost_alert_usd_30d`` and each night against ``nightly_budget_usd``.

    Raises DatabaseUnavailable when the registry cannot be reached.
    """
    as_of = clock.today(as_of)
    every = recorded_nights(settings)
    start = as_of - datetime.timedelta(days=SPEND_WINDOW_DAYS - 1)
    window = [night for night in every if start <= night.date <= as_of]
    return SpendReport(
        as_of=as_of,
        nights=window,
        window_usd=sum(night.usd for night in window),
        all_time_usd=sum(night.usd for night in every),
        nightly_budget_usd=settings.nightly_budget_usd,
        alert_usd=settings.cost_alert_usd_30d,
    )


def render_spend(report: SpendReport) -> RenderableType:
    """A table of the nights with their spend, and the rolling total against the alert."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=f"training spend {report.window_start} .. {report.as_of}", title_justify="left"
    )
    for column in ("night", "runs", "GPU-hours", "cost", "vs nightly budget", "hardware"):
        table.add_column(column, justify="left" if column in ("night", "hardware") else "right")
    for night in report.nights:
        share = night.usd / report.nightly_budget_usd
        table.add_row(
            night.date.isoformat(),
            str(night.runs),
            f"{night.gpu_hours:.2f}",
            f"${night.usd:.2f}",
            Text(f"{share:.0%}", style="red" if night.over(report.nightly_budget_usd) else ""),
            night.hardware,
        )
    colour = "red" if report.alerting else "green"
    total = Text.from_markup(
        f"{SPEND_WINDOW_DAYS}-day spend [{colour}]${report.window_usd:.2f}[/] of the "
        f"${report.alert_usd:.2f} alert threshold; nightly budget ${report.nightly_budget_usd:.2f}"
        f"; all time ${report.all_time_usd:.2f}"
    )
    return Group(table, total)
