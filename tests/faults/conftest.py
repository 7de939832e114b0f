"""Fault fixtures: an embedded PostgreSQL of the test's own (never the session's shared one),
and the fault itself: SIGKILL of its postmaster, as the OOM killer would do it."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from pria_ml.db import Database, embedded_url
from pria_ml.registry import promote, record_gate_decision, register_candidate
from pria_ml.settings import Settings

# How long a test's processes keep reconnecting: far above a restart, far below the timeouts.
RETRY_DEADLINE_S = 30.0


def _stop(pgdata: Path, mode: str) -> None:
    """Stop the embedded server of ``pgdata`` as pgserver runs it (its own user when root)."""
    from pgserver._commands import pg_ctl
    from pgserver.postgres_server import PostgresServer

    server = PostgresServer._instances[pgdata.resolve()]
    with contextlib.suppress(subprocess.CalledProcessError):  # already down
        pg_ctl(["-m", mode, "-w", "stop"], pgdata=pgdata, user=server.system_user)


@pytest.fixture(scope="session")
def _initialised_pgdata(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cleanly stopped, initialised data directory: copied per test instead of initdb."""
    home = tmp_path_factory.mktemp("fault-template") / "home"
    embedded_url(home)
    embedded_url(home, "source")
    _stop(home / "pg", "fast")
    return home / "pg"


@pytest.fixture
def fault_home(tmp_path: Path, _initialised_pgdata: Path) -> Iterator[Path]:
    """A pria home with an embedded server of its own, stopped after the test."""
    home = tmp_path / "home"
    home.mkdir()
    # cp -a keeps owner and modes: as root, pgserver runs PostgreSQL as its own user.
    subprocess.run(["cp", "-a", str(_initialised_pgdata), str(home / "pg")], check=True)
    embedded_url(home)
    yield home
    _stop(home / "pg", "immediate")


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
