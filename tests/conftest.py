"""Shared fixtures: one embedded PostgreSQL for the session, databases cloned from migrated
templates, settings built by one factory, the tiny base model built once, a temp storage
root per test, and a real S3-compatible server (moto) on loopback. Nothing is
downloaded.

Factories (the folders' conftest files build on these; none makes databases or settings its own
way):

- ``new_database(kind, prefix, role)``: a database of its own on the session's server, dropped
  with ``FORCE`` afterwards. ``kind`` says what it starts with: ``"empty"`` (nothing),
  ``"registry"`` (every migration applied) or ``"source"`` (the tables of
  ``sql/source/schema.sql``). ``scratch_database(prefix, role)`` is its ``"empty"`` kind.
- ``settings_for(database, storage, **overrides)``: ``Settings`` on the session's home with that
  registry database and a local storage root.
- ``install_tiny_model(home)``: the session's tiny base, copied to where a pria-ml process with
  that home builds it on first use.
- Per-test fixtures made with them: ``fresh_db`` / ``settings`` (an empty registry database),
  ``registry_db`` / ``registry_settings`` (migrated), ``source_db`` (source tables); settings
  store under the test's own ``tmp_path``.

What is shared across tests, and why that is safe:

- The embedded server (``pg_home``): each test gets databases of its own on it, which no other
  test connects to (except the folders' shared registries below).
- Template databases (``pria_tmpl_registry``, ``pria_tmpl_source``): migrated (or given the
  source tables) once per session, then marked ``IS_TEMPLATE`` and ``ALLOW_CONNECTIONS false``,
  so nothing connects to them and changes them (PostgreSQL refuses to clone a template anything
  is connected to). A test's database is ``CREATE DATABASE x TEMPLATE tmpl``: a copy as fresh
  and isolated as a newly migrated database, without running every migration per test. The
  migrations create no cluster-wide objects (roles, ``ALTER DATABASE`` settings) that a copy
  would miss. Tests of migrating itself (tests/test_migrate.py, ``pria-ml db migrate``) still
  get an empty database and migrate it for real.
- The tiny base model (``tiny_model_dir``): random-initialised (PRIA_TINY_PRETRAIN_STEPS=0) and
  deterministic (every build, in-process or by a subprocess, has byte-identical files), built
  once under ``pg_home``. Tests only read it; one that changes a base changes a copy.
- The trainings of tests/train (``trained``) and tests/eval (``good_candidate``,
  ``bad_candidate``): session-scoped, each on its own folder's registry and storage
  (``train_db``, ``eval_db``), which no other folder sees. The tests using them read the
  adapters; tests that register more in those registries use dataset dates of their own
  (tests/eval/test_eval_end_to_end.py's steps build on one another in file order, by design).

Not shared: every per-test database and storage root; the fault tests' PostgreSQL servers
(tests/faults: each test starts a copy of one initialised data directory); the homes of the
subprocess tests (tests/test_pipeline_e2e.py, the nightly chain), each with an embedded server
of its own.

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
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import SecretStr

from pria_ml.db import Database, Role, embedded_url
from pria_ml.settings import Settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# One torch (OpenMP) thread per process, here and in every pria-ml subprocess a test starts
# (they inherit the environment). The tiny model's tensors are far too small to gain from a
# second thread, and on a 2-core machine shared with Spark, PostgreSQL and other processes two
# threads oversubscribe: measured, the 24-step `trained` fixture took 107 CPU s (199 s wall)
# with the default two threads and 15 CPU s (17 s wall) with one, with identical losses. Set
# before torch is imported (no test module imports it before this file runs).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
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


# Running on every core (`python3 dev.py test` passes `-n auto`): a worker takes a whole test
# file at a time, so a file's module fixtures (the nightly chain's night, the pipeline's home)
# run once and its steps keep their order; a folder whose session fixtures train (tests/train's
# ``trained``, tests/eval's candidates) goes to one worker whole, so nothing trains twice. The
# longest units are handed out first (a work queue in collection order), so the workers finish
# close together. (xdist's own ``--dist loadgroup`` marks did not group with this pytest: each
# test went to either worker; a scheduler of our own says what a unit is.)
SHARED_BY_FOLDER = ("tests/train", "tests/eval")
LONGEST_FIRST = (
    "tests/demo/test_demo.py",
    "tests/nightly/test_nightly_chain.py",
    "tests/train",
    "tests/eval",
    "tests/test_fly_rehearsal.py",
    "tests/test_perf_scripts.py",
    "tests/test_pipeline_e2e.py",
    "tests/nightly/test_runbook.py",
    "tests/faults",
    "tests/features",
)


def _work_unit(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return next((folder for folder in SHARED_BY_FOLDER if path.startswith(folder + "/")), path)


def _rank(unit: str) -> int:
    hits = [i for i, p in enumerate(LONGEST_FIRST) if unit == p or unit.startswith(p + "/")]
    return hits[0] if hits else len(LONGEST_FIRST)


def pytest_xdist_make_scheduler(config: pytest.Config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkUnit(LoadScopeScheduling):
        """xdist's per-scope scheduling with our work units, in collection order."""

        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    config.option.loadscopereorder = False  # keep the longest-first order below
    return ByWorkUnit(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Put the longest units first; the order inside a file is kept (some files' steps build
    on one another)."""
    items.sort(key=lambda item: _rank(_work_unit(item.nodeid)))  # stable


TEST_PII_KEY = "test-pii-key"
DatabaseKind = Literal["empty", "registry", "source"]


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


# Databases ---------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def pg_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pria home whose embedded PostgreSQL is started once for the whole session."""
    home = tmp_path_factory.mktemp("pria-home")
    embedded_url(home)
    return home


class _Templates:
    """The session's template databases, each built on first use (a run of tests/features
    never migrates anything)."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.built: dict[str, str] = {}
        self.lock = threading.Lock()

    def url(self, name: str) -> str:
        return self.admin_url.replace("/pria?", f"/{name}?")

    def name(self, kind: DatabaseKind) -> str | None:
        if kind == "empty":
            return None  # PostgreSQL's own template1
        with self.lock:
            if kind not in self.built:
                self.built[kind] = self._build(kind)
            return self.built[kind]

    def _build(self, kind: DatabaseKind) -> str:
        import psycopg

        name = f"pria_tmpl_{kind}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        role: Role = "source" if kind == "source" else "registry"
        database = Database(role=role, url=self.url(name), embedded=False)
        try:
            if kind == "registry":
                from pria_ml.db.migrate import migrate

                migrate(database)
            else:
                from pria_ml.world.seed import apply_schema

                apply_schema(database)
        finally:
            database.close()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            # Nothing may connect to a template while it is cloned, nor change it afterwards.
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        return name


@pytest.fixture(scope="session")
def new_database(pg_home: Path) -> Callable[..., contextlib.AbstractContextManager[Database]]:
    """A factory: ``with new_database("registry", "prefix") as db:`` gives a database of its
    own on the session's embedded server - empty, migrated or with the source tables (cloned
    from the session's template) - dropped (connections and all) afterwards."""
    import psycopg

    admin = embedded_url(pg_home)
    templates = _Templates(admin)

    @contextlib.contextmanager
    def make(
        kind: DatabaseKind = "empty", prefix: str = "test", role: Role | None = None
    ) -> Iterator[Database]:
        template = templates.name(kind)
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        clone = f' TEMPLATE "{template}"' if template else ""
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{clone}')
        role = role or ("source" if kind == "source" else "registry")
        database = Database(role=role, url=templates.url(name), embedded=False)
        try:
            yield database
        finally:
            database.close()
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make


@pytest.fixture(scope="session")
def scratch_database(new_database) -> Callable[..., contextlib.AbstractContextManager[Database]]:
    """``with scratch_database("prefix", role) as db:``: an empty database of its own."""

    def make(prefix: str = "test", role: Role = "registry"):
        return new_database("empty", prefix, role)

    return make


@pytest.fixture
def fresh_db(new_database) -> Iterator[Database]:
    """An empty database of its own on the session's embedded server."""
    with new_database("empty") as database:
        yield database


@pytest.fixture
def registry_db(new_database) -> Iterator[Database]:
    """A database of its own with every migration applied (a clone of the migrated template)."""
    with new_database("registry") as database:
        yield database


@pytest.fixture
def source_db(new_database) -> Iterator[Database]:
    """A source database of its own (the read replica's stand-in) with the source tables."""
    with new_database("source", "source") as database:
        yield database


# Settings ----------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def settings_for(pg_home: Path) -> Callable[..., Settings]:
    """A factory: ``settings_for(database, storage_root, **overrides)`` is ``Settings`` on the
    session's home with ``database`` as the registry and local storage at ``storage_root``."""

    def make(database: Database, storage: Path, **overrides) -> Settings:
        return Settings(
            home=pg_home,
            database_url=database.url,
            storage_url=Path(storage).as_uri(),
            **overrides,
        )

    return make


@pytest.fixture
def settings(settings_for, fresh_db: Database, tmp_path: Path) -> Settings:
    """Settings on embedded parts: a fresh, empty registry database, a temp storage root."""
    return settings_for(fresh_db, tmp_path / "storage", pii_key=TEST_PII_KEY)


@pytest.fixture
def registry_settings(settings_for, registry_db: Database, tmp_path: Path) -> Settings:
    """``settings`` on a fresh registry database with every migration applied."""
    return settings_for(registry_db, tmp_path / "storage", pii_key=TEST_PII_KEY)


# The tiny base model -----------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_model_dir(pg_home: Path) -> Path:
    """The random-initialised tiny base model, built once under the session's home (where a
    ``Settings(home=pg_home)`` without ``base_model`` finds it). Read it, never change it."""
    from pria_ml.model import tiny as tinymodel

    return tinymodel.ensure(Settings(home=pg_home, tiny_pretrain_steps=0))


@pytest.fixture(scope="session")
def install_tiny_model(tiny_model_dir: Path) -> Callable[[Path], Path]:
    """A factory: ``install_tiny_model(home)`` copies the session's tiny base to where a
    pria-ml process with that home and no PRIA_BASE_MODEL builds it on first use. The build is
    deterministic (byte-identical files in every home), so a process finds exactly what it
    would have built, without paying a build per home."""
    import shutil

    def install(home: Path) -> Path:
        target = Settings(home=home).tiny_model_dir
        shutil.copytree(tiny_model_dir, target)
        return target

    return install


# S3 ----------------------------------------------------------------------------------------
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
