"""The GPU checks of docs/training.md in one run, results to a JSON the docs table is made from.

    perf/gpu_check.sh [WHEELS_DIR] [OUT_JSON]                # the one command (offline install)
    PYTHONPATH=. python perf/gpu_checks.py --json OUT [--model-dir DIR] [--steps 4]
    PYTHONPATH=. python perf/gpu_checks.py --render OUT      # the markdown table for the docs

Needs a CUDA GPU (exits with a message otherwise; never part of the test suite). A
random-init Mistral-7B (v0.3 shape; nothing downloaded) is saved once and loaded through
``loading.load_base_model`` (4-bit NF4, bf16 compute) and ``train.add_adapter`` with the spec
profile (rank 32 on every projection, gradient checkpointing, paged 8-bit AdamW). For every
attention layout that runs on this machine:

- peak memory of training steps on the spec's worst micro-batch (8 examples of 2,048 tokens,
  split by the 2,048-token per-pass budget): max allocated, max reserved, and the device's
  used memory as the driver sees it (NVML), against ``memory.estimate`` (total and band) and
  the spec's 8 GB;
- the dtype of every decoder layer's input (the residual stream: bf16 expected throughout);
- cross-example isolation: logits of examples packed behind each other vs each alone;
- tokens/s and GPU utilisation over timed steps on typical micro-batches (200-600 tokens).

Then the split-batch evaluation: ``Trainer.evaluate`` through the recipe's trainer on a val
set where some batches split into passes and some do not (the crash this checks for is a
device mismatch when the evaluation loop concatenates their losses), against the unsplit loss.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

GIB = 2**30
SPEC_BUDGET_BYTES = 8e9  # spec section 4: "fits A10G 24 GB GPU in < 8 GB"


def layouts() -> list[tuple[str, str, bool, bool]]:
    """``(name, attn_implementation, packing, flatten)`` of every layout that runs here."""
    from transformers.utils import is_flash_attn_2_available

    found = [
        ("padded, sdpa", "sdpa", False, False),
        ("packed 4-D mask, sdpa", "sdpa", True, False),
        ("padding-free, sdpa", "sdpa", True, True),
        ("packed 4-D mask, eager", "eager", True, False),
    ]
    if is_flash_attn_2_available():
        found.append(("padding-free, flash_attention_2", "flash_attention_2", True, True))
    try:
        from torch.nn.attention import flex_attention  # noqa: F401

        found.append(("padding-free, flex_attention", "flex_attention", True, True))
    except ImportError:
        pass
    return found


def features(n: int, low: int, high: int, seed: int, vocab: int = 32768) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(low, high)
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        cut = length - length // 5
        out.append({"input_ids": ids, "labels": [-100] * cut + ids[cut:]})
    return out


class Utilisation:
    """GPU utilisation sampled by NVML every 100 ms while a block runs (None without NVML)."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:
            self.nvml = self.handle = None
        self.samples: list[int] = []

    def used_bytes(self) -> int | None:
        if self.handle is None:
            return None
        return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def __enter__(self) -> Utilisation:
        self.samples, self.stop = [], threading.Event()
        if self.handle is not None:
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.1):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __exit__(self, *exc) -> None:
        self.stop.set()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) if self.samples else None


def check_layout(directory: Path, layout: tuple, config, shape, steps: int, util) -> dict:
    import bitsandbytes as bnb
    import torch

    from pria_ml import train
    from pria_ml.model import loading
    from pria_ml.training import activations, cost, memory, packing

    name, attention, pack, flatten = layout
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = train.add_adapter(loading.load_base_model(str(directory), attention), config)
    model.train()
    probe = {"input_ids": torch.randint(3, 32768, (1, 64), device="cuda"), "use_cache": False}
    dtypes = activations.layer_input_dtypes(model, probe, autocast_bf16=True)
    optimizer = bnb.optim.PagedAdamW8bit(
        [p for p in model.parameters() if p.requires_grad], lr=config.learning_rate
    )
    collator = packing.PackingCollator(
        0, config.max_length, pack, max_tokens=config.max_tokens_per_micro_batch, flatten=flatten
    )

    def step(chunk: list[dict]) -> None:
        batch = collator(chunk)
        passes = batch.get("chunks", [batch])
        items = sum(int((p["labels"][..., 1:] != -100).sum()) for p in passes)
        for part in passes:
            inputs = {k: v.cuda() for k, v in part.items()}
            if not pack:
                inputs["attention_mask"] = (inputs["input_ids"] != 0).long()
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss, _ = train.completion_loss(model, inputs, items)
            loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    worst = features(config.per_device_train_batch_size, 2048, 2048, seed=1)
    step(worst)  # optimizer states allocated, kernels chosen
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    step(worst)
    torch.cuda.synchronize()
    peak = {
        "max_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
        "max_reserved_gib": torch.cuda.max_memory_reserved() / GIB,
        "device_used_gib": (util.used_bytes() or 0) / GIB or None,
    }
    typical = features(steps * config.per_device_train_batch_size, 200, 600, seed=2)
    tokens = sum(len(f["input_ids"]) for f in typical)
    with util:
        torch.cuda.synchronize()
        started = time.perf_counter()
        for i in range(steps):
            step(typical[i * 8 : (i + 1) * 8])
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    rate = tokens / seconds
    flops = cost.flops_per_token(
        shape, shape.lora_parameters(config.lora_r, config.lora_target_modules),
        gradient_checkpointing=True,
    )  # fmt: skip
    estimate = memory.estimate(
        shape, lora_r=config.lora_r, lora_targets=config.lora_target_modules,
        micro_batch_tokens=config.max_tokens_per_micro_batch, labelled_share=0.2,
        gradient_checkpointing=True, optimizer="paged_adamw_8bit",
        lora_dropout=config.lora_dropout,
    )  # fmt: skip
    result = {
        "layout": name,
        "attention": attention,
        **{k: round(v, 3) if v is not None else None for k, v in peak.items()},
        "estimate_gib": round(estimate.total, 3),
        "estimate_band_gib": [round(estimate.low, 3), round(estimate.high, 3)],
        "within_band": estimate.low <= peak["max_reserved_gib"] <= estimate.high,
        "under_spec_8gb": peak["max_reserved_gib"] * GIB < SPEC_BUDGET_BYTES,
        "layer_input_dtypes": sorted(set(dtypes)),
        "isolation_max_logit_diff": isolation(model, collator, pack, flatten),
        "tokens_per_s": round(rate, 1),
        "mfu": round(rate * flops / (peak_tflops() * 1e12), 4),
        "utilisation_pct": util.mean,
    }  # fmt: skip
    print(json.dumps(result), flush=True)
    return result


def peak_tflops() -> float:
    from pria_ml.settings import Settings

    return float(Settings().tier.peak_bf16_tflops or 1.0)


def isolation(model, collator, pack: bool, flatten: bool) -> float | None:
    """Largest |logit difference| of three examples packed in one row vs each alone."""
    import torch

    if not pack:
        return None
    three = features(3, 40, 90, seed=3)
    batch = collator(three)
    batch = batch["chunks"][0] if "chunks" in batch else batch
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        inputs = {k: v.cuda() for k, v in batch.items() if k != "labels"}
        if "attention_mask" in inputs:
            from pria_ml import train

            inputs["attention_mask"] = train.additive_mask(model, inputs["attention_mask"])
        packed = model(**inputs, use_cache=False).logits[0].float()
        row, worst = batch["input_ids"][0].tolist(), 0.0
        for f in three:
            ids, n = f["input_ids"], len(f["input_ids"])
            start = next(i for i in range(len(row)) if row[i : i + n] == ids)
            alone = model(input_ids=torch.tensor([ids], device="cuda"), use_cache=False)
            diff = (packed[start : start + n] - alone.logits[0].float()).abs().max()
            worst = max(worst, float(diff))
    model.train()
    return round(worst, 4)


def split_batch_evaluation(directory: Path, config) -> dict:
    """``Trainer.evaluate`` through the recipe's trainer with batches that split into passes
    and batches that do not, against the same set evaluated unsplit."""
    import torch
    from transformers import TrainingArguments

    from pria_ml import train
    from pria_ml.model import loading
    from pria_ml.training import packing

    model = train.add_adapter(loading.load_base_model(str(directory)), config)
    # 1,500 + 1,200 + 900 tokens split into passes at 2,048; 100 + 200 + 300 do not.
    val = [features(1, n, n, seed=4 + n)[0] for n in (1500, 1200, 900, 100, 200, 300)]
    losses = {}
    for budget in (2048, 16384):  # 2,048: some batches split; 16,384: none do
        args = TrainingArguments(
            output_dir=tempfile.mkdtemp(), per_device_eval_batch_size=3, bf16=True,
            report_to=[], remove_unused_columns=False, prediction_loss_only=True,
        )  # fmt: skip
        collator = packing.PackingCollator(0, 2048, True, max_tokens=budget)
        trainer = train._trainer_class()(model=model, args=args, data_collator=collator)
        losses[budget] = trainer.evaluate(eval_dataset=val)["eval_loss"]
    del model
    torch.cuda.empty_cache()
    return {
        "split_loss": losses[2048],
        "unsplit_loss": losses[16384],
        "relative_difference": abs(losses[2048] - losses[16384]) / losses[16384],
    }


def run(args) -> dict:
    import torch
    from transformers import AutoConfig

    sys.path.insert(0, str(Path(__file__).parent))
    from gpu_train_bench import build_random_mistral_7b

    from pria_ml import train
    from pria_ml.training import memory

    directory = build_random_mistral_7b(args.model_dir or Path(tempfile.mkdtemp()) / "mistral")
    config = train.PROFILES["spec"]
    shape = memory.ModelShape.from_config(AutoConfig.from_pretrained(directory))
    util = Utilisation()
    results = {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "adapter_parameters": shape.lora_parameters(config.lora_r, config.lora_target_modules),
        "layouts": [],
    }
    for layout in layouts():
        torch.cuda.empty_cache()
        try:
            results["layouts"].append(
                check_layout(directory, layout, config, shape, args.steps, util)
            )
        except Exception as exc:  # one layout failing must not hide the others' figures
            results["layouts"].append(
                {"layout": layout[0], "error": f"{type(exc).__name__}: {exc}"}
            )
            print(f"{layout[0]}: {exc}", flush=True)
    try:
        results["split_batch_evaluation"] = split_batch_evaluation(directory, config)
    except Exception as exc:
        results["split_batch_evaluation"] = {"error": f"{type(exc).__name__}: {exc}"}
    return results


def render(results: dict) -> str:
    """The docs table (docs/training.md, "Measured on a GPU") from a results JSON."""
    head = (
        f"{results['device']}, torch {results['torch']} (CUDA {results['cuda']}), spec profile, "
        f"{results['adapter_parameters']:,} adapter parameters\n\n"
        "| layout | max allocated | max reserved | device used | estimate (band) | < 8 GB "
        "| layer inputs | isolation | tokens/s | MFU | GPU util |\n" + "|---" * 11 + "|\n"
    )
    rows = []
    for r in results["layouts"]:
        if "error" in r:
            rows.append(f"| {r['layout']} | {r['error']} |" + " |" * 9)
            continue
        low, high = r["estimate_band_gib"]
        rows.append(
            f"| {r['layout']} | {r['max_allocated_gib']:.2f} GiB | {r['max_reserved_gib']:.2f} GiB"
            f" | {r['device_used_gib'] or '-'} | {r['estimate_gib']:.2f} ({low:.2f}-{high:.2f})"
            f" | {'yes' if r['under_spec_8gb'] else 'no'} | {', '.join(r['layer_input_dtypes'])}"
            f" | {'-' if r['isolation_max_logit_diff'] is None else r['isolation_max_logit_diff']}"
            f" | {r['tokens_per_s']:,.0f} | {100 * r['mfu']:.1f} %"
            f" | {r['utilisation_pct'] or '-'} |"
        )
    split = results.get("split_batch_evaluation", {})
    if "error" in split or not split:
        outcome = split.get("error", "not run")
    else:
        outcome = f"split {split['split_loss']:.4f} vs unsplit {split['unsplit_loss']:.4f}"
    tail = f"\n\nSplit-batch evaluation: {outcome}\n"
    return head + "\n".join(rows) + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--render", type=Path, help="print the docs table of a results JSON")
    parser.add_argument("--model-dir", type=Path, default=None, help="reuse a saved random 7B")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per layout")
    args = parser.parse_args()
    if args.render:
        print(render(json.loads(args.render.read_text())))
        return
    import torch

    if not torch.cuda.is_available():
        sys.exit("gpu_checks: no CUDA GPU here; run perf/gpu_check.sh on a GPU machine")
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
