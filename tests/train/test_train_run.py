"""A real QLoRA run on the tiny model: it learns, uploads, registers, and reloads with PEFT."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from train_task import DATE, TEST_OVERRIDES, write_features

from pria_ml import __version__, registry, train
from pria_ml.data.contract import adapter_keys
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import RegistryError
from pria_ml.model import loading
from pria_ml.training import memory


def test_loss_falls_on_a_learnable_task(trained) -> None:
    loss = trained.metrics["loss"]
    assert trained.metrics["steps"] == TEST_OVERRIDES["max_steps"]
    assert len(loss["history"]) == TEST_OVERRIDES["max_steps"] // TEST_OVERRIDES["logging_steps"]
    # From ~log(vocab) to well below it: the completion's fixed tokens are learned within a few
    # dozen steps (the merchant -> category mapping itself takes a few hundred, see docs).
    assert loss["train_last"] < 0.6 * loss["train_first"], loss["history"]
    assert loss["eval"] is not None and loss["eval"] < 0.6 * loss["train_first"]


def test_base_is_4bit_nf4_with_double_quantisation(trained) -> None:
    import bitsandbytes as bnb

    base = trained.model.get_base_model()
    q_proj = base.model.layers[0].self_attn.q_proj.base_layer
    assert isinstance(q_proj, bnb.nn.Linear4bit)
    state = q_proj.weight.quant_state
    assert state.quant_type == "nf4"
    assert state.nested  # double quantisation: the absmax constants are quantised too


def test_trainable_parameter_count_is_exact_and_recorded(trained, capsys) -> None:
    base_config = trained.model.get_base_model().config
    expected = memory.ModelShape.from_config(base_config).lora_parameters(64)
    actual = sum(p.numel() for p in trained.model.parameters() if p.requires_grad)
    assert actual == expected == trained.metrics["trainable_params"]


def test_lora_parameter_count_of_mistral_7b() -> None:
    from transformers import MistralConfig

    mistral_7b = memory.ModelShape.from_config(MistralConfig())  # Mistral-7B's shape
    assert mistral_7b.lora_parameters(64) == 167_772_160
    assert mistral_7b.lora_parameters(32) == 83_886_080


def test_adapter_uploaded_with_sha256_and_registered_as_candidate(
    trained, train_settings, train_db
) -> None:
    storage = open_storage(train_settings)
    weights_key, config_key = adapter_keys(DATE)
    data = storage.read_bytes(weights_key)
    assert hashlib.sha256(data).hexdigest() == trained.artifact_sha256
    adapter_config = json.loads(storage.read_bytes(config_key))
    assert adapter_config["base_model_name_or_path"] == trained.plan.base_model
    assert adapter_config["r"] == 64

    row = registry.get_adapter(train_db, trained.adapter_id)
    assert row.status == "candidate"
    assert row.artifact_uri == storage.uri(weights_key)
    assert row.artifact_sha256 == trained.artifact_sha256
    metrics = row.metrics_json
    for key in ("loss", "tokens", "steps", "wall_time_s", "device", "gpu_hours", "cost_usd"):
        assert key in metrics
    assert metrics["device"] == "cpu" and metrics["gpu_hours"] == 0
    assert metrics["dataset"]["train_sha256"] == trained.plan.train_sha256
    assert metrics["code_version"].startswith(f"{__version__}+")
    assert metrics["trainable_params"] == trained.metrics["trainable_params"]


def test_saved_adapter_reloads_with_peft_and_reproduces_logits(
    trained, train_settings, tmp_path
) -> None:
    storage = open_storage(train_settings)
    directory = loading.download_adapter(storage, DATE, tmp_path / "adapter")
    reloaded = loading.load_adapter(trained.plan.base_model, directory)
    trained_weights = dict(trained.model.named_parameters())
    adapter_names = [name for name, _ in reloaded.named_parameters() if "lora_" in name]
    assert len(adapter_names) == 2 * 7 * 4  # A and B of 7 projections in 4 layers
    for name in adapter_names:
        assert torch.equal(reloaded.get_parameter(name), trained_weights[name]), name

    input_ids = torch.tensor([trained.plan.examples[0].input_ids])
    trained.model.eval()
    with torch.no_grad():
        expected = trained.model(input_ids=input_ids).logits
        actual = reloaded(input_ids=input_ids).logits
        with reloaded.disable_adapter():
            without = reloaded(input_ids=input_ids).logits
    # bitsandbytes' CPU backend repacks a 4-bit weight on its first eval-mode forward (the
    # double-quantised absmax becomes bf16), which moves logits by ~1e-2 between a model that
    # trained and one freshly loaded; the adapter's own effect is two orders larger.
    reproduction_error = (actual - expected).abs().max()
    adapter_effect = (without - expected).abs().max()
    assert reproduction_error < 2e-2
    assert adapter_effect > 50 * reproduction_error
    assert torch.equal(actual[0, -10:].argmax(-1), expected[0, -10:].argmax(-1))


def test_registered_adapter_is_never_overwritten(trained, train_settings, train_db) -> None:
    storage = open_storage(train_settings)
    weights_key, _ = adapter_keys(DATE)
    before = storage.read_bytes(weights_key)
    config = train.PROFILES["demo"].with_overrides(**TEST_OVERRIDES)
    with pytest.raises(RegistryError, match="already registered"):
        train.run(train_settings, DATE, config)
    assert storage.read_bytes(weights_key) == before
    rows = [a for a in registry.adapters(train_db) if a.dataset_date == DATE]
    assert len(rows) == 1


def test_unregistered_leftover_is_replaced(train_settings, train_db) -> None:
    """An object no registry row references (a run that failed after uploading) is replaced."""
    import datetime

    date = datetime.date(2026, 10, 1)
    storage = open_storage(train_settings)
    write_features(storage, date, train=32, val=0)
    weights_key, _ = adapter_keys(date)
    storage.write_bytes(weights_key, b"half a run")
    config = train.PROFILES["demo"].with_overrides(**{**TEST_OVERRIDES, "max_steps": 2})
    result = train.run(train_settings, date, config)
    assert storage.read_bytes(weights_key) != b"half a run"
    assert registry.artifact_referenced(database(train_settings), result.artifact_uri)
    assert result.metrics["loss"]["eval"] is None  # an empty val split is skipped, not an error
