"""The memory model's activation term against an exact count of what autograd saves, on the
tiny model loaded with the GPU's dtypes (4-bit base, bf16 compute under bf16 autocast)."""

from __future__ import annotations

import pytest
import torch

from pria_ml import train
from pria_ml.model import loading
from pria_ml.model import tiny as tinymodel
from pria_ml.settings import Settings
from pria_ml.training import activations, memory


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    return str(tinymodel.base_model_path(Settings(home=tmp_path_factory.mktemp("memory-home"))))


def gpu_like_model(tiny_dir: str, **overrides):
    config = train.PROFILES["demo"].with_overrides(**overrides)
    model = train.add_adapter(loading.load_base_model(tiny_dir, gpu_precision=True), config)
    model.train()
    return model, config


def per_token_saved_bytes(model, short: int = 64, long: int = 192) -> float:
    """Saved bytes per token, from two lengths (constants such as autocast's weight casts and
    the kept logits cancel out)."""
    counts = []
    for length in (short, long):
        ids = torch.randint(3, 2000, (1, length), generator=torch.Generator().manual_seed(0))
        inputs = {"input_ids": ids, "use_cache": False, "logits_to_keep": 8}
        counts.append(activations.saved_bytes(model, inputs, autocast_bf16=True))
    return (counts[1] - counts[0]) / (long - short)


@pytest.mark.parametrize(
    "overrides",
    [
        {"lora_r": 64, "lora_target_modules": ("all-linear",), "lora_dropout": 0.05},
        {"lora_r": 8, "lora_target_modules": ("q_proj", "v_proj"), "lora_dropout": 0.0},
    ],
    ids=["r64-all-linear-dropout", "r8-q-v"],
)
def test_activation_term_is_within_10_percent_of_the_saved_tensor_count(
    tiny_dir, overrides
) -> None:
    model, config = gpu_like_model(tiny_dir, **overrides)
    counted = per_token_saved_bytes(model)
    shape = memory.ModelShape.from_config(model.get_base_model().config)
    layer, outside = memory.saved_bytes_per_token(
        shape,
        lora_r=config.lora_r,
        lora_targets=config.lora_target_modules,
        lora_dropout=config.lora_dropout,
        platform="cpu",
    )
    modelled = shape.num_hidden_layers * layer + outside
    assert abs(modelled - counted) <= memory.ACTIVATION_TOLERANCE * counted, (modelled, counted)


def test_norms_in_bf16_keep_the_residual_stream_bf16_and_save_less(tiny_dir) -> None:
    model, _ = gpu_like_model(tiny_dir, lora_dropout=0.0)
    ids = {"input_ids": torch.randint(3, 2000, (1, 32)), "use_cache": False}
    assert activations.layer_input_dtypes(model, ids, autocast_bf16=True) == ["bfloat16"] * 4
    bf16_norms = per_token_saved_bytes(model)

    # What prepare_model_for_kbit_training leaves: fp32 norm weights. Their fp32 output goes
    # through bitsandbytes, which returns its input's dtype: fp32 from the second layer on.
    for name, module in model.named_modules():
        if name.endswith("norm"):
            module.to(torch.float32)
    dtypes = activations.layer_input_dtypes(model, ids, autocast_bf16=True)
    assert dtypes == ["bfloat16"] + ["float32"] * 3
    assert per_token_saved_bytes(model) > 1.2 * bf16_norms
