"""Packed examples never attend to each other, on every attention path that runs here, in
training mode (no KV cache); token-capped passes split a micro-batch without changing it."""

from __future__ import annotations

import pytest
import torch
from train_task import task_rows

from pria_ml import train
from pria_ml.model import chat, loading
from pria_ml.model import tiny as tinymodel
from pria_ml.settings import Settings
from pria_ml.training import packing

# bitsandbytes' CPU path is only bf16-exact: perturbing the input by 1e-7 moves the tiny
# model's logits by ~5e-3. Leakage moves them by far more than that noise.
NOISE = 2e-2


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    return tinymodel.base_model_path(Settings(home=tmp_path_factory.mktemp("packing-home")))


@pytest.fixture(scope="module")
def examples(tiny_dir):
    tokenizer = loading.load_tokenizer(str(tiny_dir))
    rows = task_rows(3, seed=7)
    return [chat.tokenize_example(tokenizer, r["prompt"], r["completion"]) for r in rows]


def worst_difference(model, batch: dict, examples) -> float:
    """Largest |logit difference| between each example packed behind others and alone."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        packed = model(**inputs, use_cache=False).logits[0]
        row = batch["input_ids"][0].tolist()
        worst = 0.0
        for example in examples:
            n = len(example.input_ids)
            start = next(i for i in range(len(row)) if row[i : i + n] == example.input_ids)
            alone = model(input_ids=torch.tensor([example.input_ids]), use_cache=False).logits[0]
            worst = max(worst, float((packed[start : start + n] - alone).abs().max()))
    return worst


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_packed_examples_do_not_attend_across_examples_in_training_mode(
    tiny_dir, examples, attention
) -> None:
    config = train.PROFILES["demo"].with_overrides(lora_dropout=0.0)
    model = train.add_adapter(loading.load_base_model(str(tiny_dir), attention), config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # a non-zero adapter, so LoRA layers take part too
            torch.nn.init.normal_(parameter, std=0.02)
    model.train()  # no dropout left (lora_dropout 0, attention dropout 0); no KV cache
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]

    masked = packing.PackingCollator(0, max_length=1024)(features)
    assert masked["input_ids"].shape[0] == 1  # all three share one row
    as_trained = {**masked, "attention_mask": train.additive_mask(model, masked["attention_mask"])}
    assert worst_difference(model, as_trained, examples) < NOISE
    if attention == "eager":  # why additive_mask exists: eager adds a boolean mask as 0/1
        assert worst_difference(model, masked, examples) > 10 * NOISE

    # The padding-free layout (restarted position_ids, no mask): what CUDA trains with under
    # FlashAttention-2. Measured: transformers also isolates the examples from the restarted
    # positions alone on eager and sdpa when there is no mask and no KV cache.
    flattened = packing.PackingCollator(0, max_length=1024, flatten=True)(features)
    assert "attention_mask" not in flattened
    assert worst_difference(model, flattened, examples) < NOISE

    # The control: the packed row with neither mask nor restarted positions leaks.
    leaky = {"input_ids": masked["input_ids"], "labels": masked["labels"]}
    assert worst_difference(model, leaky, examples) > 10 * NOISE


def test_flattened_layout_has_restarted_positions_and_no_padding() -> None:
    features = [
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        {"input_ids": [8, 9], "labels": [-100, 9]},
    ]
    batch = packing.PackingCollator(0, max_length=8, flatten=True)(features)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9]]


def test_token_budget_splits_a_micro_batch_into_passes_without_losing_a_token() -> None:
    features = [{"input_ids": [7] * n, "labels": [-100] * (n - 2) + [7, 7]} for n in (6, 5, 4, 3)]
    collator = packing.PackingCollator(0, max_length=6, packing=False, max_tokens=12)
    batch = collator(features)
    passes = batch["chunks"]
    assert all(p["input_ids"].numel() <= 12 for p in passes)
    assert sum(int((p["input_ids"] == 7).sum()) for p in passes) == 6 + 5 + 4 + 3
    # every labelled token is counted once for the loss's normaliser
    assert int((batch["labels"] != -100).sum()) == 8
    flat = packing.PackingCollator(0, max_length=6, flatten=True, max_tokens=9)(features)
    assert [p["input_ids"].shape for p in flat["chunks"]] == [(1, 6), (1, 9), (1, 3)]


def test_split_passes_give_the_gradient_of_one_pass(tiny_dir, examples) -> None:
    config = train.PROFILES["demo"].with_overrides(lora_dropout=0.0)
    model = train.add_adapter(loading.load_base_model(str(tiny_dir)), config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.02)
    model.train()
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    width = max(len(e.input_ids) for e in examples)

    def gradient(max_tokens: int) -> dict[str, torch.Tensor]:
        model.zero_grad()
        batch = packing.PackingCollator(0, width, packing=False, max_tokens=max_tokens)(features)
        passes = batch.get("chunks", [batch])
        items = int((batch["labels"][..., 1:] != -100).sum())
        for part in passes:
            train.completion_loss(model, part, items)[0].backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    one, split = gradient(10 * width), gradient(width)
    assert one.keys() == split.keys()
    for name in one:
        torch.testing.assert_close(split[name], one[name], rtol=0.05, atol=1e-4)
