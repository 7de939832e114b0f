"""SIGKILL the embedded postmaster while `pria-ml extract` streams the source, alone or as the
extract stage of `pria-ml nightly`: the command finishes after the restart or fails with
DatabaseUnavailable (exit 3, one line), no partial dataset is ever visible (a dataset exists
when its manifest does, and then it is whole), and running it again succeeds with every source
row in the dataset."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from faultkit import RETRY_DEADLINE_S, fault_settings, kill_postmaster, postmaster_pid

from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.world.seed import seed

DAY = datetime.date(2026, 11, 24)
ROWS = 1_000


EXTRACT = ("extract", "--date", str(DAY))
NIGHTLY_EXTRACT = ("nightly", "--date", str(DAY), "--until", "extract")


def _run(home: Path, command: tuple[str, ...]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env |= {
        "PRIA_HOME": str(home),
        "PRIA_PII_KEY": "fault-test-key",
        "PRIA_DB_RETRY_DEADLINE_S": str(RETRY_DEADLINE_S),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "pria_ml", *command],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_stream(url: str, process: subprocess.Popen, timeout_s: float = 120) -> None:
    """Block until the extract's server-side cursor is open on the source."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            (streaming,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE query ILIKE '%%pria_extract%%' AND pid <> pg_backend_pid()"
            ).fetchone()
            if streaming:
                return
            assert process.poll() is None, process.communicate()
            time.sleep(0.01)
    raise AssertionError("extract never opened its cursor")


def _dataset(storage) -> dict:
    """The dataset of DAY as a reader sees it: nothing without a manifest, else checked whole."""
    key = f"datasets/{DAY}/manifest.json"
    if not storage.exists(key):
        return {}
    manifest = json.loads(storage.read_bytes(key))
    raw = storage.read_parquet(f"datasets/{DAY}/raw.parquet")
    assert raw.num_rows == manifest["rows"]["raw"], "a manifest vouching for a partial file"
    return manifest


@pytest.mark.parametrize("command", [EXTRACT, NIGHTLY_EXTRACT], ids=["extract", "nightly"])
def test_killed_postmaster_during_extract_streaming(
    fault_home: Path, command: tuple[str, ...]
) -> None:
    settings = fault_settings(fault_home, pii_key="fault-test-key")
    seed(settings, rows=ROWS, end_date=DAY, days=60)
    source = database(settings, "source")
    storage = open_storage(settings)

    process = _run(fault_home, command)
    old_pid = postmaster_pid(fault_home)
    _wait_for_stream(source.url, process)
    killed = kill_postmaster(fault_home)
    _, stderr = process.communicate(timeout=300)
    ended = time.monotonic()
    assert postmaster_pid(fault_home) != old_pid, "the extract's retry restarted the server"
    assert "Traceback" not in stderr
    if process.returncode == 0:
        outcome = "finished after the restart"
        assert _dataset(storage)["rows"]["raw"] > 0
    else:
        outcome = "failed with DatabaseUnavailable"
        assert process.returncode == 3, stderr
        assert "PRIA_SOURCE_DATABASE_URL" in stderr
        assert _dataset(storage) == {}

    rerun = _run(fault_home, command)
    assert rerun.communicate(timeout=300) and rerun.returncode == 0
    # The seeded rows are all valid and inside the windows: every one is in the dataset, once.
    assert _dataset(storage)["rows"]["raw"] == ROWS
    print(f"{command[0]}: extract of {ROWS} rows {outcome}, {ended - killed:.1f} s after the kill")
