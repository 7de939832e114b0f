"""A run that does not fit in memory fails with one clear line, uploads nothing and leaves the
registry untouched. The out-of-memory is real: the child process caps its own address space
(RLIMIT_AS) once the libraries are loaded. With little headroom loading the base model fails;
with more, loading succeeds and the first step fails: a micro-batch of 2,048 examples packs
into about 20 rows of 4,096 tokens, whose attention scores alone need several GB."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys

import pytest
from train_task import write_features

from pria_ml import registry
from pria_ml.data.storage import open_storage

DATE = datetime.date(2026, 10, 3)

# Loads the heavy libraries and tiktoken's ranks first (their mappings count against
# RLIMIT_AS), then allows HEADROOM_MB more.
_CHILD = """
import resource, sys
import bitsandbytes, peft, torch, transformers  # noqa: F401
from pria_ml.data.tokens import encoding
encoding()
with open("/proc/self/status") as status:
    vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
limit = (vm_kb << 10) + (int(sys.argv.pop(1)) << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from pria_ml.cli import main
main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    ("phase", "headroom_mb", "date"),
    [("loading", 1536, DATE), ("training", 3072, DATE + datetime.timedelta(days=1))],
)
def test_out_of_memory_is_a_clear_error_and_touches_nothing(
    phase: str, headroom_mb: int, date: datetime.date, train_settings, train_db
) -> None:
    storage = open_storage(train_settings)
    write_features(storage, date, train=4096, val=8)
    from pria_ml.model import tiny as tinymodel

    tinymodel.ensure(train_settings)  # built outside the capped process
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env.update(
        PRIA_HOME=str(train_settings.home),
        PRIA_DATABASE_URL=train_db.url,
        PRIA_STORAGE_URL=train_settings.storage_url,
        COLUMNS="250",
    )
    # fmt: off
    command = [
        sys.executable, "-c", _CHILD, str(headroom_mb),
        "train", "--date", date.isoformat(), "--profile", "demo",
        "--max-steps", "1", "--max-length", "4096", "--per-device-train-batch-size", "2048",
        "--max-tokens-per-micro-batch", "200000",  # one pass: no token cap to save it
    ]
    # fmt: on
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)

    assert result.returncode == 10, result.stderr[-2000:]
    assert "out of memory" in result.stderr
    assert "--per-device-train-batch-size" in result.stderr  # the line says what to change
    assert "Traceback" not in result.stderr
    if phase == "training":
        assert "trainable of" in result.stderr  # the model loaded; the step ran out
    assert not storage.exists(f"adapters/{date.isoformat()}.safetensors")
    assert all(a.dataset_date != date for a in registry.adapters(train_db))
