"""Two training processes under `accelerate launch`: both train their share of each step, the
effective batch stays what one process would use, and only the main one registers.

On a machine without CUDA, accelerate 1.15's `--cpu` starts ONE process whatever
`--num_processes` says; `--multi_gpu --num_processes 2` starts two through torchrun, and
``train.process_state`` joins them into one gloo group on the CPU."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import pytest
from train_task import write_features

from pria_ml.data.storage import open_storage
from pria_ml.model import tiny as tinymodel

DATE = datetime.date(2026, 11, 2)


@pytest.mark.slow
def test_two_processes_keep_the_effective_batch_and_register_once(train_settings, train_db):
    tinymodel.base_model_path(train_settings)  # built once, before two processes need it
    write_features(open_storage(train_settings), DATE, train=48, val=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRIA_", "ACCELERATE_"))}
    env.update(
        PRIA_HOME=str(train_settings.home),
        PRIA_DATABASE_URL=train_db.url,
        PRIA_STORAGE_URL=train_settings.storage_url,
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
    )
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "pria_ml", "train", "--date", DATE.isoformat(), "--profile", "demo",
        "--max-steps", "2", "--per-device-train-batch-size", "4",
        "--gradient-accumulation-steps", "4", "--max-length", "256", "--logging-steps", "1",
    ]  # fmt: skip
    done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.count("candidate ") == 1, done.stdout

    with train_db.connect() as conn:
        rows = conn.execute(
            "SELECT metrics_json FROM pria.model_registry WHERE dataset_date = %s", (DATE,)
        ).fetchall()
    assert len(rows) == 1
    metrics = rows[0][0]
    assert metrics["processes"] == 2
    assert metrics["accumulation_per_process"] == 2  # 4 accumulation steps shared by 2
    assert metrics["examples_per_step"] == 16  # what one process with 4 x 4 would train
    assert metrics["steps"] == 2
    assert "train step 1/2 | loss" in done.stderr  # one progress line per logging step
