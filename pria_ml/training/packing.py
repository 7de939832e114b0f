"""Training examples as the model sees them: chat-template rendering, completion-only labels,
and packing several examples into one row without letting them attend to each other.

Used by the training recipe (``train.py``) and its benchmarks; evaluation renders prompts with
the same chat template through ``chat.render_prompt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pria_ml.model.chat import IGNORE_INDEX, Example, tokenize_example

if TYPE_CHECKING:
    import torch


def tokenize_rows(
    tokenizer: Any, rows: list[dict[str, Any]], max_length: int
) -> tuple[list[Example], int]:
    """Tokenised examples that fit ``max_length`` and have a completion; and how many did not."""
    kept = tokenize_kept(tokenizer, rows, max_length)
    return [example for _, example in kept], len(rows) - len(kept)


def tokenize_kept(
    tokenizer: Any, rows: list[dict[str, Any]], max_length: int
) -> list[tuple[int, Example]]:
    """``(row index, example)`` of the rows whose example fits ``max_length`` and has a
    completion (longer ones are dropped, not truncated: a cut completion teaches a wrong
    action)."""
    kept = []
    for index, row in enumerate(rows):
        example = tokenize_example(tokenizer, row["prompt"] or [], row["completion"] or "")
        if len(example.input_ids) > max_length or all(t == IGNORE_INDEX for t in example.labels):
            continue
        kept.append((index, example))
    return kept


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
    """Micro-batch of examples -> model input, in one or several forward passes.

    Three layouts (``layout``):

    - ``"masked"`` (packing, the CPU/sdpa path): examples packed back to back into rows of at
      most ``max_length`` tokens, with a 4-D block-diagonal causal ``attention_mask``
      (rows, 1, length, length) so a token sees only earlier tokens of its own example, and
      ``position_ids`` restarting at 0 per example. Padding attends to itself only (a fully
      masked row would turn into NaN) and carries no loss.
    - ``"flattened"`` (padding-free, transformers' ``DataCollatorWithFlattening`` semantics): all
      examples of a pass in ONE row, ``position_ids`` restarting per example and no
      ``attention_mask``; FlashAttention-2's variable-length kernels read the example
      boundaries from the restarted positions. No padding and no quadratic mask at all.
    - ``"padded"``: one example per row, padded to the longest (the baseline; ``packing=False``).

    ``max_tokens`` caps the tokens of one forward pass (rows x row width): a micro-batch over
    it is returned as ``{"chunks": [pass, ...], "labels": ...}``, which ``train``'s trainer
    runs as several forward/backward passes into the same gradient; ``labels`` then holds every
    pass's labels, for the count of labelled tokens the loss is normalised by.
    """

    pad_token_id: int
    max_length: int
    packing: bool = True
    max_tokens: int | None = None
    flatten: bool = False

    @property
    def layout(self) -> str:
        if not self.packing:
            return "padded"
        return "flattened" if self.flatten else "masked"

    def __call__(self, features: list[Any]) -> dict[str, Any]:
        ids = [list(f["input_ids"]) for f in features]
        labels = [list(f["labels"]) for f in features]
        lengths = [len(x) for x in ids]
        budget = self.max_tokens or sum(lengths) * len(lengths)
        if self.layout == "flattened":
            passes = [[row] for row in _fill(list(range(len(ids))), lengths, budget)]
        else:
            alone = [[i] for i in range(len(ids))]
            rows = pack_rows(lengths, self.max_length) if self.packing else alone
            passes = _passes(rows, lengths, budget)
        built = [self._build(rows, ids, labels) for rows in passes]
        if len(built) == 1:
            return built[0]
        return {"chunks": built, "labels": _stack_labels([b["labels"] for b in built])}

    def _build(
        self, rows: list[list[int]], ids: list[list[int]], labels: list[list[int]]
    ) -> dict[str, torch.Tensor]:
        import torch

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
        batch = {"input_ids": input_ids, "labels": label_ids, "position_ids": position_ids}
        if self.layout == "flattened":
            return batch
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
        mask = (same & causal) | torch.eye(width, dtype=torch.bool)
        return {**batch, "attention_mask": mask[:, None, :, :]}


def _fill(indices: list[int], lengths: list[int], budget: int) -> list[list[int]]:
    """Consecutive groups of ``indices`` whose lengths sum to at most ``budget`` each."""
    groups: list[list[int]] = [[]]
    used = 0
    for i in indices:
        if groups[-1] and used + lengths[i] > budget:
            groups.append([])
            used = 0
        groups[-1].append(i)
        used += lengths[i]
    return groups


def _passes(rows: list[list[int]], lengths: list[int], budget: int) -> list[list[list[int]]]:
    """Rows grouped into forward passes of at most ``budget`` tokens (rows x widest row)."""
    width = [sum(lengths[i] for i in row) for row in rows]
    passes: list[list[list[int]]] = []
    pass_width = 0
    for r in sorted(range(len(rows)), key=lambda r: -width[r]):
        # widest first, so a pass is as wide as its first row
        if passes and (len(passes[-1]) + 1) * pass_width <= budget:
            passes[-1].append(rows[r])
        else:
            passes.append([rows[r]])
            pass_width = width[r]
    return passes


def _stack_labels(parts: list[torch.Tensor]) -> torch.Tensor:
    import torch

    width = max(p.shape[1] for p in parts)
    padded = [
        torch.nn.functional.pad(p, (0, width - p.shape[1]), value=IGNORE_INDEX) for p in parts
    ]
    return torch.cat(padded)
