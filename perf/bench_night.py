"""Warm start vs full retraining, and adapter rank / targets, on the demo's world (CPU).

    PYTHONPATH=. .venv/bin/python perf/bench_night.py [--home DIR] [--json OUT] [--tiny]

The demo's pre-trained tiny base (``pria_ml/model/tiny.py``: it answers like the seeded agent,
trap merchants wrong) and conversations drawn by the seeder's own generator
(``seed.draw_case``), labelled with the approved action (``Case.correct_action``). Two
periods: 14 old days, which the "prod" adapter is trained on, and 7 new days. Night 2 then
trains either

- warm start: from the prod adapter, on the new days plus a replay sample of the old ones
  (``training.selection.select`` with the prod adapter's ``trained_through``), or
- full retraining: a fresh adapter on a sample of all 21 days (``select`` without it),

each at a budget of 1x and 2x the new days' tokens (on a GPU the budget is what
``selection.token_budget`` gives a night). Accuracy is exact match of greedy answers with the
approved actions on 96 fresh conversations (overall and on trap merchants, the part the
adapter must learn), read off a teacher-forced forward (``accuracy``: the same verdict as
generating, at a fraction of the CPU). Then the same full night at one budget with two more
adapter shapes: rank 32 on every projection, rank 64 on attention + down_proj (rank 64 on
every projection is the demo profile's, the full retraining above).

Training is the recipe's own pieces (``train.add_adapter``, ``PackingCollator``,
``train.completion_loss``) in a plain loop with the demo profile's learning rate (1e-3, linear
warm-up 10 % and decay, batch 16): no registry or storage, so the numbers are the training's.

``--tiny`` runs every row (both night kinds at both budgets, all three shapes) on a base
pre-trained for one step, 2 old + 2 new conversations (one step a night) and 4 evaluation
conversations, in a temporary home unless ``--home`` is given: the code path in seconds, not
figures.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 16


@dataclasses.dataclass(frozen=True)
class Size:
    old_days: int = 14
    new_days: int = 7
    per_day: int = 16
    held: int = 96
    pretrain_steps: int | None = None  # None: the demo's (tinymodel.PRETRAIN_STEPS)


TINY = Size(old_days=1, new_days=1, per_day=2, held=4, pretrain_steps=1)


def world(seed: int = 5, size: Size = Size()):
    """(rows with record_date, eval cases, last old day): conversations of the old and new
    days (21 x 16) and ``size.held`` (96) fresh ones."""
    from pria_ml.world import seed as seeder

    rng = random.Random(seed)
    population = seeder.Population(rng, 600)
    start = dt.date(2026, 10, 1)
    rows = []
    for day in range(size.old_days + size.new_days):
        date = start + dt.timedelta(days=day)
        at = dt.datetime.combine(date, dt.time(12), tzinfo=dt.UTC)
        for _ in range(size.per_day):
            case = seeder.draw_case(
                rng, rng.choice(population.users), rng.choice(population.merchants), at
            )
            rows.append((date, case.prompt, case.correct_action, case.merchant))
    held = []
    at = dt.datetime.combine(start + dt.timedelta(days=40), dt.time(12), tzinfo=dt.UTC)
    for _ in range(size.held):
        case = seeder.draw_case(
            rng, rng.choice(population.users), rng.choice(population.merchants), at
        )
        held.append((case.prompt, case.correct_action, case.merchant in seeder.TRAP_MERCHANTS))
    return rows, held, start + dt.timedelta(days=size.old_days - 1)


def train_adapter(base_dir, tokenizer, examples, config, start_from=None) -> tuple:
    import torch
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    from pria_ml import train
    from pria_ml.model import loading
    from pria_ml.training.packing import PackingCollator

    model = train.add_adapter(loading.load_base_model(str(base_dir)), config)
    if start_from is not None:
        set_peft_model_state_dict(model, start_from)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    steps = max(1, math.ceil(len(examples) / BATCH))
    warmup = math.floor(0.1 * steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: (
            (s + 1) / (warmup + 1) if s < warmup else max(0.0, (steps - s) / (steps - warmup))
        ),
    )
    collator = PackingCollator(tokenizer.pad_token_id, config.max_length, True, max_tokens=8192)
    order = list(range(len(examples)))
    random.Random(config.seed).shuffle(order)
    started, cpu = time.perf_counter(), time.process_time()
    for step in range(steps):
        chunk = [examples[i] for i in order[step * BATCH : (step + 1) * BATCH]]
        batch = collator([{"input_ids": e.input_ids, "labels": e.labels} for e in chunk])
        passes = batch.get("chunks", [batch])
        items = int((batch["labels"][..., 1:] != -100).sum())
        for part in passes:
            train.completion_loss(model, part, items)[0].backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
    # Wall seconds, and the CPU seconds of this process (all its threads): on a shared machine
    # the first swings with the other jobs, the second much less.
    seconds = (time.perf_counter() - started, time.process_time() - cpu)
    state = {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}
    return model, state, steps, seconds


def accuracy(model, tokenizer, held) -> tuple[float, float]:
    """Exact match of greedy answers, read off one teacher-forced forward per conversation:
    greedy decoding reproduces the approved action (and stops after it) exactly when the
    argmax at every position of the action and its end-of-turn is the action's own token."""
    import torch

    from pria_ml.model import chat

    # Training mode without dropout (the adapters here have none) computes the same logits
    # through bitsandbytes' dequantise-and-matmul path; its CPU inference kernel is many times
    # slower.
    model.train()
    right = []
    with torch.no_grad():
        for prompt, want, _ in held:
            example = chat.tokenize_example(tokenizer, prompt, want)
            ids = torch.tensor([example.input_ids])
            labels = torch.tensor(example.labels[1:])
            predicted = model(input_ids=ids).logits[0, :-1].argmax(-1)
            scored = labels != -100
            right.append(bool((predicted[scored] == labels[scored]).all()))
    traps = [r for r, (_, _, trap) in zip(right, held, strict=True) if trap]
    return sum(right) / len(right), sum(traps) / max(len(traps), 1)


def header() -> str:
    """The first line: the commit and command that produced the figures, and the load."""
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "pria_ml", "perf"], capture_output=True, text=True
    )
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    modified = " (modified)" if dirty.stdout.strip() else ""
    return (
        f"commit {commit.stdout.strip() or 'unknown'}{modified}; "
        f"command: {' '.join(sys.argv)}; {os.cpu_count()} cores, load {load}"
    )


def ratios(results: dict, single: int, doubled: int) -> list[str]:
    """Warm start against full retraining at each budget; each shape against rank 64 on every
    projection (the full retraining at 2x)."""
    runs = results["runs"]

    def row(kind: str, budget: int) -> dict:
        return next(r for r in runs if r["kind"] == kind and r["budget_tokens"] == budget)

    def versus(a: dict, b: dict) -> str:
        return (
            f"exact match {a['accuracy']:.1%} / {b['accuracy']:.1%} "
            f"({100 * (a['accuracy'] - b['accuracy']):+.1f} points), "
            f"traps {a['trap_accuracy']:.1%} / {b['trap_accuracy']:.1%}, "
            f"wall s x{a['seconds'] / max(b['seconds'], 0.1):.2f}, "
            f"CPU s x{a['cpu_seconds'] / max(b['cpu_seconds'], 0.1):.2f}"
        )

    lines = []
    for label, budget in (("1x", single), ("2x", doubled)):
        warm, full = row("warm start", budget), row("full retraining", budget)
        lines.append(f"warm/full at {label}: {versus(warm, full)}")
    reference = row("full retraining", doubled)
    for shaped in (r for r in runs if r["kind"].startswith("rank ")):
        lines.append(
            f"{shaped['kind']} / rank 64, all-linear at 2x: parameters "
            f"x{shaped['tiny_params'] / reference['tiny_params']:.2f} on the tiny model, "
            f"x{shaped['mistral_7b_params'] / reference['mistral_7b_params']:.2f} on "
            f"Mistral-7B; {versus(shaped, reference)}"
        )
    lines.append(
        f"{len(results['held'])} evaluation conversations ({results['trap_conversations']} on "
        "trap merchants): one conversation is "
        f"{100 / len(results['held']):.1f} points; single runs, not intervals"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=None, help="default .pria/bench-night")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--tiny", action="store_true", help="every row on 2 + 2 conversations, 4 to score"
    )
    args = parser.parse_args()
    size = TINY if args.tiny else Size()
    args.header = header()
    print(args.header, flush=True)
    with contextlib.ExitStack() as stack:
        if args.home is None:
            args.home = (
                Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-night-")))
                if args.tiny
                else Path(".pria/bench-night")
            )
        run(args, size)


def run(args, size: Size) -> None:
    from transformers import AutoConfig, MistralConfig

    from pria_ml import train
    from pria_ml.model import chat, loading
    from pria_ml.model import tiny as tinymodel
    from pria_ml.training import selection
    from pria_ml.training.memory import ModelShape

    steps_wanted = tinymodel.PRETRAIN_STEPS if size.pretrain_steps is None else size.pretrain_steps
    base_dir = args.home / "tiny-pretrained"
    recipe = tinymodel.built_recipe(base_dir)
    # A base of another pre-training (a --tiny run's one step, in the same --home) is rebuilt.
    if recipe is None or recipe.get("pretrain_steps") != steps_wanted:
        started = time.perf_counter()
        tinymodel.build(base_dir, pretrain_steps=steps_wanted)
        print(f"built the base ({steps_wanted} pre-training steps) in "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    tokenizer = loading.load_tokenizer(str(base_dir))
    rows, held, old_until = world(size=size)
    examples = [chat.tokenize_example(tokenizer, p, c) for _, p, c, _ in rows]
    lengths = [len(e.input_ids) for e in examples]
    dates = [d for d, _, _, _ in rows]
    config = train.PROFILES["demo"].with_overrides(lora_dropout=0.0)
    shape = ModelShape.from_config(AutoConfig.from_pretrained(str(base_dir)))
    mistral = ModelShape.from_config(MistralConfig())
    results: dict = {
        "header": args.header,
        "size": dataclasses.asdict(size),
        "mean_tokens": sum(lengths) / len(lengths),
        "held": [want for _, want, _ in held],
        "trap_conversations": sum(trap for _, _, trap in held),
        "runs": [],
    }

    def record(kind: str, budget: int, chosen, model, steps: int, seconds: tuple, **extra):
        acc, trap = accuracy(model, tokenizer, held)
        entry = {
            "kind": kind, "budget_tokens": budget, "tokens": chosen.tokens_per_epoch,
            "new": chosen.new_examples, "replay": chosen.replay_examples, "steps": steps,
            "seconds": round(seconds[0], 1), "cpu_seconds": round(seconds[1], 1),
            "accuracy": acc, "trap_accuracy": trap,
            "load": round(os.getloadavg()[0], 1), **extra,
        }  # fmt: skip
        results["runs"].append(entry)
        print(json.dumps(entry), flush=True)

    base = loading.load_base_model(str(base_dir))
    acc, trap = accuracy(base, tokenizer, held)
    results["base"] = {"accuracy": acc, "trap_accuracy": trap}
    print("base", results["base"], flush=True)
    del base

    # Night 1: the prod adapter, on the old days only.
    old = [i for i, d in enumerate(dates) if d <= old_until]
    prod_budget = sum(lengths[i] for i in old)
    first = selection.select(
        [lengths[i] for i in old], [dates[i] for i in old], trained_through=None,
        budget_tokens=prod_budget, epochs=1, replay_ratio=0, seed=1,
    )  # fmt: skip
    model, prod_state, steps, seconds = train_adapter(
        base_dir, tokenizer, [examples[old[i]] for i in first.indices], config
    )
    record("prod (night 1, old days)", prod_budget, first, model, steps, seconds)

    def counts(r: int, targets: tuple[str, ...]) -> dict:
        return {
            "tiny_params": shape.lora_parameters(r, targets),
            "mistral_7b_params": mistral.lora_parameters(r, targets),
        }

    new_tokens = sum(n for n, d in zip(lengths, dates, strict=True) if d > old_until)
    for budget in (new_tokens, 2 * new_tokens):
        for warm in (True, False):
            chosen = selection.select(
                lengths, dates, trained_through=old_until if warm else None,
                budget_tokens=budget, epochs=1, replay_ratio=1.0, seed=2,
            )  # fmt: skip
            model, _, steps, seconds = train_adapter(
                base_dir,
                tokenizer,
                [examples[i] for i in chosen.indices],
                config,
                prod_state if warm else None,
            )
            record(
                "warm start" if warm else "full retraining", budget, chosen, model, steps,
                seconds, **counts(config.lora_r, config.lora_target_modules),
            )  # fmt: skip

    budget = 2 * new_tokens  # rank 64 on every projection is the full retraining above
    for r, targets in (
        (32, ("all-linear",)),
        (64, ("q_proj", "k_proj", "v_proj", "o_proj", "down_proj")),
    ):
        shaped = config.with_overrides(lora_r=r, lora_target_modules=targets)
        chosen = selection.select(
            lengths, dates, trained_through=None, budget_tokens=budget, epochs=1,
            replay_ratio=1.0, seed=2,
        )  # fmt: skip
        model, _, steps, seconds = train_adapter(
            base_dir, tokenizer, [examples[i] for i in chosen.indices], shaped
        )
        record(
            f"rank {r}, {'+'.join(targets)}", budget, chosen, model, steps, seconds,
            **counts(r, targets),
        )  # fmt: skip
    for line in ratios(results, new_tokens, 2 * new_tokens):
        print(line, flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
