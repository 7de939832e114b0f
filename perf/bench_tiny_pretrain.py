"""The tiny base's pre-training: what it costs and whether the bare base acts like PRIA's agent.

Builds the tiny model with ``--steps`` pre-training steps (``tinymodel.build``), loads it the
way serving does (4-bit, ``loading.load_base_model``), and greedily answers ``--cases`` fresh
seeded conversations (``generation.generate``). Reports the build's wall and CPU seconds and
the exact match of the bare base against the seeded agent's own actions (what it was taught,
mistakes included) and against the approved actions (what a reviewer accepts), next to the
seeded agent's own approved-action rate. Baseline in the same run: the random-initialised
build (``--steps 0``), which answers nothing in the action format.

    .venv/bin/python perf/bench_tiny_pretrain.py --steps 40
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import resource
import tempfile
import time
from pathlib import Path


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(steps: int, cases: int, directory: Path) -> dict:
    from pria_ml.model import generation, loading
    from pria_ml.model import tiny as tinymodel
    from pria_ml.quality import benchmarks
    from pria_ml.world import seed

    wall, cpu = time.monotonic(), cpu_seconds()
    tinymodel.build(directory, pretrain_steps=steps)
    build_wall, build_cpu = time.monotonic() - wall, cpu_seconds() - cpu
    tokenizer = loading.load_tokenizer(str(directory))
    model = loading.load_base_model(str(directory))
    model.eval()
    rng = random.Random(99)  # not the pre-training draws (tinymodel.SEED + 1, + 2)
    population = seed.Population(rng, 500)
    at = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    drawn = [
        seed.draw_case(rng, rng.choice(population.users), rng.choice(population.merchants), at)
        for _ in range(cases)
    ]
    wall = time.monotonic()
    answers = generation.generate(model, tokenizer, [c.prompt for c in drawn], max_new_tokens=32)
    generate_wall = time.monotonic() - wall
    tasks = benchmarks.load_tasks(benchmarks.default_dir())
    scores = benchmarks.run(model, tokenizer, tasks)
    traps = [c for c in drawn if c.merchant in seed.TRAP_MERCHANTS]
    return {
        "steps": steps,
        "build_wall_s": round(build_wall, 1),
        "build_cpu_s": round(build_cpu, 1),
        "generate_wall_s_per_case": round(generate_wall / cases, 3),
        "em_vs_agent": sum(a == c.seeded_action for a, c in zip(answers, drawn, strict=True))
        / cases,
        "em_vs_approved": sum(a == c.correct_action for a, c in zip(answers, drawn, strict=True))
        / cases,
        "agent_vs_approved": sum(c.seeded_action == c.correct_action for c in drawn) / cases,
        "trap_em_vs_approved": sum(
            a == c.correct_action for a, c in zip(answers, drawn, strict=True) if c in traps
        )
        / max(1, len(traps)),
        **{f"bench_{name}": round(benchmarks.mean(docs), 3) for name, docs in scores.items()},
        "example": answers[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cases", type=int, default=160)
    parser.add_argument("--tiny", action="store_true", help="1 step, 2 cases (seconds)")
    args = parser.parse_args()
    if args.tiny:
        args.steps, args.cases = 1, 2
    with tempfile.TemporaryDirectory() as scratch:
        for steps in (0, args.steps):
            result = measure(steps, args.cases, Path(scratch) / f"tiny-{steps}")
            print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main()
