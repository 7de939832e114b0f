"""The attention paths on one CUDA GPU: which one training picks, and for each that runs here,
that packed examples do not attend to each other, forward and backward.

    .venv/bin/python perf/gpu_attention_check.py

Needs a CUDA GPU (exits with a message otherwise; never part of the test suite). Builds the
tiny base (random init, nothing downloaded), loads it through the production path (4-bit NF4,
bf16 compute) per attention implementation, adds a non-zero LoRA adapter, and compares each
example's logits packed behind others with its logits alone, as tests/train/ does on a CPU:
FlexAttention here runs torch's compiled kernel, with the backward pass the CPU lacks. Prints
the GPU, the driver (torch 2.13 from the index is built for CUDA 13: driver 580 or newer) and
one line per path; exits 1 when a path leaks or a gradient is not finite.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

NOISE = 5e-2  # bf16 on a GPU


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU: nothing to check here (the CPU paths are in the test suite)")
        return 0
    from transformers.utils import is_flash_attn_2_available

    from pria_ml import train
    from pria_ml.model import chat, loading
    from pria_ml.model import tiny as tinymodel
    from pria_ml.settings import Settings
    from pria_ml.training import packing

    driver = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    print(f"gpu: {driver or torch.cuda.get_device_name()} | torch {torch.__version__}, "
          f"CUDA {torch.version.cuda}")  # fmt: skip
    print(f"training picks: {train.attention_path()}")
    failed = False
    with tempfile.TemporaryDirectory() as home:
        directory = str(tinymodel.ensure(Settings(home=Path(home), tiny_pretrain_steps=0)))
        tokenizer = loading.load_tokenizer(directory)
        texts = [
            ("Categorise: Uber 12.40 EUR", "set_category transport"),
            ("Categorise: Hilton 210.00 EUR team trip", "set_category lodging"),
            ("Categorise: Dropbox 11.99 EUR", "set_category software"),
        ]
        examples = [
            chat.tokenize_example(tokenizer, [{"role": "user", "content": q}], a) for q, a in texts
        ]
        features = [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]
        paths = ["sdpa", "flex_attention"] + (
            ["flash_attention_2"] if is_flash_attn_2_available() else []
        )
        for attention in paths:
            config = train.PROFILES["demo"].with_overrides(lora_dropout=0.0)
            model = train.add_adapter(loading.load_base_model(directory, attention), config)
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    torch.nn.init.normal_(parameter, std=0.02)
            model.train()
            flatten = attention != "sdpa"
            batch = packing.PackingCollator(0, max_length=1024, flatten=flatten)(features)
            batch = {k: v.cuda() for k, v in batch.items()}
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            packed = model(**inputs, use_cache=False).logits[0]
            loss, _ = train.completion_loss(model, batch)
            loss.backward()
            grads_finite = all(
                torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None
            )
            row = batch["input_ids"][0].tolist()
            worst = 0.0
            with torch.no_grad():
                for example in examples:
                    n = len(example.input_ids)
                    start = next(i for i in range(len(row)) if row[i : i + n] == example.input_ids)
                    alone = model(
                        input_ids=torch.tensor([example.input_ids]).cuda(), use_cache=False
                    ).logits[0]
                    worst = max(worst, float((packed[start : start + n] - alone).abs().max()))
            ok = worst < NOISE and grads_finite
            failed |= not ok
            print(f"{attention:18s} flatten={flatten!s:5s} worst |logit diff| {worst:.2e} "
                  f"grads finite {grads_finite}: {'ok' if ok else 'LEAKS'}")  # fmt: skip
            del model
            torch.cuda.empty_cache()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
