"""Every example shape renders through Mistral-7B-Instruct v0.1 / v0.2 / v0.3-style templates
with the prompt as a prefix of prompt + answer, no message text lost, and completion-only
labels; a v0.3-style base model trains end to end."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from mistral_templates import MISTRAL_TEMPLATES, MISTRAL_V03
from train_task import DATE, task_rows, write_features

from pria_ml import train
from pria_ml.data.storage import open_storage
from pria_ml.model import chat, loading

SYSTEM = {"role": "system", "content": "You are PRIA's expense agent. Reply with the action."}
USER = {"role": "user", "content": "Categorise: Uber 12.40 EUR"}
TOOL = {"role": "tool", "content": "merchant lookup: Uber found"}
EARLIER = [
    {"role": "user", "content": "Categorise: Hilton 210.00 EUR"},
    {"role": "assistant", "content": "set_category lodging"},
]
SHAPES = {
    "system+user+tool": [SYSTEM, USER, TOOL],
    "user": [USER],
    "system+user": [SYSTEM, USER],
    "user+tool": [USER, TOOL],
    "tool+user": [TOOL, USER],
    "multi-turn": [SYSTEM, *EARLIER, USER, TOOL],
    "empty system": [{"role": "system", "content": ""}, USER],
}
COMPLETION = "set_category transport"
EXPECTED_NATIVE_ROLES = {
    "v0.1": frozenset(),
    "v0.2": frozenset({"system"}),  # system lands in the first user turn: still a prefix
    "v0.3": frozenset(),  # system lands in the last user turn: not a prefix; tool needs ids
}


@pytest.fixture(scope="module")
def tiny_dir(tiny_model_dir):
    """The session's tiny base (tests/conftest.py); only read here, copied before a change."""
    return tiny_model_dir


def with_template(tiny_dir, template: str):
    tokenizer = loading.load_tokenizer(str(tiny_dir))
    tokenizer.chat_template = template
    return tokenizer


def test_v03_template_alone_puts_the_system_message_in_the_last_user_turn_only(tiny_dir) -> None:
    tokenizer = with_template(tiny_dir, MISTRAL_V03)
    messages = [SYSTEM, *EARLIER, USER]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": COMPLETION}], tokenize=False
    )
    assert prompt.endswith(f"[INST] {SYSTEM['content']}\n\n{USER['content']}[/INST]")
    assert SYSTEM["content"] not in full  # what made every example fail before
    assert not full.startswith(prompt)


@pytest.mark.parametrize("version", sorted(MISTRAL_TEMPLATES))
def test_roles_are_native_only_when_the_prompt_stays_a_prefix(tiny_dir, version) -> None:
    tokenizer = with_template(tiny_dir, MISTRAL_TEMPLATES[version])
    assert chat.native_roles(tokenizer) == EXPECTED_NATIVE_ROLES[version]


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("version", sorted(MISTRAL_TEMPLATES))
def test_every_example_shape_renders_through_every_mistral_template(
    tiny_dir, version, shape
) -> None:
    tokenizer = with_template(tiny_dir, MISTRAL_TEMPLATES[version])
    prompt = SHAPES[shape]
    prompt_text, full_text = chat.render_example(tokenizer, prompt, COMPLETION)

    assert full_text.startswith(prompt_text)
    assert prompt_text.endswith("[/INST]")
    for message in prompt:
        if message["content"]:
            assert prompt_text.count(message["content"]) == 1, message
    assert full_text[len(prompt_text) :].strip() == COMPLETION + tokenizer.eos_token
    assert chat.render_prompt(tokenizer, prompt) == prompt_text

    example = chat.tokenize_example(tokenizer, prompt, COMPLETION)
    labelled = [t for t in example.labels if t != chat.IGNORE_INDEX]
    assert tokenizer.decode(labelled).strip() == COMPLETION + tokenizer.eos_token


def test_tiny_template_keeps_every_role_native(tiny_dir) -> None:
    tokenizer = loading.load_tokenizer(str(tiny_dir))
    assert chat.native_roles(tokenizer) == frozenset({"system", "tool"})


def test_a_template_that_drops_a_role_silently_gets_it_folded(tiny_dir) -> None:
    # Phi-3-mini-style: renders user/assistant, ignores system without an error.
    dropping = (
        "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
        "{{ '<|user|>\n' + message['content'] + '<|end|>\n<|assistant|>\n' }}"
        "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
        "{% endif %}{% endfor %}"
    )
    tokenizer = with_template(tiny_dir, dropping)
    assert chat.native_roles(tokenizer) == frozenset()
    prompt_text, _ = chat.render_example(tokenizer, [SYSTEM, USER, TOOL], COMPLETION)
    assert f"[system]\n{SYSTEM['content']}" in prompt_text


def test_a_template_that_never_keeps_the_prompt_as_a_prefix_is_refused(tiny_dir) -> None:
    # Appends the answer before the last user turn: no folding can repair that.
    broken = (
        "{% for message in messages|reverse %}{{ message['role'] + ':' + message['content'] }}"
        "{% endfor %}"
    )
    tokenizer = with_template(tiny_dir, broken)
    with pytest.raises(chat.TemplateMismatch, match="prefix"):
        chat.native_roles(tokenizer)


@pytest.mark.slow
def test_a_v03_style_base_model_trains_and_registers(tiny_dir, train_settings, tmp_path) -> None:
    base = tmp_path / "tiny-v03"
    shutil.copytree(tiny_dir, base)
    tokenizer = with_template(base, MISTRAL_V03)
    tokenizer.save_pretrained(base)
    date = DATE.replace(day=3)
    settings = train_settings.model_copy(update={"base_model": str(base)})
    write_features(open_storage(settings), date, train=16, val=4)
    config = train.PROFILES["demo"].with_overrides(
        max_steps=2,
        per_device_train_batch_size=8,
        max_length=256,
        max_tokens_per_micro_batch=256,  # each micro-batch runs as several passes
        save_steps=50,
    )
    result = train.run(settings, date, config)
    assert result.metrics["tokens"]["dropped_examples"] == 0
    assert result.metrics["tokens"]["examples"] == 16
    assert result.metrics["steps"] == 2
    rendered = chat.render_prompt(tokenizer, task_rows(1, seed=1)[0]["prompt"])
    assert rendered.startswith("<s>[INST] [system]\n")
    assert dataclasses.asdict(result.plan.config)["max_steps"] == 2
