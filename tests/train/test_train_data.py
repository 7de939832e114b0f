"""From feature rows to model input: chat rendering, completion-only labels, leak-free packing,
and the inputs a run refuses (missing/empty split, a base that is not a causal LM, budget)."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys

import pyarrow as pa
import pytest
import torch
from conftest import DATE, task_rows, write_features

from pria_ml import chat, cost, loading, packing, tinymodel, train
from pria_ml.contract import FEATURE_SCHEMA, adapter_keys, features_key
from pria_ml.errors import BudgetExceeded, ConfigError, DataError
from pria_ml.settings import Settings
from pria_ml.storage import open_storage

# Mistral-7B-Instruct v0.1/v0.2's template: no system role, strict user/assistant alternation.
STRICT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}"
    "{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory):
    """A home whose tiny model is built on first use (PRIA_BASE_MODEL unset)."""
    home = tmp_path_factory.mktemp("tiny-home")
    tinymodel.base_model_path(Settings(home=home))
    return home


@pytest.fixture(scope="module")
def tiny_dir(tiny_home):
    return Settings(home=tiny_home).tiny_model_dir


@pytest.fixture
def tokenizer(tiny_dir):
    return loading.load_tokenizer(str(tiny_dir))


@pytest.fixture
def strict_tokenizer(tiny_dir):
    strict = loading.load_tokenizer(str(tiny_dir))
    strict.chat_template = STRICT_TEMPLATE
    return strict


def test_tiny_template_keeps_system_user_tool_turns(tokenizer) -> None:
    prompt = task_rows(1, seed=5)[0]["prompt"]
    text = chat.render_prompt(tokenizer, prompt)
    assert re.findall(r"<\|(\w+)\|>", text) == [
        "system", "end", "user", "end", "tool", "end", "assistant",
    ]  # fmt: skip


def test_template_that_rejects_system_roles_gets_them_folded_into_user_turns(
    strict_tokenizer,
) -> None:
    row = task_rows(1, seed=5)[0]
    with pytest.raises(Exception, match="roles must alternate|Only user and assistant"):
        strict_tokenizer.apply_chat_template(row["prompt"], tokenize=False)
    prompt_text, full_text = chat.render_example(strict_tokenizer, row["prompt"], row["completion"])
    assert prompt_text.count("[INST]") == 1  # system + user + tool in one user turn
    for message in row["prompt"]:
        assert message["content"] in prompt_text
    assert "[system]\n" in prompt_text and "[tool]\n" in prompt_text
    assert full_text == prompt_text + row["completion"] + strict_tokenizer.eos_token

    example = packing.tokenize_example(strict_tokenizer, row["prompt"], row["completion"])
    labelled = [t for t in example.labels if t != packing.IGNORE_INDEX]
    assert strict_tokenizer.decode(labelled) == row["completion"] + strict_tokenizer.eos_token


def test_earlier_assistant_turns_keep_alternation_when_folded() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u1"},
        {"role": "assistant", "content": "a1"},
        {"role": "tool", "content": "t"},
        {"role": "user", "content": "u2"},
    ]
    folded = chat.to_template_messages(messages, frozenset())
    assert [m["role"] for m in folded] == ["user", "assistant", "user"]
    assert folded[2]["content"] == "[tool]\nt\n\nu2"


def test_prompt_tokens_carry_no_loss(tokenizer) -> None:
    row = task_rows(1, seed=6)[0]
    example = packing.tokenize_example(tokenizer, row["prompt"], row["completion"])
    prompt_text = chat.render_prompt(tokenizer, row["prompt"])
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=False).input_ids)
    assert example.labels[:n_prompt] == [packing.IGNORE_INDEX] * n_prompt
    assert example.labels[n_prompt:] == example.input_ids[n_prompt:]
    completion = tokenizer.decode(example.input_ids[n_prompt:])
    assert completion == row["completion"] + tokenizer.eos_token


def test_pack_rows_first_fit_decreasing() -> None:
    rows = packing.pack_rows([50, 30, 70, 20, 40], max_length=100)
    assert sorted(i for row in rows for i in row) == [0, 1, 2, 3, 4]
    assert all(sum([50, 30, 70, 20, 40][i] for i in row) <= 100 for row in rows)
    assert len(rows) == 3


def test_collator_packs_with_block_diagonal_mask_and_restarted_positions() -> None:
    features = [
        {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
        {"input_ids": [8, 9], "labels": [-100, 9]},
    ]
    batch = packing.PackingCollator(pad_token_id=0, max_length=8)(features)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["labels"].tolist() == [[-100, 6, 7, -100, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    mask = batch["attention_mask"][0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 1],
    ]
    padded = packing.PackingCollator(pad_token_id=0, max_length=8, packing=False)(features)
    assert padded["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert padded["labels"][1, 2] == -100


def test_packed_examples_do_not_attend_across_examples(tiny_dir, tokenizer) -> None:
    """Logits of an example packed behind others equal its logits alone (4-bit + LoRA model)."""
    config = train.PROFILES["demo"].with_overrides(lora_dropout=0.0)
    model = train.add_adapter(loading.load_base_model(str(tiny_dir)), config)
    for name, parameter in model.named_parameters():
        if "lora_B" in name:  # a non-zero adapter, so LoRA layers take part too
            torch.nn.init.normal_(parameter, std=0.02)
    model.eval()
    rows = task_rows(3, seed=7)
    examples = [packing.tokenize_example(tokenizer, r["prompt"], r["completion"]) for r in rows]
    features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
    collator = packing.PackingCollator(tokenizer.pad_token_id, max_length=1024)
    batch = collator(features)
    assert batch["input_ids"].shape[0] == 1  # all three share one row

    with torch.no_grad():
        packed = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0]
        leaky = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        row = batch["input_ids"][0].tolist()
        for example in examples:
            start = next(
                i
                for i in range(len(row))
                if row[i : i + len(example.input_ids)] == example.input_ids
            )
            alone = model(input_ids=torch.tensor([example.input_ids])).logits[0]
            span = slice(start, start + len(example.input_ids))
            # bitsandbytes' CPU path is only bf16-exact: perturbing the input by 1e-7 moves these
            # logits by ~5e-3. Leakage moves them by far more than that noise.
            assert (packed[span] - alone).abs().max() < 2e-2
            if start > 0:  # the control: restarted position_ids alone do leak
                assert (leaky[span] - alone).abs().max() > 0.2


def _settings(tmp_path, tiny_dir, **extra) -> Settings:
    return Settings(
        home=tmp_path / "home",
        storage_url=(tmp_path / "storage").as_uri(),
        base_model=str(tiny_dir),
        **extra,
    )


def test_missing_or_empty_split_is_a_data_error(tmp_path, tiny_dir) -> None:
    settings = _settings(tmp_path, tiny_dir)
    config = train.PROFILES["demo"]
    with pytest.raises(DataError, match="run `pria-ml build-features --date 2026-11-24`"):
        train.plan(settings, DATE, config)
    empty = pa.Table.from_pylist([], schema=FEATURE_SCHEMA)
    open_storage(settings).write_parquet(features_key(DATE, "train.parquet"), empty)
    with pytest.raises(DataError, match="has no rows"):
        train.plan(settings, DATE, config)


def test_base_that_is_not_a_causal_lm_is_a_config_error(tmp_path, tiny_dir) -> None:
    from transformers import BertConfig

    encoder = tmp_path / "bert"
    BertConfig(architectures=["BertForSequenceClassification"]).save_pretrained(encoder)
    for base, message in ((encoder, "not a causal language model"), (tmp_path, "not a model")):
        settings = _settings(tmp_path, base)
        write_features(open_storage(settings), train=4, val=1)
        with pytest.raises(ConfigError, match=message):
            train.plan(settings, DATE, train.PROFILES["demo"])


def test_cost_estimate_and_budget_guard() -> None:
    settings = Settings()
    estimate = cost.estimate(
        7_200_000, tier_name="pilot", tier=settings.tier, budget_usd=settings.nightly_budget_usd
    )
    assert estimate.gpu_hours == pytest.approx(7_200_000 / 2_000 / 3600)
    assert estimate.usd == pytest.approx(estimate.gpu_hours * 2.13)
    cost.check_budget(estimate)
    over = cost.estimate(7_200_000, tier_name="pilot", tier=settings.tier, budget_usd=1.0)
    with pytest.raises(BudgetExceeded, match=r"\$2\.13, over the nightly budget of \$1\.00"):
        cost.check_budget(over)


def test_plan_refuses_a_run_over_the_nightly_budget(tmp_path, tiny_dir) -> None:
    settings = _settings(tmp_path, tiny_dir, nightly_budget_usd=1e-6)
    write_features(open_storage(settings), train=64, val=1)
    with pytest.raises(BudgetExceeded, match="over the nightly budget"):
        train.plan(settings, DATE, train.PROFILES["spec"])


def test_warmup_is_capped_on_short_runs() -> None:
    spec = train.PROFILES["spec"]
    assert train.schedule(128 * 1000, spec) == (1000, 50)
    assert train.schedule(128 * 100, spec) == (100, 10)
    assert train.schedule(100, spec) == (1, 0)
    assert train.schedule(10, spec.with_overrides(max_steps=300)) == (300, 30)


def test_dry_run_prints_plan_and_accelerate_command(tmp_path, tiny_dir) -> None:
    settings = _settings(tmp_path, tiny_dir)
    write_features(open_storage(settings), train=256, val=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env.update(
        PRIA_HOME=str(settings.home),
        PRIA_STORAGE_URL=settings.storage_url,
        PRIA_BASE_MODEL=str(tiny_dir),
        HF_HUB_OFFLINE="1",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pria_ml", "train", "--date", DATE.isoformat(), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    plan_json, command = done.stdout.rsplit("}\n", 1)
    plan = json.loads(plan_json + "}")
    assert plan["examples"] == 256 and plan["optimizer_steps"] == 2 and plan["warmup_steps"] == 0
    assert plan["config"]["learning_rate"] == 8e-5 and plan["config"]["lora_r"] == 64
    assert plan["estimate"]["usd"] > 0
    assert command.strip().startswith(f"PRIA_BASE_MODEL={tiny_dir} accelerate launch")
    expected = "-m pria_ml train --date 2026-11-24 --learning-rate 8e-05 --num-train-epochs 1"
    assert expected in command
    assert not (settings.home / "runs").exists()  # nothing trained, nothing written


def test_tiny_model_is_built_on_first_use_and_reused(tiny_home) -> None:
    from transformers import AutoConfig

    settings = Settings(home=tiny_home)
    mtime = (settings.tiny_model_dir / "model.safetensors").stat().st_mtime
    path = tinymodel.base_model_path(settings)
    assert path == str(settings.tiny_model_dir)
    assert (settings.tiny_model_dir / "model.safetensors").stat().st_mtime == mtime
    config = AutoConfig.from_pretrained(path)
    assert config.architectures == ["MistralForCausalLM"]
    head_dim = config.hidden_size // config.num_attention_heads
    linear_outputs = [
        config.hidden_size,
        config.intermediate_size,
        config.num_key_value_heads * head_dim,
        config.vocab_size,
    ]
    assert all(size % 64 == 0 for size in linear_outputs)  # bitsandbytes CPU kernels need it


def test_dates_in_keys_are_iso() -> None:
    assert adapter_keys(datetime.date(2026, 1, 2)) == (
        "adapters/2026-01-02.safetensors",
        "adapters/2026-01-02.config.json",
    )


def test_model_build_tiny_command(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env.update(PRIA_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        # two pre-training steps: the path runs, in seconds (the real budget is in tests/demo)
        [sys.executable, "-m", "pria_ml", "model", "build-tiny", "--pretrain-steps", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    directory = Settings(home=tmp_path / "home").tiny_model_dir
    assert "built" in done.stdout
    for name in ("config.json", "model.safetensors", "tokenizer.json", "pria_tiny.json"):
        assert (directory / name).is_file(), name
    loading.check_causal_lm(str(directory))
    recipe = tinymodel.built_recipe(directory)
    assert recipe["pretrain_steps"] == 2 and sum(recipe["pretraining"]["examples"].values()) > 0
