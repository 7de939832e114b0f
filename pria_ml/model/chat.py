"""Turn a training example's messages into the base model's chat format.

The prompt is a list of ``{role, content}`` messages with roles system / user / tool (and
possibly earlier assistant turns); the completion is the approved action. Training needs two
renders of each example, the prompt alone (what generation starts from) and the prompt followed
by the answer, and the first must be a prefix of the second, or the prompt/completion boundary
is unknown. A base model's chat template does not give that for every role:

- Mistral-7B-Instruct v0.1 raises on any ``system`` message and insists on strict
  user/assistant alternation;
- v0.2 puts the system message into the *first* user turn: a prefix, so ``system`` is kept;
- v0.3 puts it into the *last* user turn only: the prompt rendered alone carries the system
  text, prompt + answer does not (the answer is then the last turn), and its ``tool`` turns
  must answer a tool call with a 9-character id, which our traces do not have.

So a role counts as supported only when a probe conversation renders without error, keeps every
message's text, and renders the prompt as a prefix of prompt + answer. The roles that fail are
folded into user turns, labelled so the model can still tell them apart::

    system "Reply with the category" + user "Uber 12.00" + tool "lookup: taxi"
    -> user "[system]\\nReply with the category\\n\\nUber 12.00\\n\\n[tool]\\nlookup: taxi"

Training and evaluation must render prompts the same way; both call ``render_prompt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pria_ml.errors import ConfigError

# Roles besides user/assistant, tried richest set first. Markers are unlikely in any template.
_CANDIDATE_ROLES = (
    frozenset({"system", "tool"}),
    frozenset({"system"}),
    frozenset({"tool"}),
    frozenset(),
)
_PROBE_PROMPT = [
    {"role": "system", "content": "probe-system-3f1c"},
    {"role": "user", "content": "probe-user-one-3f1c"},
    {"role": "tool", "content": "probe-tool-one-3f1c"},
    {"role": "assistant", "content": "probe-assistant-3f1c"},
    {"role": "user", "content": "probe-user-two-3f1c"},
    {"role": "tool", "content": "probe-tool-two-3f1c"},
]
_PROBE_ANSWER = "probe-answer-3f1c"


class TemplateMismatch(ValueError):
    """The template renders the prompt differently once the answer is appended."""


def _render_pair(tokenizer: Any, messages: list[dict[str, str]], answer: str) -> tuple[str, str]:
    prompt_text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    full_text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": answer}], tokenize=False
    )
    return prompt_text, full_text


def _supports(tokenizer: Any, roles: frozenset[str]) -> bool:
    """Whether the probe, folded for ``roles``, renders whole and prompt-prefix-consistent."""
    messages = to_template_messages(_PROBE_PROMPT, roles)
    try:
        prompt_text, full_text = _render_pair(tokenizer, messages, _PROBE_ANSWER)
    except Exception:  # jinja2 TemplateError, or a ValueError from raise_exception()
        return False
    kept = all(m["content"] in prompt_text for m in _PROBE_PROMPT)
    return kept and full_text.startswith(prompt_text) and _PROBE_ANSWER in full_text


def native_roles(tokenizer: Any) -> frozenset[str]:
    """The roles besides user/assistant the template really supports (probed once per template).

    Raises ``TemplateMismatch`` when even user/assistant alone fail the probe.
    """
    template = tokenizer.chat_template
    cached = getattr(tokenizer, "_pria_native_roles", None)
    if cached is not None and cached[0] == template:
        return cached[1]
    for roles in _CANDIDATE_ROLES:
        if _supports(tokenizer, roles):
            tokenizer._pria_native_roles = (template, roles)
            return roles
    raise TemplateMismatch(
        "the chat template does not render a user/assistant conversation with the prompt as a "
        "prefix of prompt + answer, nor keeps every message's text; set PRIA_BASE_MODEL to a "
        "model whose chat template does"
    )


def to_template_messages(
    messages: Iterable[Mapping[str, str]], native_roles: frozenset[str]
) -> list[dict[str, str]]:
    """Fold the roles outside ``native_roles`` (besides user/assistant) into user turns.

    Consecutive user-side turns are merged so that user/assistant alternate, as strict
    templates require.
    """
    folded: list[dict[str, str]] = []
    for message in messages:
        role, content = message["role"], message["content"] or ""
        if role not in ("user", "assistant") and role not in native_roles:
            content = f"[{role}]\n{content}"
            role = "user"
        if folded and role == "user" and folded[-1]["role"] == "user":
            folded[-1] = {"role": "user", "content": f"{folded[-1]['content']}\n\n{content}"}
        else:
            folded.append({"role": role, "content": content})
    return folded


def render_prompt(tokenizer: Any, prompt: Iterable[Mapping[str, str]]) -> str:
    """The prompt as the text the model continues from (generation prompt appended)."""
    messages = to_template_messages(prompt, native_roles(tokenizer))
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_example(
    tokenizer: Any, prompt: Iterable[Mapping[str, str]], completion: str
) -> tuple[str, str]:
    """``(prompt_text, full_text)``: full_text is prompt_text followed by the completion turn.

    Raises ``TemplateMismatch`` (a ``ValueError``) when the template renders the prompt
    differently with the completion appended, because the prompt/completion boundary would
    then be unknown.
    """
    messages = to_template_messages(prompt, native_roles(tokenizer))
    prompt_text, full_text = _render_pair(tokenizer, messages, completion)
    if not full_text.startswith(prompt_text):
        raise TemplateMismatch(
            "the chat template renders the prompt differently once the answer is appended; "
            "cannot tell prompt tokens from completion tokens"
        )
    return prompt_text, full_text


IGNORE_INDEX = -100  # label value the loss skips (PyTorch's cross_entropy ignore_index)


@dataclass(frozen=True)
class Example:
    """One tokenised training example: the rendered prompt + completion, and its labels."""

    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX on prompt tokens, the token id on completion tokens


def tokenize_example(tokenizer: Any, prompt: list[dict[str, str]], completion: str) -> Example:
    """Render with the chat template; label only the completion turn's tokens.

    The boundary is found by character offsets, so a BPE merge across the prompt/completion
    seam cannot shift it: a token belongs to the completion iff it starts at or after the end of
    the rendered prompt.
    """
    from jinja2 import TemplateError

    try:
        prompt_text, full_text = render_example(tokenizer, prompt, completion)
    except (ValueError, TemplateError) as exc:
        raise ConfigError(
            f"the base model's chat template cannot render a training example: {exc}"
        ) from None
    encoded = tokenizer(full_text, add_special_tokens=False, return_offsets_mapping=True)
    boundary = len(prompt_text)
    labels = [
        token if start >= boundary else IGNORE_INDEX
        for token, (start, _end) in zip(
            encoded["input_ids"], encoded["offset_mapping"], strict=True
        )
    ]
    return Example(input_ids=list(encoded["input_ids"]), labels=labels)
