"""QLoRA training on one CUDA GPU, three input layouts interleaved in one run: tokens/s, model
FLOPs utilisation, peak allocated and reserved memory, and the worst-case micro-batch.

    .venv/bin/python perf/gpu_train_bench.py [--model-dir DIR] [--steps 8] [--batch 8]

Needs a CUDA GPU (exits with a message otherwise; never part of the test suite) and ~15 GB of
disk for a random-init Mistral-7B checkpoint: the weights are random (nothing is downloaded),
saved and loaded back through ``pria_ml.model.loading.load_base_model``, the production path (4-bit
NF4, double quantisation, bf16 compute), then wrapped by ``train.add_adapter`` with the spec's
defaults (rank 64, all linear layers, gradient checkpointing without re-entrancy) and trained
with the spec's optimizer (paged 8-bit AdamW) through ``train``'s trainer step (token-capped
passes, completion-only logits).

Layouts, each on its own copy of the model (three 4-bit copies fit a 24 GB GPU: ~5.5 GiB
each), stepped in turn on the same micro-batches so that clock boosts and thermals hit them
alike:

- ``padded``: one example per row, padded, 2-D padding mask (the baseline);
- ``masked``: packed rows with the 4-D block-diagonal mask (the CPU path; dense attention);
- ``flattened``: padding-free rows with restarted position_ids (needs flash-attn installed).

Synthetic examples of 200-600 tokens, the last fifth labelled. MFU = achieved model FLOPs
(``cost.flops_per_token`` x real tokens/s) over the GPU's dense bf16 peak (``--peak-tflops``,
default the configured tier's). Peak memory per layout is its model's static memory plus the
largest step's extra allocation. Last, the worst micro-batch of the spec (8 examples of 2,048
tokens) runs once per layout, its peak reported next to ``memory.estimate``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path


def build_random_mistral_7b(directory: Path) -> Path:
    """Random-init Mistral-7B-v0.3 shape (vocabulary 32,768), saved in bf16."""
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    if (directory / "config.json").is_file():
        return directory
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = MistralForCausalLM(MistralConfig(vocab_size=32768))
    torch.set_default_dtype(torch.float32)
    model.save_pretrained(directory)
    del model
    torch.cuda.empty_cache()
    return directory


def synthetic_features(n: int, vocab: int, low: int, high: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    features = []
    for _ in range(n):
        length = rng.randint(low, high)
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        cut = length - length // 5
        features.append({"input_ids": ids, "labels": [-100] * cut + ids[cut:]})
    return features


def prepare(directory: Path, layout: str, config):
    """Model and one-step function (the trainer's passes and loss) for one layout."""
    import bitsandbytes as bnb
    import torch

    from pria_ml import train
    from pria_ml.model import loading
    from pria_ml.training import packing

    attention = "flash_attention_2" if layout == "flattened" else "sdpa"
    model = train.add_adapter(loading.load_base_model(str(directory), attention), config)
    model.train()
    optimizer = bnb.optim.PagedAdamW8bit(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate
    )
    collator = packing.PackingCollator(
        0,
        config.max_length,
        packing=layout != "padded",
        max_tokens=config.max_tokens_per_micro_batch,
        flatten=layout == "flattened",
    )

    def step(features) -> None:
        batch = collator(features)
        passes = batch.get("chunks", [batch])
        items = sum(int((p["labels"][..., 1:] != -100).sum()) for p in passes)
        for part in passes:
            inputs = {k: v.cuda() for k, v in part.items()}
            if layout == "padded":  # the baseline's 2-D padding mask
                inputs["attention_mask"] = (inputs["input_ids"] != 0).long()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss, _ = train.completion_loss(model, inputs, items)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return model, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse a saved random 7B")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="examples per micro-batch")
    parser.add_argument("--peak-tflops", type=float, default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_train_bench: no CUDA GPU here; run it on a GPU machine (docs/training.md)")

    from transformers import AutoConfig
    from transformers.utils import is_flash_attn_2_available

    from pria_ml import train
    from pria_ml.settings import Settings
    from pria_ml.training import cost, memory

    tier = Settings().tier
    peak = args.peak_tflops or tier.peak_bf16_tflops
    directory = build_random_mistral_7b(args.model_dir or Path(tempfile.mkdtemp()) / "mistral-7b")
    config = train.PROFILES["spec"]
    shape = memory.ModelShape.from_config(AutoConfig.from_pretrained(directory))
    flops = cost.flops_per_token(
        shape, shape.lora_parameters(config.lora_r), gradient_checkpointing=True
    )
    layouts = ["padded", "masked"] + (["flattened"] if is_flash_attn_2_available() else [])
    features = synthetic_features((args.steps + 1) * args.batch, 32768, 200, 600)
    print(
        f"{torch.cuda.get_device_name(0)}, random-init Mistral-7B, micro-batch {args.batch}, "
        f"{args.steps} timed steps per layout, peak {peak:g} TFLOPS, {flops / 1e9:.1f} GFLOP/token"
    )
    # All layouts stay loaded and are stepped in turn on the same micro-batch (interleaved),
    # so clock boosts and thermals hit them alike; each model's static memory is measured as
    # it loads, each step's extra peak above what was allocated before it.
    runs, static = {}, {}
    for layout in layouts:
        before = torch.cuda.memory_allocated()
        runs[layout] = prepare(directory, layout, config)
        static[layout] = (torch.cuda.memory_allocated() - before) / 2**30
    totals = {layout: {"seconds": 0.0, "tokens": 0, "extra_gib": 0.0} for layout in layouts}

    def timed(layout: str, chunk: list[dict]) -> tuple[float, float]:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        runs[layout][1](chunk)
        torch.cuda.synchronize()
        return time.perf_counter() - started, (torch.cuda.max_memory_allocated() - before) / 2**30

    for i in range(args.steps + 1):
        chunk = features[i * args.batch : (i + 1) * args.batch]
        for layout in layouts:
            seconds, extra = timed(layout, chunk)
            if i:  # the first step is a warm-up (optimizer states, kernels)
                t = totals[layout]
                t["seconds"] += seconds
                t["tokens"] += sum(len(f["input_ids"]) for f in chunk)
                t["extra_gib"] = max(t["extra_gib"], extra)
    worst = synthetic_features(args.batch, 32768, config.max_length, config.max_length, seed=1)
    results = {}
    for layout in layouts:
        rate = totals[layout]["tokens"] / totals[layout]["seconds"]
        _, worst_extra = timed(layout, worst)
        results[layout] = r = {
            "tokens_per_s": rate,
            "mfu": rate * flops / (peak * 1e12),
            "peak_gib": static[layout] + totals[layout]["extra_gib"],
            "worst_gib": static[layout] + worst_extra,
        }
        print(
            f"{layout:>9}: {rate:7.0f} real tokens/s, MFU {100 * r['mfu']:4.1f} %, peak "
            f"{r['peak_gib']:.2f} GiB allocated; worst micro-batch ({args.batch} x "
            f"{config.max_length} tokens) {r['worst_gib']:.2f} GiB"
        )
    print(
        f"reserved by the caching allocator, all layouts: "
        f"{torch.cuda.max_memory_reserved() / 2**30:.2f} GiB"
    )
    estimate = memory.estimate(
        shape,
        lora_r=config.lora_r,
        lora_targets=config.lora_target_modules,
        micro_batch_tokens=config.max_tokens_per_micro_batch,
        labelled_share=0.2,
        gradient_checkpointing=True,
        optimizer="paged_adamw_8bit",
    )
    print(f"memory.estimate for the same run: {estimate.total:.2f} GiB")
    base = results["padded"]["tokens_per_s"]
    for layout in layouts[1:]:
        print(f"ratio {layout}/padded throughput x{results[layout]['tokens_per_s'] / base:.2f}")


if __name__ == "__main__":
    main()
