import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pria_ml.db import database
from pria_ml.errors import DatabaseUnavailable
from pria_ml.settings import Settings

# A child process that opens the embedded database under HOME, reports which server it reached,
# then holds its handle for a moment so the two children overlap.
_CHILD = """
import sys, time
from pria_ml.db import database
from pria_ml.settings import Settings
db = database(Settings(home=sys.argv[1]))
with db.connect() as conn:
    started = conn.execute("SELECT pg_postmaster_start_time()").fetchone()[0]
print(started.isoformat(), flush=True)
time.sleep(float(sys.argv[2]))
"""


def _spawn(home: Path, hold_s: float) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(home), str(hold_s)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _server_running(home: Path) -> bool:
    pid_file = home / "pg" / "postmaster.pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text().splitlines()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_embedded_server_is_shared_by_two_processes_and_stopped_after_the_last(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    first, second = _spawn(home, 1.5), _spawn(home, 1.5)
    outputs = [proc.communicate(timeout=60)[0].strip() for proc in (first, second)]
    assert first.returncode == second.returncode == 0
    assert outputs[0] == outputs[1], "both processes must reach the same server"
    assert not _server_running(home), "the last process to exit stops the server"

    third = _spawn(home, 0)
    assert third.communicate(timeout=60)[0].strip() > outputs[0], "restarted on demand"


def test_killed_process_does_not_keep_the_server_alive(tmp_path: Path) -> None:
    home = tmp_path / "home"
    victim = _spawn(home, 60)
    assert victim.stdout is not None
    victim.stdout.readline()  # connected
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert _server_running(home)

    survivor = _spawn(home, 0)
    survivor.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _server_running(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _server_running(home)


def test_new_process_restarts_a_killed_embedded_server(tmp_path: Path) -> None:
    """A postmaster killed while a process still holds the server: the next process starts it
    again (its pid may linger as an unreaped zombie, which PostgreSQL takes for a live server)."""
    home = tmp_path / "home"
    holder = _spawn(home, 60)
    assert holder.stdout is not None
    first_start = holder.stdout.readline().strip()
    os.kill(int((home / "pg" / "postmaster.pid").read_text().split()[0]), signal.SIGKILL)

    newcomer = _spawn(home, 0)
    restarted = newcomer.communicate(timeout=120)[0].strip()
    assert newcomer.returncode == 0
    assert restarted > first_start, "a new postmaster, started by the new process"
    holder.kill()
    holder.wait()
    _spawn(home, 0).communicate(timeout=60)  # the last process stops the restarted server
    deadline = time.monotonic() + 10
    while _server_running(home) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _server_running(home)


def test_configured_url_never_starts_the_embedded_server(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url="postgresql://u:pw@127.0.0.1:1/x")
    db = database(settings)
    assert not db.embedded
    assert not (tmp_path / "home" / "pg").exists()
    with pytest.raises(DatabaseUnavailable, match=r"PRIA_DATABASE_URL.*Connection refused"):
        db.ping()


def test_malformed_url_is_reported_not_raised_raw(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, source_database_url="postgresql://host:notaport/db")
    db = database(settings, "source")
    with pytest.raises(DatabaseUnavailable, match="PRIA_SOURCE_DATABASE_URL"):
        db.ping()


def test_pool_serves_connections(pg_home: Path) -> None:
    db = database(Settings(home=pg_home))
    with db.pool.connection() as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("pria",)
    db.close()
