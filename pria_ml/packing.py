"""Training examples as the model sees them: chat-template rendering, completion-only labels,
and packing several examples into one row without letting them attend to each other.

Used by the training recipe (``train.py``) and its benchmarks; evaluation renders prompts with
the same chat template through ``chat.render_prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pria_ml.errors import ConfigError

if TYPE_CHECKING:
    import torch

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

    from pria_ml.chat import render_example

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


def tokenize_rows(
    tokenizer: Any, rows: list[dict[str, Any]], max_length: int
) -> tuple[list[Example], int]:
    """Tokenised examples that fit ``max_length`` and have a completion; and how many did not."""
    examples, dropped = [], 0
    for row in rows:
        example = tokenize_example(tokenizer, row["prompt"] or [], row["completion"] or "")
        if len(example.input_ids) > max_length or all(t == IGNORE_INDEX for t in example.labels):
            dropped += 1
            continue
        examples.append(example)
    return examples, dropped


def pack_rows(lengths: list[int], max_length: int) -> list[list[int]]:
    """Group example indices into rows of at most ``max_length`` tokens (first-fit decreasing)."""
    rows: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, free in enumerate(room):
            if lengths[index] <= free:
                rows[row].append(index)
                room[row] -= lengths[index]
                break
        else:
            rows.append([index])
            room.append(max_length - lengths[index])
    return rows


@dataclass
class PackingCollator:
    """Micro-batch of examples -> packed rows with a block-diagonal causal attention mask.

    Each row holds several examples back to back. ``attention_mask`` is 4-D
    (rows, 1, length, length) and lets a token see only earlier tokens of its own example;
    ``position_ids`` restart at 0 for each example, so every example sees exactly what it
    would see alone. Restarted ``position_ids`` by themselves do not isolate examples with
    ``sdpa`` or ``eager`` attention (docs/decisions.md); the mask does. Padding positions
    attend to themselves only (a fully masked row would turn into NaN) and carry no loss.
    With ``packing=False`` each example gets its own row: the padded baseline.
    """

    pad_token_id: int
    max_length: int
    packing: bool = True

    def __call__(self, features: list[Any]) -> dict[str, torch.Tensor]:
        import torch

        ids = [list(f["input_ids"]) for f in features]
        labels = [list(f["labels"]) for f in features]
        if self.packing:
            rows = pack_rows([len(x) for x in ids], self.max_length)
        else:
            rows = [[i] for i in range(len(ids))]
        width = max(sum(len(ids[i]) for i in row) for row in rows)
        shape = (len(rows), width)
        input_ids = torch.full(shape, self.pad_token_id, dtype=torch.long)
        label_ids = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        segment = torch.full(shape, -1, dtype=torch.long)
        for r, row in enumerate(rows):
            offset = 0
            for s, i in enumerate(row):
                n = len(ids[i])
                input_ids[r, offset : offset + n] = torch.tensor(ids[i])
                label_ids[r, offset : offset + n] = torch.tensor(labels[i])
                position_ids[r, offset : offset + n] = torch.arange(n)
                segment[r, offset : offset + n] = s
                offset += n
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
        mask = (same & causal) | torch.eye(width, dtype=torch.bool)
        return {
            "input_ids": input_ids,
            "labels": label_ids,
            "position_ids": position_ids,
            "attention_mask": mask[:, None, :, :],
        }
