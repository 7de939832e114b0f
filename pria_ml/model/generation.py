"""Greedy, batched generation of the agent's action for a list of prompts.

Evaluation and the simulated production agent both call ``generate``, so a candidate is judged
on exactly the text the serving path would produce. Prompts are rendered with the base model's
chat template through ``chat.render_prompt`` (the rendering training used), padded on the left
so every row of a batch ends where generation starts, and decoded greedily: same prompts, same
decoding, same output, whichever adapter is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pria_ml.model.chat import render_prompt


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[Mapping[str, str]]],
    *,
    max_new_tokens: int = 64,
    batch_size: int = 16,
) -> list[str]:
    """The model's completion of each prompt (a list of ``{role, content}`` messages), greedy.

    Returns one stripped string per prompt, in order, without special tokens. Longest prompts
    are batched together so little compute goes to padding.
    """
    import torch

    if batch_size < 1 or max_new_tokens < 1:
        raise ValueError("batch_size and max_new_tokens must be at least 1")
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    outputs: list[str] = [""] * len(encoded)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            width = max(len(encoded[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids = encoded[i]
                input_ids[row, width - len(ids) :] = torch.tensor(ids)
                attention_mask[row, width - len(ids) :] = 1
            generated = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=pad_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            for row, i in enumerate(batch):
                new_tokens = generated[row, width:]
                outputs[i] = tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
    return outputs
