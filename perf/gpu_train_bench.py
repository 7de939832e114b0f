"""QLoRA training throughput and peak memory of a Mistral-7B-shaped model on one CUDA GPU.

    .venv/bin/python perf/gpu_train_bench.py [--model-dir DIR] [--steps 10] [--batch 8]

Needs a CUDA GPU (exits with a message otherwise; never part of the test suite) and ~15 GB of
disk for a random-init checkpoint: the weights are random (nothing is downloaded), but they are
saved and loaded back through ``pria_ml.loading.load_base_model``, the production path (4-bit NF4,
double quantisation, bf16 compute), then wrapped by ``add_adapter`` with the spec's defaults
(rank 64, all linear layers, gradient checkpointing). Synthetic examples of 200-600 tokens, the
last fifth labelled, are trained packed into 2048-token rows and, as the in-run baseline,
padded to the longest of each micro-batch. Prints real tokens/s, peak GPU memory and the
packed/padded ratio; tokens/s is the figure for ``GpuTier.tokens_per_second``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path


def build_random_mistral_7b(directory: Path) -> Path:
    """Random-init Mistral-7B (transformers' MistralConfig defaults), saved in bf16."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    if (directory / "config.json").is_file():
        return directory
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = MistralForCausalLM(MistralConfig())
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(directory)
    del model
    torch.cuda.empty_cache()
    return directory


def synthetic_features(n: int, vocab: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    features = []
    for _ in range(n):
        length = rng.randint(200, 600)
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        cut = length - length // 5
        features.append({"input_ids": ids, "labels": [-100] * cut + ids[cut:]})
    return features


def measure(model, collator, features, batch: int, steps: int) -> dict[str, float]:
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=8e-5)
    model.train()
    real = 0
    torch.cuda.reset_peak_memory_stats()
    elapsed = 0.0
    for step in range(steps + 1):
        chunk = features[step * batch : (step + 1) * batch]
        inputs = {k: v.cuda() for k, v in collator(chunk).items()}
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if step:  # the first step is a warm-up
            elapsed += time.perf_counter() - started
            real += sum(len(f["input_ids"]) for f in chunk)
    return {
        "tokens_per_s": real / elapsed,
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse a saved random 7B")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8, help="examples per micro-batch")
    parser.add_argument("--max-length", type=int, default=2048)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit(
            "gpu_train_bench: no CUDA GPU here; run it on a GPU machine (see docs/training.md)"
        )

    from pria_ml import loading, packing, train

    directory = build_random_mistral_7b(args.model_dir or Path(tempfile.mkdtemp()) / "mistral-7b")
    config = train.PROFILES["spec"]
    features = synthetic_features((args.steps + 1) * args.batch, vocab=32000)
    print(f"{torch.cuda.get_device_name(0)}, random-init Mistral-7B, micro-batch {args.batch}")
    results = {}
    for name, packed in (("padded", False), ("packed", True)):
        model = train.add_adapter(loading.load_base_model(str(directory)), config)
        trainable, total = train.trainable_parameters(model)
        collator = packing.PackingCollator(0, args.max_length, packed)
        results[name] = measure(model, collator, features, args.batch, args.steps)
        r = results[name]
        print(
            f"{name:>7}: {r['tokens_per_s']:8.0f} real tokens/s, peak {r['peak_gib']:.1f} GiB, "
            f"{trainable:,} trainable of {total:,} parameters"
        )
        del model
        torch.cuda.empty_cache()
    ratio = results["packed"]["tokens_per_s"] / results["padded"]["tokens_per_s"]
    print(f"ratio packed/padded throughput x{ratio:.2f}")


if __name__ == "__main__":
    main()
