"""The gate's noise model, measured: how much two identical adapters' latency differs here.

Times ``--prompts`` val-like prompts on two LoRA adapters with identical weights (so identical
compute: every difference is the machine's noise), interleaved and alternating as
``evaluate.time_latency`` does, ``--repeats`` times, for ``--trials`` independent trials. It
writes the raw timings (``--out``, JSON) and prints the noise model the gate is sized from
(``pria_ml/quality/precision.py``):

- the spread of one timing around its prompt's typical time (log scale: robust sigma from the
  median absolute deviation, and the share of spikes more than 20 % above the prompt's minimum);
- for each number of repeats, the standard error of ``latency_delta`` (p95 ratio - 1) between
  the identical adapters, per-prompt minimum (the estimator the gate uses) against per-prompt
  median (the estimator used before), computed over the trials' resampled repeats.

Run: ``nice -n 10 .venv/bin/python perf/bench_gate_noise.py [--prompts 8] [--repeats 8]``;
``--tiny`` (2 prompts x 2 repeats x 2 trials of 2 tokens, output in a temporary folder) runs
the same code in seconds, for the suite.
docs/evaluation.md records the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_eval import comparison, prompts, with_adapters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("gate-noise.json"))
    parser.add_argument("--tiny", action="store_true", help="seconds: the suite's size")
    args = parser.parse_args()
    if args.tiny:
        args.prompts, args.repeats, args.trials, args.new_tokens = 2, 2, 2, 2

    import numpy as np
    import torch

    from pria_ml.evaluate import time_latency
    from pria_ml.model import tiny as tinymodel
    from pria_ml.model.loading import load_tokenizer
    from pria_ml.quality import precision

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        if args.tiny:
            args.out = Path(scratch) / "gate-noise.json"
        steps = 0 if args.tiny else tinymodel.PRETRAIN_STEPS  # timing needs no trained weights
        base = str(tinymodel.build(Path(scratch) / "tiny", pretrain_steps=steps))
        tokenizer = load_tokenizer(base)
        model = with_adapters(base, {"candidate": 16, "baseline": 16})
        state = {
            k.replace(".candidate.", ".baseline."): v
            for k, v in model.state_dict().items()
            if ".candidate." in k
        }
        model.load_state_dict(state, strict=False)
        pair = comparison(model, tokenizer)
        trials = []
        for trial in range(args.trials):
            times = time_latency(
                pair,
                prompts(args.prompts, seed=trial),
                new_tokens=args.new_tokens,
                repeats=args.repeats,
            )
            trials.append({name: t.tolist() for name, t in times.items()})
            print(f"trial {trial}: timed {args.prompts} prompts x {args.repeats} repeats")
            recorded = {"args": vars(args) | {"out": str(args.out)}, "trials": trials}
            args.out.write_text(
                json.dumps(recorded)
            )  # after every trial: a long run keeps its data
    model_fit = precision.fit_latency_noise(
        [{k: np.array(v) for k, v in t.items()} for t in trials]
    )
    print(f"noise model: {model_fit}")
    rng = np.random.default_rng(0)
    for repeats in sorted({r for r in (1, 2, 3, 5) if r <= args.repeats} | {args.repeats}):
        for estimator in ("min", "median"):
            values = []
            for t in trials:
                for _ in range(50):
                    pick = rng.choice(args.repeats, size=repeats, replace=False)
                    c, b = np.asarray(t["candidate"])[:, pick], np.asarray(t["baseline"])[:, pick]
                    values.append(precision.latency_delta_point(c, b, estimator))
            print(
                f"repeats {repeats}, per-prompt {estimator:>6}: latency_delta sd "
                f"{np.std(values):.4f}, P(>= +5 %) {np.mean(np.array(values) >= 0.05):.3f}"
            )


if __name__ == "__main__":
    main()
