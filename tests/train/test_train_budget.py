"""Pre-flight arithmetic: peak memory of a night on Mistral-7B, tokens/s from FLOPs, cost."""

from __future__ import annotations

import pytest

from pria_ml import train
from pria_ml.settings import GpuTier, Settings
from pria_ml.training import cost, memory

# Mistral-7B-Instruct-v0.3's config.json (v0.1/v0.2 differ only in vocab_size 32000).
MISTRAL_7B = memory.ModelShape(
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=32768,
)


def spec_estimate(
    micro_batch_tokens: int,
    optimizer: str = "paged_adamw_8bit",
    *,
    lora_r: int | None = None,
    processes: int = 1,
):
    spec = train.PROFILES["spec"]
    return memory.estimate(
        MISTRAL_7B,
        lora_r=lora_r or spec.lora_r,
        lora_targets=spec.lora_target_modules,
        micro_batch_tokens=micro_batch_tokens,
        labelled_share=0.1,
        gradient_checkpointing=True,
        optimizer=optimizer,
        lora_dropout=spec.lora_dropout,
        processes=processes,
    )  # fmt: skip


def test_mistral_7b_parameter_counts() -> None:
    assert MISTRAL_7B.parameters == 7_248_023_552  # the published 7.25 B of v0.3
    assert MISTRAL_7B.lora_parameters(64) == 167_772_160
    assert MISTRAL_7B.lora_parameters(32) == 83_886_080  # the spec's "~85 M"
    assert MISTRAL_7B.lora_parameters(64, ("q_proj", "k_proj", "v_proj", "o_proj")) == 54_525_952


def test_spec_night_fits_the_spec_budget_of_8_gb_on_an_a10g_at_the_upper_band() -> None:
    estimate = spec_estimate(micro_batch_tokens=2048)
    assert estimate.low < estimate.total < estimate.high
    assert estimate.high * 2**30 < 8e9
    assert estimate.high < Settings().tier.gpu_memory_gib
    # the 4-bit base is the largest part: 6.98 B projection weights at ~4.13 bits
    assert 3.3 < estimate.base_4bit < 3.4
    # rank 64 on every projection (the spec's hyper-parameter block) would not, at its upper end
    assert spec_estimate(2048, lora_r=64).high * 2**30 > 8e9


def test_ddp_adds_a_bucket_copy_of_the_adapter_gradients() -> None:
    one, two = spec_estimate(2048), spec_estimate(2048, processes=2)
    assert two.ddp_buckets == one.adapter_gradients > 0 == one.ddp_buckets
    assert two.total - one.total == pytest.approx(one.adapter_gradients)


def test_the_worst_micro_batch_unsplit_would_not_fit_the_spec_budget() -> None:
    # 8 examples x 2,048 tokens in one forward: why micro-batches are capped by tokens.
    assert spec_estimate(micro_batch_tokens=8 * 2048).total > 8e9 / 2**30


def test_paged_8bit_optimizer_saves_six_bytes_per_adapter_parameter() -> None:
    saved = spec_estimate(2048, "adamw_torch").total - spec_estimate(2048).total
    lora = MISTRAL_7B.lora_parameters(train.PROFILES["spec"].lora_r)
    assert saved == pytest.approx(lora * 6 / 2**30)


def test_flops_per_token_is_six_times_the_base_with_checkpointing() -> None:
    lora = MISTRAL_7B.lora_parameters(64)
    flops = cost.flops_per_token(MISTRAL_7B, lora, gradient_checkpointing=True)
    matmul = MISTRAL_7B.linear_parameters + 32768 * 4096
    assert flops == 6 * matmul + 8 * lora
    assert 6 * MISTRAL_7B.parameters < flops < 8 * MISTRAL_7B.parameters
    assert cost.flops_per_token(MISTRAL_7B, lora, gradient_checkpointing=False) < flops


def test_throughput_is_configured_else_measured_else_physics() -> None:
    flops = 44e9
    a10g = GpuTier(gpu_type="A10G", usd_per_gpu_hour=2.13)
    physics = cost.throughput(a10g, flops, None)
    assert physics.tokens_per_second == pytest.approx(70e12 * 0.30 / flops)
    assert physics.source.startswith("physics")
    measured = cost.throughput(a10g, flops, (812.0, "adapter x, dataset 2026-11-24"))
    assert (measured.tokens_per_second, measured.source) == (
        812.0,
        "measured (adapter x, dataset 2026-11-24)",
    )
    fixed = GpuTier(gpu_type="A10G", usd_per_gpu_hour=2.13, tokens_per_second=1500)
    assert cost.throughput(fixed, flops, (812.0, "x")).tokens_per_second == 1500


def test_unknown_gpu_type_needs_its_peak_and_memory() -> None:
    with pytest.raises(ValueError, match="peak_bf16_tflops and gpu_memory_gib"):
        GpuTier(gpu_type="MI300X", usd_per_gpu_hour=4.0)
    tier = GpuTier(
        gpu_type="MI300X", usd_per_gpu_hour=4.0, peak_bf16_tflops=1307, gpu_memory_gib=190
    )
    assert tier.peak_bf16_tflops == 1307


def test_next_estimate_uses_the_newest_measured_throughput_of_the_gpu_type(train_db) -> None:
    import datetime

    from pria_ml import registry

    assert cost.measured_tokens_per_second(train_db, "H100") is None
    for day, rate in ((1, 650.0), (2, 702.5)):
        registry.register_candidate(
            train_db,
            dataset_date=datetime.date(2026, 9, day),
            artifact_uri=f"file:///measured/{day}.safetensors",
            artifact_sha256="0" * 64,
            base_model="mistral-7b",
            metrics={"throughput": {"gpu_type": "H100", "tokens_per_second_per_gpu": rate}},
        )
    measured = cost.measured_tokens_per_second(train_db, "H100")
    assert measured is not None and measured[0] == 702.5 and "2026-09-02" in measured[1]
    h100 = GpuTier(gpu_type="H100", usd_per_gpu_hour=4.0)
    assert cost.throughput(h100, 44e9, measured).tokens_per_second == 702.5


def test_budget_guard_refuses_once_the_nights_spend_so_far_plus_the_estimate_passes_it(
    registry_settings,
) -> None:
    """An earlier attempt of the night (a GPU machine that ran 8 hours) has spent most of the
    budget: an estimate that fits on its own is refused, and another night is not charged."""
    import datetime

    from pria_ml import registry
    from pria_ml.db import database
    from pria_ml.errors import BudgetExceeded

    settings = registry_settings.model_copy(update={"nightly_budget_usd": 20.0})
    tier, night = settings.tier, datetime.date(2026, 11, 24)
    three_hours = cost.estimate(
        3 * 3600 * 1000,
        tier_name=settings.gpu_tier,
        tier=tier,
        rate=cost.Throughput(1000.0, "configured"),
        budget_usd=settings.nightly_budget_usd,
    )
    assert three_hours.usd == pytest.approx(3 * tier.usd_per_gpu_hour) and three_hours.usd < 20
    cost.check_budget(three_hours, spent_usd=cost.spent_on_night(settings, night))  # fits

    booted = datetime.datetime(2026, 11, 25, 1, 30, tzinfo=datetime.UTC)
    registry.record_machine_run(
        database(settings),
        machine_id="fly-machine-1",
        dataset_date=night,
        booted_at=booted,
        exited_at=booted + datetime.timedelta(hours=8),
        gpu_type=tier.gpu_type,
        gpus=1,
        usd_per_gpu_hour=tier.usd_per_gpu_hour,
    )
    spent = cost.spent_on_night(settings, night)
    assert spent == pytest.approx(8 * tier.usd_per_gpu_hour) and spent < 20
    assert spent + three_hours.usd > 20
    with pytest.raises(BudgetExceeded) as refused:
        cost.check_budget(three_hours, spent_usd=spent)
    assert f"${spent:.2f} already spent on this night + ${three_hours.usd:.2f}" in str(
        refused.value
    )
    assert "over the nightly budget of $20.00" in str(refused.value)
    next_night = night + datetime.timedelta(days=1)
    cost.check_budget(three_hours, spent_usd=cost.spent_on_night(settings, next_night))
