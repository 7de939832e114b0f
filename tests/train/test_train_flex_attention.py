"""FlexAttention, the padding-free path CUDA trains with when FlashAttention-2 is not installed
(the image has no compiled flash-attn): packed examples in one flattened row, positions
restarting per example and no mask, never attend to each other. The same check as the other
attention paths' (test_train_packing.py): each example's logits packed behind others equal its
logits alone. FlexAttention runs forward-only on a CPU (torch has no CPU backward for it), which
is all this check needs; perf/gpu_attention_check.py runs it with gradients on a GPU.

Every forward pass has the packed row's shape: an example "alone" is the example followed by
padding that is a document of its own."""

from __future__ import annotations

import pytest
import torch
from train_task import task_rows

from pria_ml import train
from pria_ml.model import chat, loading
from pria_ml.training import packing

NOISE = 2e-2  # as in test_train_packing.py: bitsandbytes' CPU path is bf16-exact only


def test_choice_of_attention() -> None:
    """Padding-free on every CUDA machine; FlexAttention needs nothing compiled at build time."""
    assert train.choose_attention(cuda=True, flash_attn=True, flex_attn=True) == (
        "flash_attention_2",
        True,
    )
    assert train.choose_attention(cuda=True, flash_attn=False, flex_attn=True) == (
        "flex_attention",
        True,
    )
    assert train.choose_attention(cuda=False, flash_attn=False, flex_attn=True) == ("sdpa", False)


@pytest.mark.filterwarnings("ignore:.*flex_attention.*without torch.compile")
@pytest.mark.filterwarnings("ignore:_compile flag on create_block_mask:DeprecationWarning")
def test_flex_attention_isolates_packed_examples_in_training_mode(
    tiny_model_dir, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Uncompiled: torch's FlexAttention reference implementation with the same block masks,
    # instead of a minute of compiling CPU kernels per run. The compiled CUDA kernel, with
    # gradients: perf/gpu_attention_check.py.
    from torch.nn.attention import flex_attention as torch_flex
    from transformers import masking_utils
    from transformers.integrations import flex_attention as hf_flex

    monkeypatch.setattr(
        hf_flex.WrappedFlexAttention, "__call__", lambda _: torch_flex.flex_attention
    )
    monkeypatch.setattr(
        masking_utils,
        "create_block_mask",
        lambda *args, _compile=False, **kwargs: torch_flex.create_block_mask(*args, **kwargs),
    )
    tokenizer = loading.load_tokenizer(str(tiny_model_dir))
    examples = [
        chat.tokenize_example(tokenizer, r["prompt"], r["completion"]) for r in task_rows(3, seed=7)
    ]
    config = train.PROFILES["demo"].with_overrides(lora_dropout=0.0)
    model = train.add_adapter(
        loading.load_base_model(str(tiny_model_dir), "flex_attention"), config
    )
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # a non-zero adapter, so LoRA layers take part too
            torch.nn.init.normal_(parameter, std=0.02)
    model.train()  # no dropout left; no KV cache
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    flattened = packing.PackingCollator(0, max_length=1024, flatten=True)(features)
    assert "attention_mask" not in flattened and flattened["input_ids"].shape[0] == 1
    row = flattened["input_ids"][0].tolist()
    width = len(row)

    def logits(input_ids: list[int], position_ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(
                input_ids=torch.tensor([input_ids]),
                position_ids=torch.tensor([position_ids]),
                use_cache=False,
            ).logits[0]

    packed = logits(row, flattened["position_ids"][0].tolist())
    worst = 0.0
    for example in examples:
        n = len(example.input_ids)
        start = next(i for i in range(width) if row[i : i + n] == example.input_ids)
        alone = logits(
            example.input_ids + [0] * (width - n), list(range(n)) + list(range(width - n))
        )
        worst = max(worst, float((packed[start : start + n] - alone[:n]).abs().max()))
    assert worst < NOISE

    # The control: the same row with positions that do not restart is one document, and leaks.
    leaky = logits(row, list(range(width)))
    assert float((leaky - packed).abs().max()) > 10 * NOISE
