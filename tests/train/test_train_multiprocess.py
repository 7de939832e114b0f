"""Two training processes (gloo, the CPU stand-in for NCCL) under `accelerate launch`, with a
per-pass token budget that splits the ranks' micro-batches into different numbers of forward
passes: both ranks issue the same gradient all-reduces, end with the same adapter, and that
adapter is what one process training the same effective batch gets.

On a machine without CUDA, accelerate 1.15's `--cpu` starts ONE process whatever
`--num_processes` says; `--multi_gpu --num_processes 2` starts two through torchrun, and
``train.process_state`` joins them into one gloo group on the CPU. Each process runs
`ddp_worker.py` (a real ``train.run``, observed: see its docstring)."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_task import write_features

from pria_ml import train
from pria_ml.data.storage import open_storage
from pria_ml.model import tiny as tinymodel

TWO_PROCESSES = datetime.date(2026, 11, 2)
ONE_PROCESS = datetime.date(2026, 11, 4)  # dates are unique across the training tests
MICRO_BATCHES_PER_RANK = 4  # 2 steps x (4 accumulation steps / 2 processes)
# Examples of 52-200 tokens, 3 per micro-batch, one packed row of <= 256 tokens per pass:
# a micro-batch runs in 1, 2 or 3 passes depending on its examples.
OPTIONS = {
    "max_steps": 2,
    "per_device_train_batch_size": 3,
    "gradient_accumulation_steps": 4,
    "max_length": 256,
    "max_tokens_per_micro_batch": 256,
    "lora_dropout": 0.0,
    "logging_steps": 1,
}


def launch(worker_args: list[str], env: dict[str, str], timeout: float) -> None:
    """Run the 2-process launch in its own session, killed whole when it outlives
    ``timeout`` (a hung gloo group would otherwise wait out its 30-minute default)."""
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(Path(__file__).with_name("ddp_worker.py")), *worker_args,
    ]  # fmt: skip
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the 2-process run hung (collectives out of step?):\n{output[-4000:]}")
    assert process.returncode == 0, output[-4000:]


@pytest.mark.slow
def test_unevenly_split_ranks_stay_in_step_and_train_what_one_process_trains(
    train_settings, train_db, tmp_path
) -> None:
    tinymodel.base_model_path(train_settings)  # built once, before two processes need it
    storage = open_storage(train_settings)
    for date in (TWO_PROCESSES, ONE_PROCESS):
        write_features(storage, date, train=36, val=6, filler=30)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRIA_", "ACCELERATE_"))}
    env.update(
        PRIA_HOME=str(train_settings.home),
        PRIA_DATABASE_URL=train_db.url,
        PRIA_STORAGE_URL=train_settings.storage_url,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join(sys.path),
    )
    launch([str(tmp_path), TWO_PROCESSES.isoformat(), json.dumps(OPTIONS)], env, timeout=420)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    adapters = [load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1)]

    # The precondition this test exists for: the ranks split micro-batches differently, in
    # training and in evaluation.
    train_passes = [r["train_passes"] for r in ranks]
    eval_passes = [r["eval_passes"] for r in ranks]
    assert [len(p) for p in train_passes] == [MICRO_BATCHES_PER_RANK] * 2
    assert train_passes[0] != train_passes[1], train_passes
    assert eval_passes[0] != eval_passes[1], eval_passes
    # The same all-reduces on every rank (one round per optimizer step), whatever its passes.
    assert ranks[0]["allreduces"] == ranks[1]["allreduces"] > 0, ranks
    for r in ranks:
        assert r["ddp"] == {"find_unused_parameters": False, "broadcast_buffers": False}
        assert r["world"] == 2 and r["steps"] == OPTIONS["max_steps"]
    assert [r["registered"] for r in ranks] == [True, False]
    assert ranks[0]["eval_loss"] == ranks[1]["eval_loss"]  # one gathered mean
    for name, weight in adapters[0].items():
        assert torch.equal(weight, adapters[1][name]), name

    # One process, the same 12 examples per step (3 x 4 instead of 2 x 3 x 2).
    config = train.PROFILES["demo"].with_overrides(**OPTIONS)
    alone = train.run(train_settings, ONE_PROCESS, config)
    assert alone.metrics["loss"]["eval"] == pytest.approx(ranks[0]["eval_loss"], rel=2e-3)
    trained = dict(alone.model.named_parameters())
    for name, weight in adapters[0].items():
        torch.testing.assert_close(weight, trained[name].detach(), rtol=0, atol=2e-4)
