"""The fault the tests in this folder cause: SIGKILL of the embedded postmaster, as the OOM
killer would do it; and what they need around it. (Helpers live here, not in conftest.py, so
that `from faultkit import ...` is unambiguous whichever test folders a run collects.)"""

from __future__ import annotations

import datetime
import hashlib
import os
import signal
import time
import uuid
from pathlib import Path

import psutil
import pytest

from pria_ml.db import Database
from pria_ml.registry import promote, record_gate_decision, register_candidate
from pria_ml.settings import Settings

# How long a test's processes keep reconnecting: far above a restart, far below the timeouts.
RETRY_DEADLINE_S = 30.0


def fault_settings(home: Path, **extra) -> Settings:
    return Settings(home=home, db_retry_deadline_s=RETRY_DEADLINE_S, **extra)


def two_prods_and_candidates(db: Database, count: int) -> list[uuid.UUID]:
    """``count`` gated candidates, the first two promoted in turn (so a previous prod exists)."""
    ids = []
    for n in range(count):
        uri = f"file:///adapters/fault-{n}-{uuid.uuid4().hex[:8]}.safetensors"
        adapter_id = register_candidate(
            db,
            dataset_date=datetime.date(2026, 11, n + 1),
            artifact_uri=uri,
            artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
            base_model="tiny-mistral",
            metrics={},
        )
        record_gate_decision(db, adapter_id, passed=True, reason="fault test", metrics={})
        ids.append(adapter_id)
    promote(db, adapter_id=ids[0])
    promote(db, adapter_id=ids[1])
    return ids


def postmaster_pid(home: Path) -> int:
    return int((home / "pg" / "postmaster.pid").read_text().split()[0])


def kill_postmaster(home: Path) -> float:
    """SIGKILL the embedded postmaster under ``home``; when it happened (monotonic)."""
    pid = postmaster_pid(home)
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    deadline = killed + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    return killed


def wait_until_restarted(home: Path, old_pid: int, timeout_s: float = 60) -> float:
    """Block until a new postmaster under ``home`` says ready; when it did (monotonic)."""
    pid_file = home / "pg" / "postmaster.pid"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            lines = pid_file.read_text().splitlines()
        except FileNotFoundError:
            lines = []
        if len(lines) >= 8 and int(lines[0]) != old_pid and lines[7].strip() == "ready":
            return time.monotonic()
        time.sleep(0.02)
    pytest.fail(f"the embedded server under {home} was not restarted within {timeout_s} s")
