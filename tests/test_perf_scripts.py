"""Benchmarks that cannot rot: every script under perf/ runs at its tiny size and exits 0.

The convention (perf/README.md): each script accepts ``--tiny``, the same code path on an input
that takes seconds on two CPU cores, offline. A script that cannot run on a CPU at all is listed
in OPT_OUT with the reason, and only its ``--help`` runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PERF = ROOT / "perf"
SCRIPTS = sorted(path.name for path in PERF.glob("*.py"))
OPT_OUT = {
    "gpu_train_bench.py": "needs a CUDA GPU and a random-init Mistral-7B (~15 GB) on disk",
    "gpu_checks.py": "the GPU check (perf/gpu_check.sh): needs a CUDA GPU and a random-init 7B",
    "gpu_attention_check.py": "checks every attention path compiled on a CUDA GPU",
}


def run(script: str, *options: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, str(PERF / script), *options],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_every_opt_out_names_an_existing_script():
    assert set(OPT_OUT) <= set(SCRIPTS), "remove stale OPT_OUT entries"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_perf_script_runs_at_its_tiny_size(script):
    if script in OPT_OUT:
        done = run(script, "--help", timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        pytest.skip(f"{script} runs only --help here: {OPT_OUT[script]}")
    done = run(script, "--tiny", timeout=600)
    assert done.returncode == 0, (
        f"perf/{script} --tiny exited {done.returncode} (perf/README.md: every benchmark "
        f"accepts --tiny and runs in seconds)\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    assert done.stdout.strip(), f"perf/{script} --tiny printed no figures"
