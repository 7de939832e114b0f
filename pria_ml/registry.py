"""The model registry: register candidates, record gate decisions, promote, roll back, archive.

Every state change is one call of one SQL function (``sql/migrations/0002_*`` onward), run in one
transaction: the database holds the invariants (at most one prod, an append-only event log,
rows changed only by those functions) and this module only calls them, retries a busy registry
a bounded number of times, and turns refusals into ``RegistryError``. Reading
``pria.registry_event`` tells the whole story; replaying it reproduces every status.
"""

from __future__ import annotations

import dataclasses
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
from pria_ml.errors import EndpointRotationFailed, RegistryBusy, RegistryError

if TYPE_CHECKING:
    import psycopg
    from rich.console import RenderableType

    from pria_ml.rotation import EndpointHook

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


@dataclass(frozen=True)
class Transition:
    """The outcome of promote / rollback: what is prod now, what it replaced, and the event."""

    changed: bool
    adapter_id: uuid.UUID
    previous_prod: uuid.UUID | None
    event_id: int | None
    message: str
    rotated: bool = False


def _transition(
    db: Database, sql: str, params: tuple, *, what: str, hook: EndpointHook | None
) -> Transition:
    def work(conn: psycopg.Connection) -> Transition:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return Transition(*row)

    transition = _transaction(db, work, what=what)
    log.debug("%s", transition.message)
    if hook is None:
        return transition
    event_id = transition.event_id if transition.changed else _unrotated_prod_event(db)
    if event_id is None:
        return transition
    _rotate(db, hook, event_id)
    return dataclasses.replace(transition, rotated=True)


def promote(
    db: Database,
    *,
    adapter_id: uuid.UUID | str | None = None,
    dataset_date: datetime.date | None = None,
    force: bool = False,
    reason: str | None = None,
    hook: EndpointHook | None = None,
) -> Transition:
    """Make an adapter prod: ``adapter_id``, or the gated candidate of ``dataset_date``.

    One transaction under the registry lock: the current prod is superseded (back to
    candidate, ``superseded_at`` set), the target becomes prod, a ``promote`` event is written
    and ``pria_model_endpoint`` is notified. A candidate without a passing gate decision is
    refused unless ``force`` with a ``reason`` (recorded in the event). Promoting the current
    prod is a no-op (``changed`` False). After the commit the endpoint ``hook`` is called.

    Raises RegistryError (unknown or archived adapter, refused gate, no gated candidate of the
    date), RegistryBusy, DatabaseUnavailable, EndpointRotationFailed (prod changed, hook failed).
    """
    if (adapter_id is None) == (dataset_date is None):
        raise RegistryError("promote needs exactly one of an adapter id or --date")
    target = None if adapter_id is None else parse_adapter_id(adapter_id)
    return _transition(
        db,
        "SELECT * FROM pria.promote(%s, %s, %s, %s, %s)",
        (target, dataset_date, force, reason, actor()),
        what=f"promote {target or dataset_date}",
        hook=hook,
    )


def rollback(
    db: Database,
    *,
    to: uuid.UUID | str | None = None,
    reason: str | None = None,
    hook: EndpointHook | None = None,
) -> Transition:
    """Bring back the adapter that was prod before the current one (from the event log), or
    ``to``, an adapter that was prod before.

    Same transaction, lock, event and notification as ``promote``; the gate is not asked
    again. Rolling back to the current prod is a no-op. Raises RegistryError (no prod, no
    previous prod, unknown / archived / never-prod target), RegistryBusy, DatabaseUnavailable,
    EndpointRotationFailed.
    """
    target = None if to is None else parse_adapter_id(to)
    return _transition(
        db,
        "SELECT * FROM pria.rollback(%s, %s, %s)",
        (target, reason, actor()),
        what=f"rollback to {target or 'previous prod'}",
        hook=hook,
    )


def archive(
    db: Database, *, older_than: datetime.timedelta = datetime.timedelta(days=7)
) -> list[uuid.UUID]:
    """Archive every former prod superseded more than ``older_than`` ago (spec: 7 days).

    One transaction; one ``archive`` event per adapter. Returns the archived adapter ids.
    """
    if older_than < datetime.timedelta(0):
        raise RegistryError(f"archive age must not be negative, got {older_than}")

    def work(conn: psycopg.Connection) -> list[uuid.UUID]:
        rows = conn.execute(
            "SELECT pria.archive_superseded(%s, %s)", (older_than, actor())
        ).fetchall()
        return [row[0] for row in rows]

    archived = _transaction(db, work, what="archive")
    log.debug("archived %d superseded adapters", len(archived))
    return archived


def current_prod(db: Database) -> Adapter | None:
    """The prod adapter, or None before the first promotion."""
    with _reading(db) as conn:
        row = conn.execute(
            f"SELECT {_ADAPTER_COLUMNS} FROM pria.model_registry WHERE status = 'prod'"
        ).fetchone()
    return None if row is None else Adapter(*row)


def adapters(db: Database, *, limit: int = 50) -> list[Adapter]:
    """The newest ``limit`` adapters, newest first."""
    with _reading(db) as conn:
        rows = conn.execute(
            f"SELECT {_ADAPTER_COLUMNS} FROM pria.model_registry"
            " ORDER BY created_at DESC, adapter_id LIMIT %s",
            (limit,),
        ).fetchall()
    return [Adapter(*row) for row in rows]


@dataclass(frozen=True)
class Event:
    """One ``pria.registry_event`` row, with the adapter's dataset date."""

    event_id: int
    occurred_at: datetime.datetime
    action: str
    adapter_id: uuid.UUID
    dataset_date: datetime.date
    from_status: str | None
    to_status: str | None
    previous_prod: uuid.UUID | None
    forced: bool
    reason: str | None
    actor: str
    detail: dict[str, Any]


def history(db: Database, *, limit: int = 30) -> list[Event]:
    """The newest ``limit`` registry events, newest first."""
    with _reading(db) as conn:
        rows = conn.execute(
            f"SELECT {', '.join(Event.__dataclass_fields__)} FROM pria.registry_history LIMIT %s",
            (limit,),
        ).fetchall()
    return [Event(*row) for row in rows]


def replay(events: list[Event]) -> dict[uuid.UUID, str]:
    """Every adapter's status as the event log tells it (``events`` in any order)."""
    state: dict[uuid.UUID, str] = {}
    for event in sorted(events, key=lambda e: e.event_id):
        if event.action == "register":
            state[event.adapter_id] = "candidate"
        elif event.action in ("promote", "rollback"):
            if event.previous_prod is not None:
                state[event.previous_prod] = "candidate"
            state[event.adapter_id] = "prod"
        elif event.action == "archive":
            state[event.adapter_id] = "archived"
    return state


def _unrotated_prod_event(db: Database) -> int | None:
    """The event that made the current prod prod, when no rotation call confirmed it."""
    with _reading(db) as conn:
        row = conn.execute(
            """
            SELECT e.event_id
              FROM pria.registry_event e
              JOIN pria.model_registry r ON r.adapter_id = e.adapter_id AND r.status = 'prod'
             WHERE e.action IN ('promote', 'rollback')
               AND NOT EXISTS (
                   SELECT 1 FROM pria.registry_event x
                    WHERE x.action = 'rotation' AND (x.detail ->> 'ok')::boolean
                      AND (x.detail ->> 'for_event')::bigint = e.event_id)
             ORDER BY e.event_id DESC
             LIMIT 1
            """
        ).fetchone()
    return None if row is None else row[0]


def _rotate(db: Database, hook: EndpointHook, event_id: int) -> None:
    """Call the rotation hook for prod-change ``event_id`` and record the outcome as an event."""
    with _reading(db) as conn:
        row = conn.execute(
            """
            SELECT e.event_id, e.action, e.adapter_id, e.previous_prod, r.dataset_date,
                   r.artifact_uri, r.artifact_sha256, r.base_model
              FROM pria.registry_event e JOIN pria.model_registry r USING (adapter_id)
             WHERE e.event_id = %s
            """,
            (event_id,),
        ).fetchone()
    assert row is not None
    keys = ("event_id", "action", "adapter_id", "previous_prod", "dataset_date")
    keys += ("artifact_uri", "artifact_sha256", "base_model")
    payload = {
        k: (str(v) if isinstance(v, uuid.UUID | datetime.date) else v)
        for k, v in zip(keys, row, strict=True)
    }
    try:
        result = hook.rotate(payload)
    except EndpointRotationFailed as exc:
        _record_rotation(db, event_id, ok=False, detail={"url": hook.url, "error": str(exc)})
        raise EndpointRotationFailed(
            f"prod is {payload['adapter_id']} in the registry (committed, event {event_id}), "
            f"but MODEL_ENDPOINT was NOT rotated: {exc}. Fix the hook, then run "
            f"`pria-ml promote {payload['adapter_id']}` to retry the rotation"
        ) from None
    _record_rotation(
        db,
        event_id,
        ok=True,
        detail={"url": hook.url, "status": result.status, "attempts": result.attempts},
    )
    log.info("endpoint rotated to %s (%d attempts)", payload["adapter_id"], result.attempts)


def _record_rotation(db: Database, event_id: int, *, ok: bool, detail: dict) -> None:
    """Best effort: a registry that went away after the change must not hide the outcome."""
    from pria_ml.errors import PriaError

    def work(conn: psycopg.Connection) -> None:
        conn.execute(
            "SELECT pria.record_rotation(%s, %s, %s::jsonb, %s)",
            (event_id, ok, json.dumps(detail), actor()),
        )

    try:
        _transaction(db, work, what=f"record rotation of event {event_id}")
    except PriaError as exc:
        log.error("could not record the rotation outcome of event %d: %s", event_id, exc)


def render_history(
    prod: Adapter | None, rows: list[Adapter], events: list[Event]
) -> RenderableType:
    """The status / history view: the prod adapter, every adapter's state, the newest events.

    Full adapter ids in the adapter table (copy them into promote / rollback --to); the event
    table shows their first 8 characters. Artifacts and metrics: ``get_adapter``.
    """
    from rich.box import SIMPLE
    from rich.console import Group
    from rich.markup import escape
    from rich.table import Table

    def utc(moment: datetime.datetime, spec: str = "%Y-%m-%d %H:%M") -> str:
        return moment.astimezone(datetime.UTC).strftime(spec)

    colours = {"prod": "bold green", "candidate": "cyan", "superseded": "yellow"}
    adapters_table = Table(
        title="model_registry (newest first)", title_justify="left", box=SIMPLE, pad_edge=False
    )
    for column in ("adapter_id", "date", "state", "gate", "safety"):
        adapters_table.add_column(column, no_wrap=True)
    for a in rows:
        adapters_table.add_row(
            str(a.adapter_id),
            a.dataset_date.isoformat(),
            f"[{colours.get(a.state, 'dim')}]{a.state}[/]",
            {None: "-", True: "passed", False: "[red]failed[/]"}[a.gate_passed],
            "-" if a.safety_flags is None else str(a.safety_flags),
        )
    events_table = Table(
        title="registry_event (newest first)", title_justify="left", box=SIMPLE, pad_edge=False
    )
    for column in ("#", "when (UTC)", "action", "adapter", "now", "replaced"):
        events_table.add_column(column, no_wrap=True)
    events_table.add_column("by, reason", overflow="fold", min_width=16)
    for e in events:
        note = escape(e.reason or "")
        if e.forced:
            note = f"[red]forced:[/] {note}"
        if e.action == "rotation":
            error = escape(str(e.detail.get("error", "")))
            note = "endpoint rotated" if e.detail.get("ok") else f"[red]rotation failed[/] {error}"
        events_table.add_row(
            str(e.event_id),
            utc(e.occurred_at, "%m-%d %H:%M"),
            e.action,
            str(e.adapter_id)[:8],
            e.to_status or "",
            "" if e.previous_prod is None else str(e.previous_prod)[:8],
            f"{escape(e.actor)} {note}".rstrip(),
        )
    headline = (
        "[bold]prod:[/] none yet"
        if prod is None
        else f"[bold]prod:[/] [green]{prod.adapter_id}[/] ({prod.dataset_date}, "
        f"promoted {utc(prod.promoted_at)} UTC)"
    )
    return Group(headline, adapters_table, events_table)
