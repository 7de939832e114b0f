"""Fault fixtures: an embedded PostgreSQL of the test's own (never the session's shared one),
started from a copy of one initialised data directory. The faults themselves: faultkit.py."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from pria_ml.db import embedded_url


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
