"""Turn a training example's messages into the base model's chat format.

The prompt is a list of ``{role, content}`` messages with roles system / user / tool (and
possibly earlier assistant turns); the completion is the approved action. A base model's chat
template may not accept every role: Mistral-7B-Instruct's v0.1/v0.2 templates raise on a
``system`` message and insist on strict user/assistant alternation, and v0.3 wants tool turns
tied to tool calls. So the roles a template accepts are probed once, and the others are folded
into user turns, labelled so the model can still tell them apart::

    system "Reply with the category" + user "Uber 12.00" + tool "lookup: taxi"
    -> user "[system]\\nReply with the category\\n\\nUber 12.00\\n\\n[tool]\\nlookup: taxi"

Training and evaluation must render prompts the same way; both call ``render_prompt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_PROBE = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": "u"},
    {"role": "tool", "content": "t"},
    {"role": "assistant", "content": "a"},
]


def _accepts(tokenizer: Any, messages: list[dict[str, str]]) -> bool:
    try:
        tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # jinja2 TemplateError, or a ValueError from raise_exception()
        return False
    return True


def _native_roles(tokenizer: Any) -> frozenset[str]:
    """The roles besides user/assistant the template takes as written (probed once)."""
    roles = getattr(tokenizer, "_pria_native_roles", None)
    if roles is None:
        if _accepts(tokenizer, _PROBE):
            roles = frozenset({"system", "tool"})
        elif _accepts(tokenizer, [_PROBE[0], _PROBE[1], _PROBE[3]]):
            roles = frozenset({"system"})
        else:
            roles = frozenset()
        tokenizer._pria_native_roles = roles
    return roles


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
    messages = to_template_messages(prompt, _native_roles(tokenizer))
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def render_example(
    tokenizer: Any, prompt: Iterable[Mapping[str, str]], completion: str
) -> tuple[str, str]:
    """``(prompt_text, full_text)``: full_text is prompt_text followed by the completion turn.

    Raises ``ValueError`` when the template renders the prompt differently with the
    completion appended, because the prompt/completion boundary would then be unknown.
    """
    prompt = list(prompt)
    messages = to_template_messages(prompt, _native_roles(tokenizer))
    prompt_text = tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    full_text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": completion}], tokenize=False
    )
    if not full_text.startswith(prompt_text):
        raise ValueError(
            "the chat template renders the prompt differently once the answer is appended; "
            "cannot tell prompt tokens from completion tokens"
        )
    return prompt_text, full_text
