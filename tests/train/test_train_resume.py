"""`pria-ml train` as a subprocess: killed mid-run, restarted, it resumes and finishes with the
same adapter as an uninterrupted run, uploads it and registers it. Corrupt checkpoints are a
clear error that leaves storage and registry untouched."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load
from train_task import TEST_OVERRIDES, write_features

from pria_ml import registry, train
from pria_ml.data.contract import adapter_keys
from pria_ml.data.storage import open_storage
from pria_ml.errors import CheckpointError

KILLED_DATE = datetime.date(2026, 11, 23)
CORRUPT_DATE = datetime.date(2026, 11, 22)


def _cli(settings, date: datetime.date) -> list[str]:
    options = [sys.executable, "-m", "pria_ml", "train", "--date", date.isoformat()]
    options += ["--profile", "demo"]
    for name, value in TEST_OVERRIDES.items():
        options += [f"--{name.replace('_', '-')}", str(value)]
    return options


def _env(settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env.update(
        PRIA_HOME=str(settings.home),
        PRIA_DATABASE_URL=settings.database_url.get_secret_value(),
        PRIA_STORAGE_URL=settings.storage_url,
        HF_HUB_OFFLINE="1",
    )
    return env


def _kill_after_checkpoint(command: list[str], env: dict, run_dir: Path, step: int) -> int:
    """Start ``command``, SIGKILL it once checkpoint-``step`` is complete; its return code."""
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marker = run_dir / f"checkpoint-{step}" / "trainer_state.json"
    deadline = time.monotonic() + 300
    while not marker.exists():
        if process.poll() is not None:
            pytest.fail(f"training ended before it could be killed: {process.stderr.read()!r}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("no checkpoint within 300 s")
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    return process.wait()


def test_killed_run_resumes_to_the_same_adapter_and_registers(
    trained, train_settings, train_db
) -> None:
    storage = open_storage(train_settings)
    write_features(storage, KILLED_DATE)
    run_dir = train.run_dir(train_settings, KILLED_DATE)
    command, env = _cli(train_settings, KILLED_DATE), _env(train_settings)
    save_steps = TEST_OVERRIDES["save_steps"]

    assert _kill_after_checkpoint(command, env, run_dir, 2 * save_steps) == -signal.SIGKILL
    weights_key, config_key = adapter_keys(KILLED_DATE)
    assert not storage.exists(weights_key) and not storage.exists(config_key)
    assert not any(a.dataset_date == KILLED_DATE for a in registry.adapters(train_db))
    checkpoints = sorted(p.name for p in run_dir.glob("checkpoint-*"))
    assert f"checkpoint-{2 * save_steps}" in checkpoints

    # Keep a copy of the interrupted run for the corrupt-checkpoint test below.
    shutil.copytree(run_dir, train.run_dir(train_settings, CORRUPT_DATE))

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    printed = " ".join(finished.stdout.split())
    assert "candidate" in printed and "trainable params" in printed

    row = next(a for a in registry.adapters(train_db) if a.dataset_date == KILLED_DATE)
    assert row.status == "candidate"
    assert row.artifact_uri == storage.uri(weights_key)
    assert row.metrics_json["resumed_from_step"] >= 2 * save_steps
    assert row.metrics_json["steps"] == TEST_OVERRIDES["max_steps"]
    assert not run_dir.exists()  # checkpoints are removed once the adapter is registered

    resumed = load(storage.read_bytes(weights_key))
    uninterrupted = load(storage.read_bytes(adapter_keys(trained.plan.date)[0]))
    assert resumed.keys() == uninterrupted.keys()
    for name, tensor in uninterrupted.items():
        torch.testing.assert_close(resumed[name], tensor, atol=2e-4, rtol=1e-3, msg=name)


def test_corrupt_checkpoint_is_a_clear_error_and_touches_nothing(train_settings, train_db) -> None:
    run_dir = train.run_dir(train_settings, CORRUPT_DATE)
    if not run_dir.exists():
        pytest.skip("needs the interrupted run of the resume test")
    storage = open_storage(train_settings)
    # Same examples as KILLED_DATE's split (byte-identical file), so the checkpoints match.
    write_features(storage, CORRUPT_DATE)
    assert train.last_checkpoint(run_dir) is not None
    newest = max(run_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    optimizer = newest / "optimizer.pt"
    intact = optimizer.read_bytes()
    optimizer.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(CheckpointError, match="optimizer.pt|is corrupt"):
        train.last_checkpoint(run_dir)
    optimizer.write_bytes(intact)
    weights = newest / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])

    config = train.PROFILES["demo"].with_overrides(**TEST_OVERRIDES)
    with pytest.raises(CheckpointError, match=f"checkpoint {newest} is corrupt"):
        train.run(train_settings, CORRUPT_DATE, config)
    assert not storage.list("adapters/") or all(
        CORRUPT_DATE.isoformat() not in key for key in storage.list("adapters/")
    )
    assert not any(a.dataset_date == CORRUPT_DATE for a in registry.adapters(train_db))

    # A checkpoint cut off mid-save (no trainer_state.json, the last file written) is skipped.
    (newest / "trainer_state.json").unlink()
    assert train.last_checkpoint(run_dir).name != newest.name

    # Checkpoints of other options are not resumed.
    other = config.with_overrides(learning_rate=1e-4)
    with pytest.raises(CheckpointError, match="other options or data"):
        train.run(train_settings, CORRUPT_DATE, other)
    shutil.rmtree(run_dir)
