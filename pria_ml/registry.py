"""The model registry: register candidates, record gate decisions, promote, roll back, archive.

Every state change is one call of one SQL function (``sql/migrations/0002_*`` onward), run in one
transaction: the database holds the invariants (at most one prod, an append-only event log,
rows changed only by those functions) and this module only calls them, retries a busy registry
a bounded number of times, and turns refusals into ``RegistryError``. Reading
``pria.registry_event`` tells the whole story; replaying it reproduces every status.
"""

from __future__ import annotations

import datetime
import getpass
import json
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pria_ml.db import Database
from pria_ml.errors import RegistryError

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)

T = TypeVar("T")

# A registry transaction waits at most this long for the registry lock before it is retried;
# a busy registry is retried this many times with jittered backoff, then reported.
LOCK_TIMEOUT_MS = 2_000
BUSY_RETRIES = 8
BUSY_BACKOFF_S = 0.05
# lock_not_available, serialization_failure, deadlock_detected: nothing was changed, try again.
_BUSY_SQLSTATES = {"55P03", "40001", "40P01"}
NOTIFY_CHANNEL = "pria_model_endpoint"


class RegistryBusy(RegistryError):
    """The registry stayed locked by other changes through every retry; nothing was changed."""


@dataclass(frozen=True)
class Adapter:
    """One ``pria.model_registry`` row."""

    adapter_id: uuid.UUID
    created_at: datetime.datetime
    metrics_json: dict[str, Any]
    safety_flags: int | None
    status: str
    dataset_date: datetime.date
    artifact_uri: str
    artifact_sha256: str
    base_model: str
    promoted_at: datetime.datetime | None
    superseded_at: datetime.datetime | None
    archived_at: datetime.datetime | None
    gate_passed: bool | None
    gate_reason: str | None
    gate_decided_at: datetime.datetime | None

    @property
    def state(self) -> str:
        """``status``, with a candidate that was prod before shown as ``superseded``."""
        if self.status == "candidate" and self.superseded_at is not None:
            return "superseded"
        return self.status


_ADAPTER_COLUMNS = ", ".join(Adapter.__dataclass_fields__)


def actor() -> str:
    """Who is acting, for the event log: ``user@host`` of this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def _registry_error(exc: psycopg.Error) -> RegistryError | None:
    """A refusal raised by the registry functions (SQLSTATE class PR), as a RegistryError."""
    diag = exc.diag
    if exc.sqlstate and exc.sqlstate.startswith("PR"):
        message = diag.message_primary or str(exc)
        if diag.message_hint:
            message += f" ({diag.message_hint})"
        return RegistryError(message + "; nothing was changed")
    return None


def _transaction(db: Database, work: Callable[[psycopg.Connection], T], *, what: str) -> T:
    """Run ``work`` in one transaction; retry when the registry is busy, map refusals.

    A lock wait longer than LOCK_TIMEOUT_MS, a serialization failure or a deadlock rolls the
    transaction back and is retried up to BUSY_RETRIES times with jittered backoff; after that
    RegistryBusy is raised. A refusal from the SQL functions becomes RegistryError. Both leave
    the database unchanged.
    """
    import psycopg

    _ready(db)
    for attempt in range(BUSY_RETRIES + 1):
        try:
            with db.connect() as conn:
                conn.execute(f"SET LOCAL lock_timeout = {int(LOCK_TIMEOUT_MS)}")
                return work(conn)
        except psycopg.Error as exc:
            mapped = _registry_error(exc)
            if mapped is not None:
                raise mapped from None
            if exc.sqlstate not in _BUSY_SQLSTATES:
                if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
                    raise db.unavailable(exc) from exc
                raise
            if attempt == BUSY_RETRIES:
                raise RegistryBusy(
                    f"registry busy: {what} could not take the registry lock after "
                    f"{BUSY_RETRIES} retries ({exc.sqlstate}); nothing was changed - run it again"
                ) from exc
            delay = BUSY_BACKOFF_S * (2**attempt) * (0.5 + random.random())
            log.warning("registry busy (%s), retried: %s in %.2f s", exc.sqlstate, what, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


_migrated: set[str] = set()


def _ready(db: Database) -> None:
    """Make sure the registry schema is current, once per database per process."""
    if db.url not in _migrated:
        from pria_ml.migrate import ensure_current

        ensure_current(db)
        _migrated.add(db.url)


@contextmanager
def _reading(db: Database) -> Iterator[psycopg.Connection]:
    _ready(db)
    with db.connect() as conn:
        yield conn


def register_candidate(
    db: Database,
    *,
    dataset_date: datetime.date,
    artifact_uri: str,
    artifact_sha256: str,
    base_model: str,
    metrics: dict,
) -> uuid.UUID:
    """Register a trained adapter as a ``candidate``; return its ``adapter_id``.

    Writes one ``model_registry`` row and a ``register`` event. Registering the same artifact
    (URI, sha256, date, base model) again returns the existing id. Raises RegistryError when the
    URI is registered with a different checksum or the input is malformed,
    DatabaseUnavailable when the registry cannot be reached.
    """
    payload = json.dumps(metrics, default=str)

    def work(conn: psycopg.Connection) -> uuid.UUID:
        row = conn.execute(
            "SELECT pria.register_candidate(%s, %s, %s, %s, %s::jsonb, %s)",
            (dataset_date, artifact_uri, artifact_sha256, base_model, payload, actor()),
        ).fetchone()
        assert row is not None
        return row[0]

    return _transaction(db, work, what=f"register {artifact_uri}")


def record_gate_decision(
    db: Database, adapter_id: uuid.UUID | str, *, passed: bool, reason: str, metrics: dict
) -> None:
    """Record the promotion gate's decision for a candidate, with its inputs.

    Merges ``metrics`` into ``metrics_json`` (top-level keys replaced; ``safety_flags`` also
    sets the column), sets ``gate_passed`` / ``gate_reason`` and writes a ``gate`` event, in one
    transaction. Raises RegistryError for an unknown adapter or one that is not a candidate.
    """
    target = parse_adapter_id(adapter_id)
    payload = json.dumps(metrics, default=str)

    def work(conn: psycopg.Connection) -> None:
        conn.execute(
            "SELECT pria.record_gate_decision(%s, %s, %s, %s::jsonb, %s)",
            (target, passed, reason, payload, actor()),
        )

    _transaction(db, work, what=f"gate decision for {target}")


def parse_adapter_id(value: uuid.UUID | str) -> uuid.UUID:
    """``value`` as a UUID, or a RegistryError naming it."""
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value).strip())
    except ValueError:
        raise RegistryError(
            f"{value!r} is not an adapter id (a UUID); `pria-ml history` lists them"
        ) from None


def get_adapter(db: Database, adapter_id: uuid.UUID | str) -> Adapter:
    """The registry row of ``adapter_id``; RegistryError when there is none."""
    target = parse_adapter_id(adapter_id)
    with _reading(db) as conn:
        row = conn.execute(
            f"SELECT {_ADAPTER_COLUMNS} FROM pria.model_registry WHERE adapter_id = %s",
            (target,),
        ).fetchone()
    if row is None:
        raise RegistryError(
            f"no adapter {target} in model_registry; `pria-ml history` lists the adapters"
        )
    return Adapter(*row)


def artifact_referenced(db: Database, artifact_uri: str) -> bool:
    """Whether any registry row points at ``artifact_uri`` (such an object is never replaced)."""
    with _reading(db) as conn:
        row = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pria.model_registry WHERE artifact_uri = %s)",
            (artifact_uri,),
        ).fetchone()
    assert row is not None
    return bool(row[0])
