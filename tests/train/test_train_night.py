"""A night sized to its time target: the token budget, warm start on the new days plus a
replay sample, full retraining; and the pieces of the multi-process fixes that are pure."""

from __future__ import annotations

import datetime

import pytest
import torch

from pria_ml import train
from pria_ml.operations import nightly
from pria_ml.training import selection

OLD, NEW = datetime.date(2026, 11, 1), datetime.date(2026, 11, 20)


def test_token_budget_is_the_tier_throughput_times_the_time_target() -> None:
    # The figure: 477 tokens/s on an A10G for 45 minutes is about 1.29 M tokens.
    assert selection.token_budget(477, 1, 45) == 1_287_900
    assert selection.token_budget(477, 2, 45) == 2 * 1_287_900


def test_warm_start_takes_every_new_example_then_replays_old_ones_within_the_budget() -> None:
    lengths = [100] * 10
    dates = [OLD] * 6 + [NEW] * 4
    chosen = selection.select(
        lengths, dates, trained_through=OLD, budget_tokens=700, epochs=1, replay_ratio=0.5,
        seed=0,
    )  # fmt: skip
    assert chosen.new_examples == 4 and chosen.replay_examples == 2  # 0.5 x 400 new tokens
    assert {i for i in chosen.indices if dates[i] == NEW} == {6, 7, 8, 9}
    assert chosen.tokens_per_epoch == 600 <= chosen.budget_tokens

    # A budget smaller than the new days: a sample of them, nothing replayed.
    small = selection.select(
        lengths, dates, trained_through=OLD, budget_tokens=250, epochs=1, replay_ratio=1.0,
        seed=0,
    )  # fmt: skip
    assert (small.new_examples, small.replay_examples) == (2, 0)


def test_full_retraining_samples_the_whole_split_and_epochs_share_the_budget() -> None:
    lengths = [100] * 10
    dates = [OLD] * 6 + [NEW] * 4
    every = selection.select(
        lengths, dates, trained_through=None, budget_tokens=10_000, epochs=1, replay_ratio=1,
        seed=0,
    )  # fmt: skip
    assert every.indices == list(range(10))
    two_epochs = selection.select(
        lengths, dates, trained_through=None, budget_tokens=1_000, epochs=2, replay_ratio=1,
        seed=0,
    )  # fmt: skip
    assert len(two_epochs.indices) == 5  # 2 epochs x 5 x 100 tokens = the budget


def test_split_batch_evaluation_loss_stays_on_the_device_of_its_passes() -> None:
    # The meta device stands in for CUDA: a float() round trip, or a tensor built on the host,
    # cannot come out on it (the CUDA crash: split batches on the CPU, unsplit on the GPU).
    sums = [torch.tensor(6.0, device="meta"), torch.tensor(2.0, device="meta")]
    counts = [torch.tensor(3, device="meta"), torch.tensor(1, device="meta")]
    assert train.pass_weighted_mean(sums, counts).device.type == "meta"
    host = train.pass_weighted_mean(
        [torch.tensor(6.0), torch.tensor(2.0)], [torch.tensor(3), torch.tensor(1)]
    )
    assert float(host) == pytest.approx(2.0)  # token-weighted: (6 + 2) / (3 + 1)


def test_nightly_reports_a_non_main_process_without_registry_fields() -> None:
    result = train.TrainResult(
        None, "", "", "", {"steps": 12, "process_index": 1, "processes": 2}, plan=None
    )
    assert nightly.train_detail(result) == (
        "process 1 trained 12 steps; the main process registers the candidate"
    )


# A warm start, end to end, on a registry of its own (it promotes) ----------------------------
NIGHT_1, NIGHT_2 = datetime.date(2026, 11, 10), datetime.date(2026, 11, 11)
SHORT = {
    "max_steps": 2,
    "per_device_train_batch_size": 8,
    "max_length": 256,
    "lora_dropout": 0.0,
    "save_steps": 50,
}


def publish(storage, date, old: int, new: int) -> None:
    import pyarrow as pa
    from train_task import task_rows

    from pria_ml import features
    from pria_ml.data.contract import FEATURE_SCHEMA

    rows = task_rows(old, 1, OLD) + task_rows(new, 5, NEW)
    tables = {
        "train": pa.Table.from_pylist(rows, schema=FEATURE_SCHEMA),
        "val": pa.Table.from_pylist(task_rows(4, 2, NEW), schema=FEATURE_SCHEMA),
        "test": pa.Table.from_pylist(task_rows(4, 3, NEW), schema=FEATURE_SCHEMA),
    }
    features.publish_tables(storage, date, tables)


@pytest.mark.slow
def test_warm_start_continues_the_prod_adapter_on_new_days_plus_replay(
    new_database, settings_for, tmp_path
) -> None:
    from safetensors.torch import load_file

    from pria_ml import registry
    from pria_ml.data.storage import open_storage
    from pria_ml.errors import DataError
    from pria_ml.model import loading

    with new_database("registry", "warm") as db:
        settings = settings_for(db, tmp_path / "storage")
        storage = open_storage(settings)
        publish(storage, NIGHT_1, old=24, new=0)
        demo = train.PROFILES["demo"].with_overrides(**SHORT)
        first = train.run(settings, NIGHT_1, demo)
        assert first.metrics["night"]["mode"] == "full"
        assert first.metrics["dataset"]["trained_through"] == OLD.isoformat()
        registry.promote(db, adapter_id=first.adapter_id, force=True, reason="test prod")

        warm = demo.with_overrides(warm_start=True, replay_ratio=0.5)
        publish(storage, NIGHT_2, old=24, new=0)
        with pytest.raises(DataError, match="no example .* newer than 2026-11-01.*--no-warm-start"):
            train.plan(settings, NIGHT_2, warm)
        # Another rank cannot continue the prod adapter: full retraining, and the plan says why.
        other = train.plan(settings, NIGHT_2, warm.with_overrides(lora_r=8))
        assert other.mode == "full" and "rank 64" in other.full_retrain_reason

        publish(storage, NIGHT_2, old=24, new=8)
        planned = train.plan(settings, NIGHT_2, warm)
        assert planned.mode == "warm-start"
        chosen = planned.selection
        replayed = chosen.replay_examples
        assert chosen.new_examples == 8 and 1 <= replayed <= 4  # about half the new tokens
        assert chosen.tokens_per_epoch == sum(len(e.input_ids) for e in planned.examples)
        assert f"warm start from {first.adapter_id} (8 new + {replayed} replayed" in planned.line()
        assert "warm-up 0 | ETA " in planned.line() and "$" in planned.line()

        # A learning rate too small to move anything: the trained adapter is the prod one.
        second = train.run(settings, NIGHT_2, warm.with_overrides(learning_rate=1e-12))
        assert second.metrics["night"]["warm_start_from"] == str(first.adapter_id)
        prod = load_file(loading.download_adapter(storage, NIGHT_1, tmp_path / "prod") / (
            "adapter_model.safetensors"
        ))  # fmt: skip
        now = dict(second.model.named_parameters())
        for name, weight in prod.items():
            trained = now[name.replace(".weight", ".default.weight")].detach()
            torch.testing.assert_close(trained, weight, rtol=0, atol=1e-6)
