"""Packing vs padding on CPU with the tiny model: training tokens/s and the share of computed
tokens that are real (not padding), both measured in one run, reported as ratios.

    .venv/bin/python perf/bench_train.py [--examples 256] [--batch 16] [--steps 12]

Same examples, same micro-batches, same 4-bit base + rank-64 LoRA, same optimizer: the only
difference is the collator (``PackingCollator(packing=True)`` vs ``packing=False``, which pads
every example to the longest of its micro-batch). Examples vary in length the way real traces
do (a tool message with 0-24 lookup lines), which is what makes padding expensive.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path


def examples(tokenizer, n: int, seed: int = 0):
    from pria_ml.model import chat
    from pria_ml.model import tiny as tinymodel

    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        merchant = rng.choice(tinymodel.MERCHANTS)
        lines = "\n".join(
            f"lookup {rng.choice(tinymodel.MERCHANTS)}: {rng.randint(1, 999)}.00 EUR"
            for _ in range(rng.randint(0, 24))
        )
        prompt = [
            {"role": "system", "content": "You are PRIA's expense agent. Reply with the action."},
            {"role": "user", "content": f"Categorise: {merchant} {rng.randint(1, 900)}.00 EUR"},
            {"role": "tool", "content": lines or "no history"},
        ]
        completion = f"set_category {rng.choice(tinymodel.CATEGORIES)}"
        rows.append(chat.tokenize_example(tokenizer, prompt, completion))
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in rows]


def measure(runs: dict, features, batch: int, steps: int) -> dict[str, dict[str, float]]:
    """Train every variant on the same micro-batches, interleaved step by step so that a busy
    machine slows them alike; the first step is a warm-up. Tokens/s and real-token share."""
    import torch

    totals = {name: {"real": 0, "computed": 0, "seconds": 0.0} for name in runs}
    optimizers = {
        name: torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        for name, (model, _) in runs.items()
    }
    for step in range(steps + 1):
        chunk = features[step * batch : (step + 1) * batch]
        for name, (model, collator) in runs.items():
            model.train()
            inputs = collator(chunk)
            started = time.perf_counter()
            model(**inputs).loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad()
            if step == 0:
                continue  # warm-up: allocator and bitsandbytes' first-call work
            total = totals[name]
            total["seconds"] += time.perf_counter() - started
            total["real"] += sum(len(f["input_ids"]) for f in chunk)
            total["computed"] += inputs["input_ids"].numel()
    return {
        name: {
            "real_tokens_per_s": t["real"] / t["seconds"],
            "real_fraction": t["real"] / t["computed"],
            "seconds": t["seconds"],
        }
        for name, t in totals.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=208)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--max-length", type=int, default=512, help="packed row length")
    parser.add_argument("--tiny", action="store_true", help="2 steps of 4 examples (seconds)")
    args = parser.parse_args()
    if args.tiny:
        args.examples, args.batch, args.steps = 12, 4, 2

    import torch

    from pria_ml import train
    from pria_ml.model import loading
    from pria_ml.model import tiny as tinymodel
    from pria_ml.training import packing

    torch.manual_seed(0)
    # --tiny: the random-initialised base (no pre-training run), same code path after it
    steps = 0 if args.tiny else tinymodel.PRETRAIN_STEPS
    directory = tinymodel.build(Path(tempfile.mkdtemp()) / "tiny-mistral", pretrain_steps=steps)
    tokenizer = loading.load_tokenizer(str(directory))
    features = examples(tokenizer, max(args.examples, (args.steps + 1) * args.batch))
    lengths = sorted(len(f["input_ids"]) for f in features)
    print(
        f"tiny model, {len(features)} examples, length min/median/max "
        f"{lengths[0]}/{lengths[len(lengths) // 2]}/{lengths[-1]} tokens, "
        f"micro-batch {args.batch}, {args.steps} timed steps, {torch.get_num_threads()} threads"
    )
    config = train.PROFILES["demo"].with_overrides(lora_dropout=0.0)
    runs = {
        name: (
            train.add_adapter(loading.load_base_model(str(directory)), config),
            packing.PackingCollator(tokenizer.pad_token_id, args.max_length, packed),
        )
        for name, packed in (("padded", False), ("packed", True))
    }
    results = measure(runs, features, args.batch, args.steps)
    for name, r in results.items():
        print(
            f"{name:>7}: {r['real_tokens_per_s']:8.0f} real tokens/s, "
            f"{100 * r['real_fraction']:5.1f} % of computed tokens real, "
            f"{r['seconds']:.1f} s"
        )
    packed, padded = results["packed"], results["padded"]
    speedup = packed["real_tokens_per_s"] / padded["real_tokens_per_s"]
    share = packed["real_fraction"] / padded["real_fraction"]
    print(f"ratio packed/padded: throughput x{speedup:.2f}, real-token share x{share:.2f}")


if __name__ == "__main__":
    main()
