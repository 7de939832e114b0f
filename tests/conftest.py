"""Shared fixtures: an embedded PostgreSQL for the session, a fresh database per test, a temp
storage root, and a real S3-compatible server (moto) on loopback. Nothing is downloaded.

No test may depend on the day it runs: a test that needs a date or a time passes its own
(``now=`` / ``today=`` / ``--as-of``, see ``pria_ml/clock.py``). To check that, run the suite
with the clock moved (opt-in; the default suite runs on the real clock):

    PRIA_TEST_SHIFT_DAYS=7 python -m pytest      # a week ahead
    PRIA_TEST_SHIFT_DAYS=365 python -m pytest    # a year ahead (negative numbers go back)

The shift is applied with time-machine (``travel(..., tick=True)``) when the session starts, so
it moves ``datetime.now``, ``date.today`` and ``time.time`` in this Python process only:
subprocesses (``pria-ml`` run as a command, Spark's JVM) and the PostgreSQL server keep the real
clock. A test that passes with the shift therefore takes no date from any clock. The only tests
that read the clock on purpose are marked ``real_clock``: they check a protocol with another
process about the current time (a signed timestamp), and run unshifted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from pria_ml.db import Database, Role, embedded_url
from pria_ml.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The tiny base stays random-initialised in tests (seconds to build, not a pre-training run);
# the demo's tests pre-train their own. Set here for session fixtures, again after the
# per-test clean-up below.
TINY_PRETRAIN_STEPS = {"PRIA_TINY_PRETRAIN_STEPS": "0"}
os.environ.update(TINY_PRETRAIN_STEPS)

SHIFT_DAYS = "PRIA_TEST_SHIFT_DAYS"
_shift: dict[str, object] = {}  # "by": the timedelta, "traveller": the running time travel


def _travel() -> None:
    import time_machine

    traveller = time_machine.travel(dt.datetime.now(dt.UTC) + _shift["by"], tick=True)
    traveller.start()
    _shift["traveller"] = traveller


def _stop_travel() -> None:
    traveller = _shift.pop("traveller", None)
    if traveller is not None:
        traveller.stop()


def pytest_configure(config: pytest.Config) -> None:
    """Move this process's clock ``PRIA_TEST_SHIFT_DAYS`` days (see the module docstring)."""
    days = os.environ.get(SHIFT_DAYS, "").strip()
    if not days:
        return
    try:
        _shift["by"] = dt.timedelta(days=float(days))
    except ValueError:
        raise pytest.UsageError(f"{SHIFT_DAYS}={days!r} is not a number of days") from None
    _travel()
    config.add_cleanup(_stop_travel)


def pytest_report_header(config: pytest.Config) -> str | None:
    days = os.environ.get(SHIFT_DAYS, "").strip()
    if not days:
        return None
    return (
        f"clock moved {days} days ({SHIFT_DAYS}): now {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
    )


@pytest.fixture(autouse=True)
def _real_clock_when_marked(request: pytest.FixtureRequest) -> Iterator[None]:
    """A ``real_clock`` test runs on the real clock even in a shifted session (see pyproject)."""
    if "traveller" not in _shift or request.node.get_closest_marker("real_clock") is None:
        yield
        return
    _stop_travel()
    try:
        yield
    finally:
        _travel()  # the same shift from the real time now: the moved clock keeps running


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's PRIA_* variables or the repository's .env file."""
    for name in list(os.environ):
        if name.startswith("PRIA_"):
            monkeypatch.delenv(name)
    # A database a test takes down stays down: seconds of reconnecting, not the default minute.
    monkeypatch.setenv("PRIA_DB_RETRY_DEADLINE_S", "2")
    for name, value in TINY_PRETRAIN_STEPS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def pg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pria home whose embedded PostgreSQL is started once for the whole session."""
    home = tmp_path_factory.mktemp("pria-home")
    embedded_url(home)
    return home


@pytest.fixture(scope="session")
def scratch_database(pg_home: Path) -> Callable[..., contextlib.AbstractContextManager[Database]]:
    """A factory: ``with scratch_database("prefix") as db:`` gives an empty database of its own
    on the session's embedded server, dropped (connections and all) afterwards."""
    import psycopg

    @contextlib.contextmanager
    def make(prefix: str = "test", role: Role = "registry") -> Iterator[Database]:
        admin = embedded_url(pg_home)
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        database = Database(role=role, url=admin.replace("/pria?", f"/{name}?"), embedded=False)
        try:
            yield database
        finally:
            database.close()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make


@pytest.fixture
def fresh_db(scratch_database) -> Iterator[Database]:
    """An empty database of its own on the session's embedded server."""
    with scratch_database() as database:
        yield database


@pytest.fixture
def settings(pg_home: Path, fresh_db: Database, tmp_path: Path) -> Settings:
    """Settings on embedded parts: a fresh registry database, a temp storage root."""
    return Settings(
        home=pg_home,
        database_url=fresh_db.url,
        storage_url=(tmp_path / "storage").as_uri(),
        pii_key="test-pii-key",
    )


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API (moto's server mode) listening on loopback."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def on_s3(s3_endpoint: str) -> Callable[[Settings], Settings]:
    """A factory: the given settings with storage on a fresh bucket of the loopback S3 server."""
    import boto3

    def move(settings: Settings) -> Settings:
        bucket = f"pria-{uuid.uuid4().hex[:10]}"
        boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).create_bucket(Bucket=bucket)
        return settings.model_copy(
            update={
                "storage_url": f"s3://{bucket}/pria",
                "s3_endpoint_url": s3_endpoint,
                "s3_access_key_id": "testing",
                "s3_secret_access_key": SecretStr("testing"),
            }
        )

    return move


@pytest.fixture
def s3_settings(settings: Settings, on_s3: Callable[[Settings], Settings]) -> Settings:
    """``settings`` with storage on a fresh bucket of the loopback S3 server."""
    return on_s3(settings)
