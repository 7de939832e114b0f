"""PostgreSQL connections for the registry and the source read-replica.

With ``PRIA_DATABASE_URL`` / ``PRIA_SOURCE_DATABASE_URL`` set, those servers are used. Unset, an
embedded PostgreSQL 16 (the ``pgserver`` package) is started on demand under ``<home>/pg``: one
server per home, shared by every process that uses it, stopped when the last of them exits. The
embedded server holds two databases, ``pria`` (registry) and ``pria_source`` (the stand-in for
the read replica), so the two roles stay as separate as they are in production.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pria_ml.errors import DatabaseUnavailable
from pria_ml.settings import Settings, redact_url

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

Role = Literal["registry", "source"]

_SETTING = {"registry": "PRIA_DATABASE_URL", "source": "PRIA_SOURCE_DATABASE_URL"}
_EMBEDDED_DBNAME = {"registry": "pria", "source": "pria_source"}
CONNECT_TIMEOUT_S = 5


@dataclass
class Database:
    """One database: where it is, which setting chose it, and a lazily opened pool."""

    role: Role
    url: str
    embedded: bool
    _pool: ConnectionPool | None = field(default=None, repr=False)

    @property
    def setting(self) -> str:
        return _SETTING[self.role]

    @property
    def display_url(self) -> str:
        return redact_url(self.url)

    def describe(self) -> str:
        where = "embedded PostgreSQL" if self.embedded else self.setting
        return f"{self.display_url} ({where})"

    def unavailable(self, exc: BaseException) -> DatabaseUnavailable:
        hint = (
            "the embedded server under PRIA_HOME failed; see <home>/pg/log"
            if self.embedded
            else f"check {self.setting}, or unset it to use the embedded server"
        )
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DatabaseUnavailable(
            f"cannot connect to the {self.role} database {self.display_url} "
            f"({self.setting}): {reason} - {hint}"
        )

    @contextlib.contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        """A fresh connection; committed on success, rolled back on error, always closed."""
        import psycopg

        try:
            conn = psycopg.connect(
                self.url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as exc:  # OperationalError, or ProgrammingError for a malformed URL
            raise self.unavailable(exc) from exc
        with conn:
            yield conn

    @property
    def pool(self) -> ConnectionPool:
        """A connection pool for callers that run many short transactions."""
        if self._pool is None:
            import psycopg
            from psycopg_pool import ConnectionPool, PoolTimeout

            pool = ConnectionPool(
                self.url,
                min_size=1,
                max_size=4,
                kwargs={"connect_timeout": CONNECT_TIMEOUT_S},
                open=False,
            )
            try:
                pool.open(wait=True, timeout=CONNECT_TIMEOUT_S * 2)
            except (PoolTimeout, psycopg.Error) as exc:
                pool.close()
                raise self.unavailable(exc) from exc
            self._pool = pool
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def ping(self) -> str:
        """Round-trip to the server; return its version string or raise DatabaseUnavailable."""
        with self.connect(autocommit=True) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        assert row is not None
        return f"PostgreSQL {row[0]}"


def database(settings: Settings, role: Role = "registry") -> Database:
    """The database ``settings`` point at for ``role``, starting the embedded one if needed."""
    configured = settings.database_url if role == "registry" else settings.source_database_url
    if configured is not None:
        return Database(role=role, url=configured.get_secret_value(), embedded=False)
    return Database(role=role, url=embedded_url(settings.home, role), embedded=True)


def embedded_url(home: Path, role: Role = "registry") -> str:
    """URL of ``role``'s database on the embedded server under ``home``, started on demand."""
    server = _embedded_server(home)
    dbname = _EMBEDDED_DBNAME[role]
    _ensure_database(server.get_uri(), dbname)
    return server.get_uri(dbname)


_servers: dict[Path, object] = {}


def _embedded_server(home: Path):
    pgdata = (home / "pg").resolve()
    if pgdata in _servers:
        return _servers[pgdata]
    # pgserver logs its start-up at INFO; keep the CLI quiet unless asked.
    logging.getLogger("pgserver").setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    # pgserver keeps its lock file in the XDG runtime dir; the fallback it warns about is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import pgserver
    from pgserver.postgres_server import PostgresServer

    home.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:
        _prune_dead_handles(pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises CalledProcessError/TimeoutExpired/AssertionError
        raise DatabaseUnavailable(
            f"the embedded PostgreSQL under {pgdata} did not start: {exc} "
            f"(see {pgdata / 'log'}, or set PRIA_DATABASE_URL to use another server)"
        ) from exc
    _servers[pgdata] = server
    return server


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without saying goodbye (SIGKILL, OOM).

    pgserver stops the server when the last process in its handle list exits; a process killed
    before its atexit hook ran would otherwise keep the server running forever.
    """
    import psutil

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid) and pid != os.getpid()]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _ensure_database(admin_url: str, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if exists:
            return
        # Another process may create it between the check and here; either way it exists.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
