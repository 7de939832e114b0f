"""PostgreSQL connections for the registry and the source read-replica, and how they survive
database faults.

With ``PRIA_DATABASE_URL`` / ``PRIA_SOURCE_DATABASE_URL`` set, those servers are used. Unset, an
embedded PostgreSQL 16 (the ``pgserver`` package) is started on demand under ``<home>/pg``: one
server per home, shared by every process that uses it, stopped when the last of them exits. The
embedded server holds two databases, ``pria`` (registry) and ``pria_source`` (the stand-in for
the read replica), so the two roles stay as separate as they are in production.

Faults. A connection-level failure (refused, reset, server shut down or crashed, failover,
timeout) is retried with jittered backoff until ``PRIA_DB_RETRY_DEADLINE_S`` has passed, then
reported as ``DatabaseUnavailable`` naming the setting and whether anything was changed; a raw
driver exception never reaches the caller. ``Database.transaction`` retries a transaction that
failed before its COMMIT; a COMMIT whose answer was lost is retried only when the work is
idempotent or the caller can tell from the database whether it committed (``recover``). When
the embedded server has died, the next connection attempt starts it again (``_revive``),
under pgserver's own inter-process lock so that processes noticing at once start it once;
PostgreSQL's crash recovery brings back every committed transaction.

The retry loop is written here rather than taken from a retry library because it has two budgets
(a deadline for connection faults, a count for a busy registry) and a step between attempts that
a generic decorator has no place for: resolving a lost COMMIT before deciding to run again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from pria_ml.errors import ConfigError, DatabaseUnavailable, PriaError
from pria_ml.settings import Settings, redact_url

if TYPE_CHECKING:
    import psycopg
    from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

T = TypeVar("T")
Role = Literal["registry", "source"]

_SETTING = {"registry": "PRIA_DATABASE_URL", "source": "PRIA_SOURCE_DATABASE_URL"}
_EMBEDDED_DBNAME = {"registry": "pria", "source": "pria_source"}
CONNECT_TIMEOUT_S = 5
DEFAULT_RETRY_DEADLINE_S = 60.0
# First pause between attempts after a connection fault; doubles (jittered) up to the cap.
RETRY_BACKOFF_S = 0.1
RETRY_BACKOFF_CAP_S = 2.0
# admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections; class 08 is added
# below. A client-side failure (refused, reset, timeout) carries no SQLSTATE at all.
_CONNECTION_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
# Server answers at connection time that pass when the server is up again.
_TRANSIENT_REFUSALS = ("starting up", "shutting down", "recovery", "too many clients", "slots")
# lock_not_available, serialization_failure, deadlock_detected: nothing was changed, try again.
BUSY_SQLSTATES = frozenset({"55P03", "40001", "40P01"})

NOTHING_CHANGED = "nothing was changed"
OUTCOME_UNKNOWN = (
    "the connection was lost during its COMMIT, so it may or may not have been applied"
)


class _NotCommitted:
    def __repr__(self) -> str:
        return "NOT_COMMITTED"


# What a ``recover`` callback returns when the lost COMMIT did not happen.
NOT_COMMITTED = _NotCommitted()


class _CommitLost(Exception):
    """The connection failed while COMMIT was in flight: the outcome is not known."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def connection_failed(exc: BaseException) -> bool:
    """Whether ``exc`` is a connection-level failure that may pass: worth another attempt."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    if state is not None:
        return state in _CONNECTION_SQLSTATES or state.startswith("08")
    text = str(exc)
    # A server that answered the connection with FATAL (unknown database, bad password) will
    # answer the same again, unless it said it is starting, stopping or full.
    return "FATAL:" not in text or any(phrase in text for phrase in _TRANSIENT_REFUSALS)


@dataclass
class Database:
    """One database: where it is, which setting chose it, and a lazily opened pool.

    ``pgdata`` is the embedded server's data directory (None for a configured server); the
    connection helpers start that server again when it has died. ``retry_deadline_s`` bounds
    how long a connection fault is retried before ``DatabaseUnavailable``.
    """

    role: Role
    url: str
    embedded: bool
    pgdata: Path | None = None
    retry_deadline_s: float = DEFAULT_RETRY_DEADLINE_S
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

    def unavailable(
        self, exc: BaseException, *, what: str | None = None, outcome: str = NOTHING_CHANGED
    ) -> DatabaseUnavailable:
        """The typed error for ``exc``: which database, which setting, what happened to ``what``."""
        if self.pgdata is not None:
            hint = f"the embedded server under {self.pgdata} failed; see {self.pgdata / 'log'}"
        else:
            hint = f"check {self.setting}, or unset it to use the embedded server"
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = (
            f"cannot connect to the {self.role} database {self.display_url} "
            f"({self.setting}): {reason} - {hint}"
        )
        if what is not None:
            again = (
                "run it again" if outcome == NOTHING_CHANGED else "check before running it again"
            )
            message += f"; {what}: {outcome} - {again} once the database answers"
        return DatabaseUnavailable(message)

    def _pause(self, attempt: int, deadline: float) -> None:
        """Between two attempts: start a dead embedded server again, then back off (jittered)."""
        if self.pgdata is not None:
            _revive(self.pgdata)
        delay = min(RETRY_BACKOFF_CAP_S, RETRY_BACKOFF_S * 2**attempt) * (0.5 + random.random())
        time.sleep(max(0.0, min(delay, deadline - time.monotonic())))

    def _open(self, *, autocommit: bool, deadline: float) -> psycopg.Connection:
        """A new connection; connection faults are retried until ``deadline`` (monotonic)."""
        import psycopg

        attempt = 0
        while True:
            try:
                return psycopg.connect(
                    self.url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
                )
            except psycopg.Error as exc:  # OperationalError, or ProgrammingError for a bad URL
                if not connection_failed(exc) or time.monotonic() >= deadline:
                    raise self.unavailable(exc) from exc
                log.info("%s database not answering (%s); retrying", self.role, _first_line(exc))
                self._pause(attempt, deadline)
                attempt += 1

    @contextlib.contextmanager
    def connect(
        self, *, autocommit: bool = False, retry: bool = True
    ) -> Iterator[psycopg.Connection]:
        """A fresh connection; committed on success, rolled back on error, always closed.

        Opening it rides out a database restart of up to ``retry_deadline_s`` (``retry=False``:
        one attempt, after starting a dead embedded server). What runs on it is not retried:
        use ``transaction`` or ``retry`` for that.
        """
        if not retry and self.pgdata is not None and not _accepting(self.pgdata):
            _revive(self.pgdata)
        deadline = time.monotonic() + (self.retry_deadline_s if retry else 0.0)
        with self._open(autocommit=autocommit, deadline=deadline) as conn:
            yield conn

    def retry(
        self,
        attempt: Callable[[], T],
        *,
        what: str,
        idempotent: bool = False,
        after_lost_commit: Callable[[], T] | None = None,
        busy: Callable[[BaseException], PriaError] | None = None,
        busy_retries: int = 0,
        busy_backoff_s: float = 0.05,
    ) -> T:
        """Run ``attempt`` again after a connection fault, until ``retry_deadline_s`` has passed.

        ``attempt`` opens its own connection(s). A fault before a COMMIT changed nothing and is
        retried. A COMMIT whose answer was lost (``_CommitLost``, raised by ``transaction``) is
        retried when ``idempotent``; given ``after_lost_commit``, that runs instead of
        ``attempt`` from then on (it first finds out whether the COMMIT happened); otherwise the
        lost COMMIT is reported as such. With ``busy``, a lock timeout, serialization failure or
        deadlock is retried ``busy_retries`` times, then ``busy(exc)`` is raised. Anything else
        ``attempt`` raises passes through; a failure never reaches the caller as a driver error.
        """
        import psycopg

        deadline = time.monotonic() + self.retry_deadline_s
        outcome = NOTHING_CHANGED
        faults = busy_tries = 0
        while True:
            try:
                return attempt()
            except _CommitLost as lost:
                failure = lost.cause
                outcome = OUTCOME_UNKNOWN  # until an attempt succeeds
                if not idempotent:
                    if after_lost_commit is None:
                        raise self.unavailable(failure, what=what, outcome=outcome) from failure
                    attempt = after_lost_commit
            except DatabaseUnavailable as exc:  # _open gave up
                cause = exc.__cause__ or exc
                raise self.unavailable(cause, what=what, outcome=outcome) from cause
            except psycopg.Error as exc:
                if busy is not None and exc.sqlstate in BUSY_SQLSTATES:
                    if busy_tries >= busy_retries:
                        raise busy(exc) from exc
                    delay = busy_backoff_s * (2**busy_tries) * (0.5 + random.random())
                    busy_tries += 1
                    log.warning(
                        "registry busy (%s), retried: %s in %.2f s", exc.sqlstate, what, delay
                    )
                    time.sleep(delay)
                    continue
                if not connection_failed(exc):
                    if isinstance(exc, psycopg.OperationalError):
                        raise self.unavailable(exc, what=what, outcome=outcome) from exc
                    raise
                failure = exc
            if time.monotonic() >= deadline:
                raise self.unavailable(failure, what=what, outcome=outcome) from failure
            log.warning(
                "%s database connection lost during %s (%s); retrying for up to %.0f s",
                self.role,
                what,
                _first_line(failure),
                deadline - time.monotonic(),
            )
            self._pause(faults, deadline)
            faults += 1

    def transaction(
        self,
        work: Callable[[psycopg.Connection], T],
        *,
        what: str,
        idempotent: bool = False,
        recover: Callable[[psycopg.Connection], T | _NotCommitted] | None = None,
        read_only: bool = False,
        busy: Callable[[BaseException], PriaError] | None = None,
        busy_retries: int = 0,
        busy_backoff_s: float = 0.05,
    ) -> T:
        """Run ``work`` in one transaction on a new connection and commit; retry on faults.

        A connection fault before the COMMIT rolled everything back, so ``work`` runs again on a
        new connection (see ``retry`` for the deadline and the busy budget). When the COMMIT's
        answer is lost, ``idempotent`` work simply runs again; otherwise ``recover`` runs first
        in the retried transaction and returns the committed result (read from the database,
        e.g. the event log) or ``NOT_COMMITTED``, after which ``work`` runs in the same
        transaction, so a lock ``recover`` took is held until ``work`` commits.
        """

        def resolved(conn: psycopg.Connection) -> T:
            assert recover is not None
            found = recover(conn)
            return work(conn) if found is NOT_COMMITTED else found  # type: ignore[return-value]

        return self.retry(
            lambda: self._run_once(work, read_only=read_only),
            what=what,
            idempotent=idempotent,
            after_lost_commit=(
                None if recover is None else lambda: self._run_once(resolved, read_only=read_only)
            ),
            busy=busy,
            busy_retries=busy_retries,
            busy_backoff_s=busy_backoff_s,
        )

    def _run_once(self, work: Callable[[psycopg.Connection], T], *, read_only: bool) -> T:
        import psycopg

        try:
            conn = psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            if not connection_failed(exc):
                raise self.unavailable(exc) from exc
            raise  # retried by ``retry``
        try:
            conn.read_only = read_only
            result = work(conn)
            try:
                conn.commit()
            except psycopg.Error as exc:
                if connection_failed(exc):
                    raise _CommitLost(exc) from exc
                raise
            return result
        finally:
            conn.close()

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
        """Round-trip to the server (one attempt); its version string, or DatabaseUnavailable."""
        import psycopg

        try:
            with self.connect(autocommit=True, retry=False) as conn:
                row = conn.execute("SHOW server_version").fetchone()
        except psycopg.Error as exc:
            raise self.unavailable(exc) from exc
        assert row is not None
        return f"PostgreSQL {row[0]}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def database(settings: Settings, role: Role = "registry") -> Database:
    """The database ``settings`` point at for ``role``, starting the embedded one if needed."""
    configured = settings.database_url if role == "registry" else settings.source_database_url
    deadline = settings.db_retry_deadline_s
    if configured is None and settings.deployment == "production":
        raise ConfigError(
            f"{_SETTING[role]} is not set: production never falls back to an embedded database"
        )
    if configured is not None:
        return Database(
            role=role, url=configured.get_secret_value(), embedded=False, retry_deadline_s=deadline
        )
    return Database(
        role=role,
        url=embedded_url(settings.home, role),
        embedded=True,
        pgdata=_pgdata(settings.home),
        retry_deadline_s=deadline,
    )


def embedded_url(
    home: Path, role: Role = "registry", *, deadline_s: float = DEFAULT_RETRY_DEADLINE_S
) -> str:
    """URL of ``role``'s database on the embedded server under ``home``, started on demand
    (and started again if it died, for up to ``deadline_s``)."""
    import psycopg

    server = _embedded_server(home)
    pgdata, dbname = _pgdata(home), _EMBEDDED_DBNAME[role]
    deadline = time.monotonic() + deadline_s
    attempt = 0
    while True:
        try:
            _ensure_database(server.get_uri(), dbname)
            return server.get_uri(dbname)
        except psycopg.Error as exc:
            if not connection_failed(exc) or time.monotonic() >= deadline:
                raise DatabaseUnavailable(
                    f"the embedded PostgreSQL under {pgdata} does not answer: {_first_line(exc)} "
                    f"(see {pgdata / 'log'}, or set {_SETTING[role]} to use another server)"
                ) from exc
            _revive(pgdata)
            time.sleep(min(RETRY_BACKOFF_CAP_S, RETRY_BACKOFF_S * 2**attempt))
            attempt += 1


_servers: dict[Path, object] = {}
# pgserver's inter-process lock is per process, not per thread: threads take this one first.
_thread_lock = threading.Lock()


def _pgdata(home: Path) -> Path:
    return (home / "pg").resolve()


def _embedded_server(home: Path):
    pgdata = _pgdata(home)
    if pgdata in _servers:
        return _servers[pgdata]
    # pgserver logs its start-up at INFO; keep the CLI quiet unless asked.
    logging.getLogger("pgserver").setLevel(max(log.getEffectiveLevel(), logging.WARNING))
    # pgserver keeps its lock file in the XDG runtime dir; the fallback it warns about is fine.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    import atexit

    import pgserver
    from pgserver.postgres_server import PostgresServer

    home.mkdir(parents=True, exist_ok=True)
    with _thread_lock, PostgresServer._lock:
        _prune_dead_handles(pgdata)
        _forget_dead_postmaster(pgdata)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # pgserver raises CalledProcessError/TimeoutExpired/AssertionError
        raise DatabaseUnavailable(
            f"the embedded PostgreSQL under {pgdata} did not start: {exc} "
            f"(see {pgdata / 'log'}, or set PRIA_DATABASE_URL to use another server)"
        ) from exc
    # Runs before pgserver's own exit hook (atexit is last in, first out): the last process to
    # exit must stop the server that runs now, which may have been restarted since.
    atexit.register(_refresh_postmaster, server)
    _servers[pgdata] = server
    return server


def _refresh_postmaster(server) -> None:
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(server.pgdata)
    if info is not None and _process_alive(info.pid):
        server._postmaster_info = info


def _process_alive(pid: int) -> bool:
    """Whether ``pid`` runs: a dead process nobody reaped (a zombie) does not."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _accepting(pgdata: Path) -> bool:
    """Whether the embedded server under ``pgdata`` has a live postmaster that says ready."""
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # being rewritten by a starting server
        return False
    return info is not None and info.status == "ready" and _process_alive(info.pid)


def _shared_memory_attached(pgdata: Path) -> bool:
    """Whether processes of a dead server still hold its shared memory (Linux; else False).

    PostgreSQL refuses to start while they do; it finds the segment through postmaster.pid, so
    that file must not be removed before they are gone.
    """
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata)
    shm = Path("/proc/sysvipc/shm")
    if info is None or info.shmget_id is None or not shm.exists():
        return False
    for line in shm.read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1]) == info.shmget_id:
            return int(fields[6]) > 0  # nattch
    return False


def _forget_dead_postmaster(pgdata: Path) -> bool:
    """Remove postmaster.pid of a postmaster that died unreaped; True if the server may start.

    PostgreSQL and pgserver both take a zombie for a running server (its pid still exists), so
    neither would ever start the server again. A postmaster that is gone for good is left to
    PostgreSQL's own stale-lock check. Called under pgserver's lock.
    """
    from pgserver.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):
        return False
    if info is None:
        return True
    if _process_alive(info.pid):
        return False
    import psutil

    if psutil.pid_exists(info.pid):  # a zombie: the file must go, once its backends are gone
        if _shared_memory_attached(pgdata):
            return False
        # The socket's lock file names the dead postmaster too, and is refused the same way.
        if info.socket_path is not None:
            socket_lock = info.socket_path.with_name(info.socket_path.name + ".lock")
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(socket_lock.read_text().split()[0]) == info.pid:
                    socket_lock.unlink()
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
    return True


def _revive(pgdata: Path) -> None:
    """Start the embedded server under ``pgdata`` again if its postmaster has died.

    Safe when several processes notice at once: they serialise on pgserver's lock (the one its
    own start-up takes), and each one first looks whether another has already restarted it.
    A failed start is logged and left to the caller's next attempt.
    """
    server = _servers.get(pgdata)
    if server is None or _accepting(pgdata):
        return
    from pgserver.postgres_server import PostgresServer

    with _thread_lock, PostgresServer._lock:
        if _accepting(pgdata) or not _forget_dead_postmaster(pgdata):
            return
        began = time.monotonic()
        try:
            server.ensure_postgres_running()
        except Exception as exc:  # CalledProcessError, TimeoutExpired: retried by the caller
            log.warning("the embedded PostgreSQL under %s did not start yet: %s", pgdata, exc)
            return
    log.warning(
        "the embedded PostgreSQL under %s had died; restarted it in %.1f s (crash recovery "
        "restores every committed transaction)",
        pgdata,
        time.monotonic() - began,
    )


def _prune_dead_handles(pgdata: Path) -> None:
    """Forget processes that died without saying goodbye (SIGKILL, OOM).

    pgserver stops the server when the last process in its handle list exits; a process killed
    before its atexit hook ran would otherwise keep the server running forever.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text() or "[]")
    except json.JSONDecodeError:
        pids = []
    alive = [pid for pid in pids if _process_alive(pid) and pid != os.getpid()]
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
