"""What a night trains on, sized to fit its time: a token budget from the tier's throughput
and the night's time target (spec section 5: 45 minutes on an A10G), spent on the examples
the prod adapter has not seen plus a replay sample of those it has (warm start), or on a
sample of the whole window (full retraining, the first night or ``--no-warm-start``).

Pure: lengths, dates and a seed in, example indices out; ``train.plan`` reads the registry
and the split, and records the result in the plan and in ``metrics_json``.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass


def token_budget(tokens_per_second: float, processes: int, target_minutes: float) -> int:
    """Tokens the night can train in ``target_minutes`` at the planned throughput per GPU."""
    return int(tokens_per_second * processes * target_minutes * 60)


@dataclass(frozen=True)
class Selection:
    """The examples a night trains on (indices into the split's kept examples)."""

    indices: list[int]
    new_examples: int  # newer than what the warm-start adapter was trained through
    replay_examples: int  # older ones, replayed so the adapter keeps what it knew
    available_examples: int
    budget_tokens: int  # for all epochs together
    tokens_per_epoch: int

    def as_dict(self) -> dict[str, int]:
        return {
            "new_examples": self.new_examples,
            "replay_examples": self.replay_examples,
            "available_examples": self.available_examples,
            "budget_tokens": self.budget_tokens,
            "tokens_per_epoch": self.tokens_per_epoch,
        }


def select(
    lengths: list[int],
    dates: list[datetime.date],
    *,
    trained_through: datetime.date | None,
    budget_tokens: int,
    epochs: float,
    replay_ratio: float,
    seed: int,
) -> Selection:
    """Indices of the examples to train on, at most ``budget_tokens`` over all ``epochs``.

    With ``trained_through`` (warm start): every example dated after it, sampled when they
    alone exceed the budget, then a random replay of older examples of at most
    ``replay_ratio`` times the new tokens, within what is left of the budget. Without it (full
    retraining): a random sample of the whole split within the budget; all of it when it fits.
    """
    per_epoch = budget_tokens / epochs
    rng = random.Random(seed)
    if trained_through is None:
        pool = list(range(len(lengths)))
        rng.shuffle(pool)
        chosen, used = _take(pool, lengths, per_epoch)
        return Selection(sorted(chosen), len(chosen), 0, len(lengths), budget_tokens, used)
    new = [i for i, day in enumerate(dates) if day > trained_through]
    old = [i for i, day in enumerate(dates) if day <= trained_through]
    rng.shuffle(new)
    rng.shuffle(old)
    fresh, fresh_tokens = _take(new, lengths, per_epoch)
    replay, replay_tokens = _take(
        old, lengths, min(per_epoch - fresh_tokens, replay_ratio * fresh_tokens)
    )
    return Selection(
        sorted(fresh + replay),
        len(fresh),
        len(replay),
        len(lengths),
        budget_tokens,
        fresh_tokens + replay_tokens,
    )


def _take(pool: list[int], lengths: list[int], budget: float) -> tuple[list[int], int]:
    """The longest prefix of ``pool`` whose lengths sum to at most ``budget``, and that sum."""
    chosen, used = [], 0
    for i in pool:
        if used + lengths[i] > budget:
            break
        chosen.append(i)
        used += lengths[i]
    return chosen, used
