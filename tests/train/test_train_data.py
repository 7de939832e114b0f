"""From feature rows to model input: chat rendering, completion-only labels, leak-free packing,
and the inputs a run refuses (missing/empty split, a base that is not a causal LM, budget)."""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
import sys

import pytest
from train_task import DATE, task_rows, write_features

from pria_ml import train
from pria_ml.data.contract import adapter_keys
from pria_ml.data.storage import open_storage
from pria_ml.errors import BudgetExceeded, ConfigError, DataError
from pria_ml.model import chat, loading
from pria_ml.model import tiny as tinymodel
from pria_ml.settings import Settings
from pria_ml.training import cost, packing


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


def test_tiny_template_keeps_system_user_tool_turns(tokenizer) -> None:
    prompt = task_rows(1, seed=5)[0]["prompt"]
    text = chat.render_prompt(tokenizer, prompt)
    assert re.findall(r"<\|(\w+)\|>", text) == [
        "system", "end", "user", "end", "tool", "end", "assistant",
    ]  # fmt: skip


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
    example = chat.tokenize_example(tokenizer, row["prompt"], row["completion"])
    prompt_text = chat.render_prompt(tokenizer, row["prompt"])
    n_prompt = len(tokenizer(prompt_text, add_special_tokens=False).input_ids)
    assert example.labels[:n_prompt] == [chat.IGNORE_INDEX] * n_prompt
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
    write_features(open_storage(settings), DATE, train=0)
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
    rate = cost.Throughput(2_000, "configured")
    estimate = cost.estimate(
        7_200_000,
        tier_name="pilot",
        tier=settings.tier,
        rate=rate,
        budget_usd=settings.nightly_budget_usd,
    )
    assert estimate.gpu_hours == pytest.approx(7_200_000 / 2_000 / 3600)
    assert estimate.usd == pytest.approx(estimate.gpu_hours * 2.13)
    cost.check_budget(estimate)
    over = cost.estimate(
        7_200_000, tier_name="pilot", tier=settings.tier, rate=rate, budget_usd=1.0
    )
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


@pytest.fixture(scope="module")
def mistral_7b_shape(tiny_dir, tmp_path_factory):
    """A base model directory with Mistral-7B-Instruct-v0.3's config.json and the tiny
    tokenizer: enough for a plan (which loads no weight), not for training."""
    from transformers import MistralConfig

    directory = tmp_path_factory.mktemp("mistral-7b-shape")
    MistralConfig(vocab_size=32768, architectures=["MistralForCausalLM"]).save_pretrained(directory)
    loading.load_tokenizer(str(tiny_dir)).save_pretrained(directory)
    return directory


def test_dry_run_of_the_spec_profile_on_the_pilot_tier(tmp_path, mistral_7b_shape) -> None:
    settings = _settings(tmp_path, mistral_7b_shape)
    write_features(open_storage(settings), train=256, val=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env.update(
        PRIA_HOME=str(settings.home),
        PRIA_STORAGE_URL=settings.storage_url,
        PRIA_BASE_MODEL=str(mistral_7b_shape),
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
    plan_json, rest = done.stdout.rsplit("}\n", 1)
    line, command = rest.strip().split("\n")
    plan = json.loads(plan_json + "}")
    assert plan["examples"] == 256 and plan["optimizer_steps"] == 2 and plan["warmup_steps"] == 0
    assert plan["config"]["learning_rate"] == 8e-5 and plan["config"]["lora_r"] == 32
    assert plan["adapter_parameters"] == 83_886_080  # the spec's "~85 M"
    assert plan["mode"] == "full" and plan["full_retrain_reason"] == "no prod adapter yet"
    memory = plan["peak_memory_gib"]
    assert memory["gpu_memory_gib"] == 22.0  # pilot: Fly's A10 (pria_ml/assets/gpu_tiers.toml)
    low, high = memory["band"]
    assert low < memory["total"] < high
    assert high * 2**30 < 8e9  # spec section 4: "fits A10G 24 GB in < 8 GB", at the upper end
    assert line.startswith("plan: full retraining (256 of 256 examples; no prod adapter yet) | ")
    assert "| 2 steps, warm-up 0 | ETA 0:" in line and "83,886,080 adapter parameters" in line
    estimate = plan["estimate"]
    assert estimate["throughput_source"].startswith("physics")
    assert 780 < estimate["tokens_per_second"] < 960  # 125 TFLOPS x 30 % / ~44 GFLOP per token
    assert estimate["usd"] > 0
    assert command.strip() == (
        f"PRIA_BASE_MODEL={mistral_7b_shape} accelerate launch --num_processes 1 "
        "--mixed_precision bf16 -m pria_ml train --date 2026-11-24 --profile spec"
    )
    assert not (settings.home / "runs").exists()  # nothing trained, nothing written


def test_accelerate_command_parses_back_into_the_same_config(tmp_path, tiny_dir) -> None:
    import shlex

    import typer

    from pria_ml.cli import app

    settings = _settings(tmp_path, tiny_dir)
    write_features(open_storage(settings), train=64, val=1)
    config = train.config_for(
        "demo",
        learning_rate=1.234e-4,
        packing=False,
        gradient_checkpointing=True,
        lora_target_modules="q_proj,v_proj",
        max_steps=3,
        lora_dropout=0.1,
    )
    plan = train.plan(settings, DATE, config, profile="demo")
    args = shlex.split(plan.accelerate_command(num_processes=2))
    assert args[0] == f"PRIA_BASE_MODEL={tiny_dir}" and args[1:3] == ["accelerate", "launch"]
    train_args = args[args.index("train") + 1 :]
    command = typer.main.get_command(app).commands["train"]
    params = command.make_context("train", train_args).params
    command_only = ("date", "dry_run", "profile", "retrain")
    options = {k: v for k, v in params.items() if k not in command_only}
    assert train.config_for(params["profile"], **options) == config
    assert params["date"] == DATE


def test_help_lists_every_training_option_with_the_profiles_defaults() -> None:
    from dataclasses import fields

    from typer.testing import CliRunner

    from pria_ml.cli import app

    shown = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output
    for f in fields(train.TrainConfig):
        assert train.option_flag(f.name) in shown, f.name
    assert "[profile: spec 8e-05, demo 0.001]" in shown


def test_micro_batch_split_does_not_change_the_checkpoint_fingerprint(tmp_path, tiny_dir) -> None:
    settings = _settings(tmp_path, tiny_dir)
    write_features(open_storage(settings), train=64, val=1)
    spec = train.PROFILES["spec"].with_overrides(max_length=256, max_tokens_per_micro_batch=256)
    same = spec.with_overrides(per_device_train_batch_size=4, gradient_accumulation_steps=32)
    other = spec.with_overrides(gradient_accumulation_steps=8)  # a smaller effective batch
    fingerprints = [train.plan(settings, DATE, c).fingerprint() for c in (spec, same, other)]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2]


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


def test_pretraining_spreads_whole_conversations_among_the_short_steps() -> None:
    merged = tinymodel.interleave(list(range(10)), ["a", "b"])
    assert merged == [0, 1, 2, 3, 4, "a", 5, 6, 7, 8, 9, "b"]  # nothing lost, the last last
    assert tinymodel.interleave([1, 2], []) == [1, 2]


def test_a_night_that_drops_too_many_examples_as_too_long_fails(tmp_path, tiny_dir) -> None:
    settings = _settings(tmp_path, tiny_dir)
    write_features(open_storage(settings), train=64, val=1)
    short = train.PROFILES["demo"].with_overrides(max_length=16)
    with pytest.raises(DataError, match=r"64 of the 64 .*PRIA_TRAIN_MAX_DROPPED_SHARE=2\.0%"):
        train.plan(settings, DATE, short)


def test_plan_that_cannot_fit_the_tier_gpu_is_refused_naming_a_knob_that_fits(
    tmp_path, tiny_dir
) -> None:
    import re

    from pria_ml.errors import TrainingError
    from pria_ml.settings import GpuTier

    demo = train.PROFILES["demo"]
    # A GPU between the upper ends of the band at a quarter and at the whole per-pass budget.
    settings = _settings(tmp_path, tiny_dir)
    write_features(open_storage(settings), train=64, val=1)
    whole = train.plan(settings, DATE, demo).memory.high
    quarter = demo.max_tokens_per_micro_batch // 4
    smaller = demo.with_overrides(max_tokens_per_micro_batch=quarter)
    fitting = train.plan(settings, DATE, smaller).memory.high
    gpu = GpuTier(gpu_type="A10G", usd_per_gpu_hour=2.13, gpu_memory_gib=(whole + fitting) / 2)
    settings = _settings(tmp_path, tiny_dir, gpu_tiers={"pilot": gpu})
    with pytest.raises(TrainingError, match=r"band .* does not fit .* at its upper end") as refused:
        train.plan(settings, DATE, demo)
    knob = re.search(
        r"--max-tokens-per-micro-batch (\d+)(?: or --lora-r \d+)? would fit", str(refused.value)
    )
    assert knob is not None, refused.value
    # The named value does fit: the same plan with it passes.
    train.plan(settings, DATE, demo.with_overrides(max_tokens_per_micro_batch=int(knob[1])))
