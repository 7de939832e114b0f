"""Evaluation benchmarks on the tiny model, each against a baseline measured in the same run.

1. Throughput: eval samples/s with batched greedy generation (``generation.generate``,
   batch 16) vs one sample at a time (batch 1), same prompts, same adapter, interleaved rounds.
2. Latency noise: how often two *identical* adapters would fail the latency clause
   (``latency_delta_low < 0.05``) and how often a point-estimate rule (``latency_delta < 0.05``)
   would, over repeated ``evaluate.measure_latency`` runs on this machine.
3. Latency sensitivity: a genuinely slower candidate (LoRA rank 512 against rank 16) measured
   the same way must be caught.

Run: ``nice -n 10 .venv/bin/python perf/bench_eval.py [--prompts 64] [--trials 10]``.
docs/evaluation.md records the figures.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace


def prompts(n: int, seed: int = 0) -> list[list[dict[str, str]]]:
    from pria_ml.world.seed import MERCHANTS, SYSTEM_PROMPT

    rng = random.Random(seed)
    merchants = sorted(MERCHANTS)
    return [
        [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": f"{rng.choice(merchants)} {rng.randint(5, 900)} EUR"},
        ]
        for _ in range(n)
    ]


def with_adapters(base_dir: str, ranks: dict[str, int]):
    """The 4-bit tiny base with one randomly initialised LoRA adapter per name."""
    import torch
    from peft import LoraConfig, get_peft_model

    from pria_ml.model.loading import load_base_model

    torch.manual_seed(0)
    configs = {
        name: LoraConfig(r=r, lora_alpha=16, target_modules="all-linear", init_lora_weights=False)
        for name, r in ranks.items()
    }
    names = list(configs)
    model = get_peft_model(load_base_model(base_dir), configs[names[0]], adapter_name=names[0])
    for name in names[1:]:
        model.add_adapter(name, configs[name])
    model.eval()
    return model


def throughput(model, tokenizer, batch: list, new_tokens: int, rounds: int) -> dict[str, float]:
    from pria_ml.model.generation import generate

    generate(model, tokenizer, batch[:4], max_new_tokens=new_tokens, batch_size=4)  # warm-up
    seconds = {"batched": [], "one at a time": []}
    for _ in range(rounds):
        for name, size in (("batched", 16), ("one at a time", 1)):
            start = time.perf_counter()
            generate(model, tokenizer, batch, max_new_tokens=new_tokens, batch_size=size)
            seconds[name].append(time.perf_counter() - start)
    return {name: len(batch) / statistics.median(s) for name, s in seconds.items()}


def comparison(model, tokenizer):
    from pria_ml.model.loading import Comparison

    # baseline is only tested for None (None = bare base); both adapters live in ``model``
    return Comparison(model, tokenizer, candidate=None, baseline=SimpleNamespace(), base_model="")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--latency-prompts", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    parser.add_argument("--tiny", action="store_true", help="4 prompts, 1 trial (seconds)")
    args = parser.parse_args()
    if args.tiny:
        args.prompts, args.latency_prompts, args.repeats, args.trials = 4, 4, 2, 1
        args.new_tokens = 2

    import torch

    from pria_ml.evaluate import measure_latency
    from pria_ml.model import tiny as tinymodel
    from pria_ml.model.loading import load_tokenizer

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        # --tiny: the random-initialised base (no pre-training run), same code path after it
        steps = 0 if args.tiny else tinymodel.PRETRAIN_STEPS
        base = str(tinymodel.build(Path(scratch) / "tiny", pretrain_steps=steps))
        tokenizer = load_tokenizer(base)
        batch = prompts(args.prompts)
        print(f"torch threads: {torch.get_num_threads()}")

        model = with_adapters(base, {"candidate": 16, "baseline": 16})
        rates = throughput(model, tokenizer, batch, args.new_tokens, rounds=3)
        for name, rate in rates.items():
            print(f"throughput {name:>13}: {rate:7.2f} samples/s")
        ratio = rates["batched"] / rates["one at a time"]
        print(f"throughput ratio batched / one at a time: x{ratio:.2f}")

        # identical adapters: copy the candidate's weights into the baseline
        state = {
            k.replace(".candidate.", ".baseline."): v
            for k, v in model.state_dict().items()
            if ".candidate." in k
        }
        model.load_state_dict(state, strict=False)
        latency_prompts = batch[: args.latency_prompts]
        pair = comparison(model, tokenizer)
        blocked_interval = blocked_point = 0
        deltas = []
        for trial in range(args.trials):
            measured = measure_latency(
                pair, latency_prompts, new_tokens=args.new_tokens, repeats=args.repeats, seed=trial
            )["latency_delta"]
            deltas.append(measured)
            blocked_interval += measured["low"] >= 0.05
            blocked_point += measured["value"] >= 0.05
            print(
                f"identical adapters, trial {trial}: latency_delta {measured['value']:+.3f} "
                f"[{measured['low']:+.3f}, {measured['high']:+.3f}]"
            )
        print(
            f"identical adapters blocked: interval rule {blocked_interval}/{args.trials}, "
            f"point-estimate rule {blocked_point}/{args.trials}"
        )

        slow = with_adapters(base, {"candidate": 512, "baseline": 16})
        measured = measure_latency(
            comparison(slow, tokenizer),
            latency_prompts,
            new_tokens=args.new_tokens,
            repeats=args.repeats,
        )
        d = measured["latency_delta"]
        caught = d["low"] >= 0.05
        print(
            f"rank 512 vs rank 16: latency_delta {d['value']:+.3f} [{d['low']:+.3f}, "
            f"{d['high']:+.3f}] -> {'caught (blocked)' if caught else 'NOT caught'}"
        )


if __name__ == "__main__":
    main()
