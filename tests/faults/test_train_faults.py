"""SIGKILL the embedded postmaster while `pria-ml train` is training: the run finishes after
the restart (its registry calls reconnect and start the server again) with its candidate
registered, or fails with DatabaseUnavailable and succeeds when run again.

The `nightly` command does not exist yet; this is the long-running command of the pipeline
that talks to the registry before and after hours of work without it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faultkit import RETRY_DEADLINE_S, fault_settings, kill_postmaster, postmaster_pid

from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.registry import adapters, history, replay

# The training tests' learnable task and its feature files (tests/train/train_task.py).
_spec = importlib.util.spec_from_file_location(
    "train_task", Path(__file__).parents[1] / "train" / "train_task.py"
)
train_task = sys.modules.setdefault("train_task", importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(train_task)

# As few steps as make a checkpoint to kill after and a few more to train after the kill.
OPTIONS = {
    **train_task.TEST_OVERRIDES,
    **{"max_steps": 4, "save_steps": 2, "logging_steps": 2, "per_device_train_batch_size": 4},
}


def _train(home: Path, base_model: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env |= {
        "PRIA_HOME": str(home),
        "PRIA_BASE_MODEL": str(base_model),
        "PRIA_DB_RETRY_DEADLINE_S": str(RETRY_DEADLINE_S),
    }
    command = [sys.executable, "-m", "pria_ml", "train", "--date", str(train_task.DATE)]
    command += ["--profile", "demo"]
    for name, value in OPTIONS.items():
        command += [f"--{name.replace('_', '-')}", str(value)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_killed_postmaster_during_training(fault_home: Path, tiny_model_dir: Path) -> None:
    # The tiny base model of the session's home, built once for every training test.
    base_model = tiny_model_dir
    settings = fault_settings(fault_home)
    train_task.write_features(open_storage(settings), train=24, val=8)
    db = database(settings)
    old_pid = postmaster_pid(fault_home)

    process = _train(fault_home, base_model)
    first_checkpoint = fault_home / "runs" / f"train-{train_task.DATE}" / "checkpoint-2"
    deadline = time.monotonic() + 300
    while not first_checkpoint.exists():
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    killed = kill_postmaster(fault_home)
    _, stderr = process.communicate(timeout=300)
    ended = time.monotonic()
    stderr = stderr.decode()
    assert "Traceback" not in stderr, stderr[-3000:]
    if process.returncode == 0:
        outcome = "finished after the restart"
    else:
        assert process.returncode == 3 and "DatabaseUnavailable" not in stderr, stderr[-3000:]
        assert "PRIA_DATABASE_URL" in stderr
        outcome = "failed with DatabaseUnavailable, then succeeded when run again"
        rerun = _train(fault_home, base_model)
        assert rerun.wait(timeout=300) == 0, rerun.communicate()[1].decode()[-3000:]
    assert postmaster_pid(fault_home) != old_pid, "the run's registry calls restarted the server"
    (candidate,) = [a for a in adapters(db) if a.dataset_date == train_task.DATE]
    assert candidate.status == "candidate"
    assert replay(history(db)) == {a.adapter_id: a.status for a in adapters(db)}
    print(f"train {outcome}; {ended - killed:.1f} s from the kill to the end of the run")
