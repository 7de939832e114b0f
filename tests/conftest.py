"""Shared fixtures: an embedded PostgreSQL for the session, a fresh database per test, a temp
storage root, and a real S3-compatible server (moto) on loopback. Nothing is downloaded."""

from __future__ import annotations

import contextlib
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
