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
