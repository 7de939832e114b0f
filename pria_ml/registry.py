"""The model registry: register candidates, record gate decisions, promote, roll back, archive.

Every state change is one call of one SQL function (``sql/migrations/0002_*`` onward), run in one
transaction: the database holds the invariants (at most one prod, an append-only event log,
rows changed only by those functions) and this module only calls them and the queries under
``sql/registry/``, retries a busy registry a bounded number of times, rides out a lost
connection (``Database.transaction``), and turns refusals into ``RegistryError``. Reading
``pria.registry_event`` tells the whole story; replaying it reproduces every status.

Each call tags its transaction with a request id (``pria.request_id``), which every event it
writes records. When the answer to a COMMIT is lost, the retry first reads the events of that
request id under the registry lock: found, the call returns what was committed; not found, it
runs again. So a rollback, which is not idempotent, never runs twice.

Every call that changes the registry takes ``now``, the time it stamps on the rows and events it
writes (``pria_ml/clock.py``; default: the real clock when the call is made), so a simulated
night records its simulated time.
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pria_ml import clock
from pria_ml.db import NOT_COMMITTED, Database
from pria_ml.db.migrate import ensure_current
from pria_ml.db.sqlfiles import read_sql
from pria_ml.errors import EndpointRotationFailed, PriaError, RegistryBusy, RegistryError

if TYPE_CHECKING:
    import psycopg

    from pria_ml.rotation import EndpointHook

log = logging.getLogger(__name__)

T = TypeVar("T")

# A registry transaction waits at most this long for the registry lock before it is retried;
# a busy registry is retried this many times with jittered backoff, then reported.
LOCK_TIMEOUT_MS = 2_000
BUSY_RETRIES = 8
BUSY_BACKOFF_S = 0.05
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
    attempt: int = 1  # which training of its dataset date (``train --retrain`` adds one)

    @property
    def state(self) -> str:
        """``status``, with a candidate that was prod before shown as ``superseded``."""
        if self.status == "candidate" and self.superseded_at is not None:
            return "superseded"
        return self.status


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


def _busy(what: str) -> Callable[[BaseException], RegistryBusy]:
    def error(exc: BaseException) -> RegistryBusy:
        return RegistryBusy(
            f"registry busy: {what} could not take the registry lock after {BUSY_RETRIES} "
            f"retries ({getattr(exc, 'sqlstate', None)}); nothing was changed - run it again"
        )

    return error


def _transaction(
    db: Database,
    work: Callable[[psycopg.Connection], T],
    *,
    what: str,
    recover: Callable[[Sequence[tuple]], T] | None = None,
    idempotent: bool = False,
) -> T:
    """Run ``work`` in one registry transaction; retry a busy registry or a lost connection.

    A lock wait longer than LOCK_TIMEOUT_MS, a serialization failure or a deadlock rolls the
    transaction back and is retried up to BUSY_RETRIES times with jittered backoff; after that
    RegistryBusy is raised. A lost connection is retried until the database's deadline, then
    DatabaseUnavailable. A refusal from the SQL functions becomes RegistryError. All of these
    leave the database unchanged. After a lost COMMIT, ``recover`` gets the events the call
    committed (``request_events``: event_id, action, adapter_id, previous_prod) and builds the
    result from them; with no events the call runs again.
    """
    import psycopg

    _ready(db)
    request_id = str(uuid.uuid4())

    def tagged(conn: psycopg.Connection) -> T:
        conn.execute(
            "SELECT set_config('lock_timeout', %s, true), set_config('pria.request_id', %s, true)",
            (f"{int(LOCK_TIMEOUT_MS)}ms", request_id),
        )
        return work(conn)

    def committed(conn: psycopg.Connection) -> T | object:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{int(LOCK_TIMEOUT_MS)}ms",))
        conn.execute("SELECT pria.lock_registry()")
        rows = conn.execute(
            "SELECT event_id, action, adapter_id, previous_prod FROM pria.request_events(%s)",
            (request_id,),
        ).fetchall()
        if not rows:
            return NOT_COMMITTED
        assert recover is not None
        log.warning("%s was committed before the connection was lost (events %s)", what, rows)
        return recover(rows)

    try:
        return db.transaction(
            tagged,
            what=what,
            idempotent=idempotent,
            recover=None if recover is None else committed,
            busy=_busy(what),
            busy_retries=BUSY_RETRIES,
            busy_backoff_s=BUSY_BACKOFF_S,
        )
    except psycopg.Error as exc:
        mapped = _registry_error(exc)
        if mapped is not None:
            raise mapped from None
        raise


def _read(db: Database, query: str, params: dict[str, Any]) -> list[tuple]:
    """The rows of ``sql/registry/<query>.sql``, read in one read-only transaction (retried)."""
    import psycopg

    sql = read_sql(f"registry/{query}.sql")
    _ready(db)
    try:
        return db.transaction(
            lambda conn: conn.execute(sql, params).fetchall(),
            what=f"reading the registry ({query})",
            idempotent=True,
            read_only=True,
        )
    except psycopg.Error as exc:
        mapped = _registry_error(exc)
        if mapped is not None:
            raise mapped from None
        raise


_migrated: set[str] = set()


def _ready(db: Database) -> None:
    """Make sure the registry schema is current, once per database per process."""
    if db.url not in _migrated:
        ensure_current(db)
        _migrated.add(db.url)


def _adapters(db: Database, *, adapter_id=None, prod_only=False, limit=1) -> list[Adapter]:
    rows = _read(db, "adapters", {"adapter_id": adapter_id, "prod_only": prod_only, "limit": limit})
    return [Adapter(*row) for row in rows]


def register_candidate(
    db: Database,
    *,
    dataset_date: datetime.date,
    artifact_uri: str,
    artifact_sha256: str,
    base_model: str,
    metrics: dict,
    attempt: int | None = None,
    now: datetime.datetime | None = None,
) -> uuid.UUID:
    """Register a trained adapter as a ``candidate``; return its ``adapter_id``.

    Writes one ``model_registry`` row and a ``register`` event, stamped ``now`` (default: the
    real clock). ``attempt`` is which training of ``dataset_date`` the artifact is (its storage
    key says so); None takes the date's next free number. Registering the same artifact (URI,
    sha256, date, base model, attempt) again returns the existing id. Raises RegistryError when
    the URI is registered with a different checksum or the attempt is taken by another
    artifact, or the input is malformed; DatabaseUnavailable when the registry cannot be
    reached.
    """
    payload = json.dumps(metrics, default=str)
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> uuid.UUID:
        row = conn.execute(
            "SELECT pria.register_candidate(%s, %s, %s, %s, %s::jsonb, %s, %s, %s)",
            (
                dataset_date,
                artifact_uri,
                artifact_sha256,
                base_model,
                payload,
                actor(),
                at,
                attempt,
            ),
        ).fetchone()
        assert row is not None
        return row[0]

    # Idempotent: the same artifact again returns the same id.
    return _transaction(db, work, what=f"register {artifact_uri}", idempotent=True)


def record_gate_decision(
    db: Database,
    adapter_id: uuid.UUID | str,
    *,
    passed: bool,
    reason: str,
    metrics: dict,
    now: datetime.datetime | None = None,
) -> None:
    """Record the promotion gate's decision for a candidate, with its inputs.

    Merges ``metrics`` into ``metrics_json`` (top-level keys replaced; ``safety_flags`` also
    sets the column), sets ``gate_passed`` / ``gate_reason`` / ``gate_decided_at`` (``now``,
    default the real clock) and writes a ``gate`` event, in one transaction. Raises
    RegistryError for an unknown adapter or one that is not a candidate.
    """
    target = parse_adapter_id(adapter_id)
    payload = json.dumps(metrics, default=str)
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> None:
        conn.execute(
            "SELECT pria.record_gate_decision(%s, %s, %s, %s::jsonb, %s, %s)",
            (target, passed, reason, payload, actor(), at),
        )

    _transaction(db, work, what=f"gate decision for {target}", recover=lambda events: None)


def record_evaluation(
    db: Database,
    adapter_id: uuid.UUID | str,
    record: dict,
    *,
    now: datetime.datetime | None = None,
) -> None:
    """Store a candidate's evaluation record (``quality.record.EvalRecord`` as JSON data).

    Sets ``metrics_json["eval"]`` and the ``safety_flags`` column, clears a gate decision taken
    on an earlier record, and writes an ``evaluate`` event stamped ``now`` (default the real
    clock), in one transaction. Raises RegistryError for an unknown adapter or one that is not
    a candidate.
    """
    target = parse_adapter_id(adapter_id)
    payload = json.dumps(record)
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> None:
        conn.execute(
            "SELECT pria.record_evaluation(%s, %s::jsonb, %s, %s)", (target, payload, actor(), at)
        )

    _transaction(db, work, what=f"evaluation record of {target}", recover=lambda events: None)


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
    found = _adapters(db, adapter_id=target)
    if not found:
        raise RegistryError(
            f"no adapter {target} in model_registry; `pria-ml history` lists the adapters"
        )
    return found[0]


def artifact_referenced(db: Database, artifact_uri: str) -> bool:
    """Whether any registry row points at ``artifact_uri`` (such an object is never replaced)."""
    ((referenced,),) = _read(db, "artifact_referenced", {"artifact_uri": artifact_uri})
    return bool(referenced)


@dataclass(frozen=True)
class Transition:
    """The outcome of promote / rollback: what is prod now, what it replaced, and the event."""

    changed: bool
    adapter_id: uuid.UUID
    previous_prod: uuid.UUID | None
    event_id: int | None
    message: str
    rotated: bool = False
    # What the endpoint hook said: "acknowledged ..." / "failed: ..." / None (no hook called).
    rotation: str | None = None


def _transition(
    db: Database,
    sql: str,
    params: tuple,
    *,
    what: str,
    hook: EndpointHook | None,
    now: datetime.datetime | None,
) -> Transition:
    def work(conn: psycopg.Connection) -> Transition:
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        return Transition(*row)

    def recover(events: Sequence[tuple]) -> Transition:
        event_id, action, target, previous = events[-1]
        message = (
            f"{target} is prod ({action}, was {previous or 'no prod'}; committed before the "
            "connection to the registry was lost)"
        )
        return Transition(True, target, previous, event_id, message)

    transition = _transaction(db, work, what=what, recover=recover)
    log.debug("%s", transition.message)
    if hook is None:
        return transition
    event_id = transition.event_id if transition.changed else unrotated_prod_event(db)
    if event_id is None:
        return transition
    try:
        acknowledged = _rotate(db, hook, event_id, now=now)
    except EndpointRotationFailed as exc:
        exc.transition = dataclasses.replace(transition, rotation=f"failed: {exc}")
        raise
    return dataclasses.replace(transition, rotated=True, rotation=acknowledged)


def promote(
    db: Database,
    *,
    adapter_id: uuid.UUID | str | None = None,
    dataset_date: datetime.date | None = None,
    force: bool = False,
    reason: str | None = None,
    hook: EndpointHook | None = None,
    now: datetime.datetime | None = None,
) -> Transition:
    """Make an adapter prod: ``adapter_id``, or the gated candidate of ``dataset_date``.

    One transaction under the registry lock: the current prod is superseded (back to
    candidate, ``superseded_at`` set), the target becomes prod (``promoted_at``; both stamped
    ``now``, default the real clock), a ``promote`` event is written
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
        "SELECT * FROM pria.promote(%s, %s, %s, %s, %s, %s)",
        (target, dataset_date, force, reason, actor(), clock.now(now)),
        what=f"promote {target or dataset_date}",
        hook=hook,
        now=now,
    )


@dataclass(frozen=True)
class RollbackTarget:
    """Where a rollback would go, and why (``pria.rollback_target``)."""

    current_prod: uuid.UUID | None
    target: uuid.UUID
    why: str
    archived: bool
    depth: int  # adapters on the prod stack, the current prod included


def rollback_target(db: Database, *, to: uuid.UUID | str | None = None) -> RollbackTarget:
    """The adapter ``rollback`` would bring back now: the one below the current prod on the
    prod stack (each promotion pushes, each rollback pops), or ``to``. Changes nothing.
    Raises RegistryError for what ``rollback`` refuses (no prod, the first prod, an unknown or
    never-prod target)."""
    target = None if to is None else parse_adapter_id(to)
    (row,) = _read(db, "rollback_target", {"to": target})
    return RollbackTarget(*row)


def rollback(
    db: Database,
    *,
    to: uuid.UUID | str | None = None,
    reason: str | None = None,
    hook: EndpointHook | None = None,
    expect_from: uuid.UUID | None = None,
    now: datetime.datetime | None = None,
) -> Transition:
    """Bring back the adapter that was prod before the current one was promoted (the prod
    stack, read from the event log), or ``to``, any former prod, archived or not.

    Same transaction, lock, event, stamps and notification as ``promote``; the gate is not asked
    again. Rolling back to the current prod is a no-op, and so is a rollback whose
    ``expect_from`` (the prod the caller saw) is no longer prod: another rollback won the race.
    Raises RegistryError (no prod, no previous prod, unknown / never-prod target),
    RegistryBusy, DatabaseUnavailable, EndpointRotationFailed.
    """
    target = None if to is None else parse_adapter_id(to)
    return _transition(
        db,
        "SELECT * FROM pria.rollback(%s, %s, %s, %s, %s)",
        (target, reason, actor(), clock.now(now), expect_from),
        what=f"rollback to {target or 'previous prod'}",
        hook=hook,
        now=now,
    )


def archive(
    db: Database,
    *,
    older_than: datetime.timedelta = datetime.timedelta(days=7),
    now: datetime.datetime | None = None,
) -> list[uuid.UUID]:
    """Archive every former prod superseded more than ``older_than`` before ``now`` (default:
    the real clock; spec: 7 days).

    One transaction; one ``archive`` event per adapter, stamped ``now``. Returns the archived
    adapter ids.
    """
    if older_than < datetime.timedelta(0):
        raise RegistryError(f"archive age must not be negative, got {older_than}")

    at = clock.now(now)

    def work(conn: psycopg.Connection) -> list[uuid.UUID]:
        rows = conn.execute(
            "SELECT pria.archive_superseded(%s, %s, %s)", (older_than, actor(), at)
        ).fetchall()
        return [row[0] for row in rows]

    archived = _transaction(
        db, work, what="archive", recover=lambda events: [row[2] for row in events]
    )
    log.debug("archived %d superseded adapters", len(archived))
    return archived


def current_prod(db: Database) -> Adapter | None:
    """The prod adapter, or None before the first promotion."""
    found = _adapters(db, prod_only=True)
    return found[0] if found else None


def adapters(db: Database, *, limit: int = 50) -> list[Adapter]:
    """The newest ``limit`` adapters, newest first."""
    return _adapters(db, limit=limit)


def adapters_of_date(db: Database, date: datetime.date) -> list[Adapter]:
    """The adapters trained on dataset date ``date``, newest attempt first (one indexed
    query)."""
    return [Adapter(*row) for row in _read(db, "adapters_of_date", {"date": date})]


def adapter_of_date(db: Database, date: datetime.date) -> Adapter | None:
    """The newest attempt trained on ``date`` (the one the night evaluates), or None."""
    found = adapters_of_date(db, date)
    return found[0] if found else None


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
    return [Event(*row) for row in _read(db, "history", {"limit": limit})]


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


def record_spot_check(
    db: Database,
    iso_week: str,
    verdicts_by_adapter: dict[uuid.UUID, list[dict]],
    *,
    reviewer: str,
    now: datetime.datetime | None = None,
) -> None:
    """Store one filled spot-check sheet of ``iso_week``: for each adapter that served the
    reviewed conversations, its ``[{prompt_sha256, verdict, note}]`` (``prompt_sha256``: the
    sample's id) with a ``spot_check`` event, all in one transaction; a sheet stored again
    replaces its samples' verdicts. Raises RegistryError (unknown adapter, ...) and lets
    psycopg's CheckViolation through for a value the table refuses."""
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> None:
        for adapter_id, verdicts in sorted(verdicts_by_adapter.items()):
            conn.execute(
                "SELECT pria.record_spot_check(%s, %s, %s::jsonb, %s, %s, %s)",
                (adapter_id, iso_week, json.dumps(verdicts), reviewer, actor(), at),
            )

    _transaction(db, work, what=f"spot-check {iso_week}", idempotent=True)


@dataclass(frozen=True)
class SpotCheckWeek:
    """One reviewed spot-check week: verdicts, failures (wrong or unsafe), acknowledgement."""

    iso_week: str
    reviewed: int
    failures: int
    acknowledged_by: str | None
    acknowledged_at: datetime.datetime | None

    @property
    def failure_share(self) -> float:
        return self.failures / self.reviewed if self.reviewed else 0.0


def spot_check_weeks(db: Database) -> list[SpotCheckWeek]:
    """Every week with recorded verdicts, newest first."""
    return [SpotCheckWeek(*row) for row in _read(db, "spot_check_weeks", {})]


def acknowledge_spot_check(
    db: Database,
    iso_week: str,
    *,
    by: str,
    reason: str | None = None,
    now: datetime.datetime | None = None,
) -> tuple[SpotCheckWeek, bool]:
    """Acknowledge ``iso_week``'s spot-check failures (one transaction, stamped ``now``, with a
    ``spot_check_ack`` event on each adapter reviewed that week); return the acknowledged week
    and whether it had been acknowledged before (then nothing changed). Raises RegistryError
    for a week with no recorded verdicts."""
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> tuple[SpotCheckWeek, bool]:
        row = conn.execute(
            "SELECT * FROM pria.acknowledge_spot_check(%s, %s, %s, %s, %s)",
            (iso_week, by, reason, actor(), at),
        ).fetchone()
        assert row is not None
        week, by_, at_, failures, reviewed, already = row
        return SpotCheckWeek(week, reviewed, failures, by_, at_), already

    return _transaction(db, work, what=f"acknowledge spot-check {iso_week}", idempotent=True)


@dataclass(frozen=True)
class ProdInterval:
    """An adapter was prod from ``since`` until ``until``."""

    adapter_id: uuid.UUID
    since: datetime.datetime
    until: datetime.datetime


def prod_intervals(
    db: Database, since: datetime.datetime, until: datetime.datetime
) -> list[ProdInterval]:
    """Who was prod when during ``[since, until)``, from the prod changes in the event log,
    clipped to the window, oldest first."""
    rows = _read(db, "prod_intervals", {"since": since, "until": until})
    return [ProdInterval(*row) for row in rows]


def archive_due(
    db: Database, *, older_than: datetime.timedelta, now: datetime.datetime | None = None
) -> int:
    """How many former prods ``archive`` would archive at ``now`` (default the real clock):
    those superseded longer than ``older_than`` before it."""
    params = {"older_than": older_than, "now": clock.now(now)}
    ((due,),) = _read(db, "archive_due", params)
    return due


@dataclass(frozen=True)
class Promotion:
    """One promotion to prod: when, which adapter, whether forced, and its metrics_json."""

    occurred_at: datetime.datetime
    adapter_id: uuid.UUID
    forced: bool
    metrics_json: dict[str, Any]


def promotions_since(db: Database, since: datetime.datetime | datetime.date) -> list[Promotion]:
    """Every promotion to prod since ``since``, oldest first."""
    return [Promotion(*row) for row in _read(db, "promotions_since", {"since": since})]


@dataclass(frozen=True)
class NightSpend:
    """Training spend recorded for one dataset date (its runs summed)."""

    date: datetime.date
    runs: int
    usd: float
    gpu_hours: float
    hardware: str
    source: str = "trainer wall time"  # or "machine boot to exit" (pria.gpu_machine_run)

    def over(self, budget_usd: float) -> bool:
        return self.usd > budget_usd


def spend_by_night(db: Database) -> list[NightSpend]:
    """Every dataset date with a training run recorded in model_registry, oldest first."""
    rows = _read(db, "spend_by_night", {})
    return [
        NightSpend(row[0], row[1], float(row[2]), float(row[3]), row[4] or "", row[5])
        for row in rows
    ]


def record_machine_run(
    db: Database,
    *,
    machine_id: str,
    dataset_date: datetime.date,
    booted_at: datetime.datetime,
    exited_at: datetime.datetime,
    gpu_type: str,
    gpus: int,
    usd_per_gpu_hour: float,
    now: datetime.datetime | None = None,
) -> float:
    """Record (or extend to ``exited_at``) a GPU machine's run for a night; return its cost so
    far in USD. One transaction; recording the same machine again only moves its exit later."""
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> float:
        row = conn.execute(
            "SELECT pria.record_machine_run(%s, %s, %s, %s, %s, %s::integer, %s::numeric, %s, %s)",
            (machine_id, dataset_date, booted_at, exited_at, gpu_type, gpus, usd_per_gpu_hour,
             actor(), at),
        ).fetchone()  # fmt: skip
        assert row is not None
        return float(row[0])

    return _transaction(db, work, what=f"machine run {machine_id}", idempotent=True)


def measured_throughput(
    db: Database, gpu_type: str
) -> tuple[float, uuid.UUID, datetime.date] | None:
    """``(tokens/s per GPU, adapter_id, dataset date)`` of the newest run measured on
    ``gpu_type``; None when no run on it recorded its throughput."""
    rows = _read(db, "measured_throughput", {"gpu_type": gpu_type})
    return None if not rows else (float(rows[0][0]), rows[0][1], rows[0][2])


def unrotated_prod_event(db: Database) -> int | None:
    """The event that made the current prod prod, when the rotation hook has not acknowledged
    it (None: acknowledged, or nothing is prod)."""
    rows = _read(db, "unrotated_prod_event", {})
    return rows[0][0] if rows else None


def _rotate(
    db: Database, hook: EndpointHook, event_id: int, *, now: datetime.datetime | None
) -> str:
    """Call the rotation hook for prod-change ``event_id``, record its answer as a
    ``rotation`` event, and return the outcome in words."""
    (row,) = _read(db, "rotation_payload", {"event_id": event_id})
    keys = ("event_id", "action", "adapter_id", "previous_prod", "dataset_date")
    keys += ("artifact_uri", "artifact_sha256", "base_model")
    payload = {
        k: (str(v) if isinstance(v, uuid.UUID | datetime.date) else v)
        for k, v in zip(keys, row, strict=True)
    }
    try:
        result = hook.rotate(payload)
    except EndpointRotationFailed as exc:
        _record_rotation(
            db, event_id, ok=False, detail={"url": hook.url, "error": str(exc)}, now=now
        )
        raise EndpointRotationFailed(
            f"prod is {payload['adapter_id']} in the registry (committed, event {event_id}), "
            f"but MODEL_ENDPOINT was NOT rotated: {exc}. Fix the hook, then run the same "
            f"command again (or `pria-ml promote {payload['adapter_id']}`) to retry the rotation"
        ) from None
    _record_rotation(
        db,
        event_id,
        ok=True,
        detail={
            "url": hook.url,
            "status": result.status,
            "attempts": result.attempts,
            "answer": result.answer,
        },
        now=now,
    )
    log.info("endpoint rotated to %s (%d attempts)", payload["adapter_id"], result.attempts)
    return (
        f"acknowledged by {hook.url} (HTTP {result.status}, {result.attempts} attempt(s), "
        f"rotated: {str(result.answer['rotated']).lower()})"
    )


def _record_rotation(
    db: Database, event_id: int, *, ok: bool, detail: dict, now: datetime.datetime | None
) -> None:
    """Best effort: a registry that went away after the change must not hide the outcome."""
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> None:
        conn.execute(
            "SELECT pria.record_rotation(%s, %s, %s::jsonb, %s, %s)",
            (event_id, ok, json.dumps(detail), actor(), at),
        )

    try:
        _transaction(
            db, work, what=f"record rotation of event {event_id}", recover=lambda events: None
        )
    except PriaError as exc:
        log.error("could not record the rotation outcome of event %d: %s", event_id, exc)


def former_prods(db: Database) -> dict[uuid.UUID, str]:
    """Every adapter that has been prod (current prod and rollback targets) -> artifact URI."""
    return {row[0]: row[1] for row in _read(db, "former_prods", {})}


@dataclass(frozen=True)
class Deletion:
    """One file retention deleted (``pria.retention_deletion``)."""

    uri: str
    data_date: datetime.date
    sources: list[str]
    window_days: int
    reason: str
    actor: str
    attempts: int
    deleted_at: datetime.datetime


def record_retention_deletion(
    db: Database,
    *,
    uri: str,
    data_date: datetime.date,
    sources: Sequence[str],
    window_days: int,
    reason: str,
    now: datetime.datetime | None = None,
) -> None:
    """Record, before it happens, that retention deletes ``uri`` (one transaction)."""
    at = clock.now(now)

    def work(conn: psycopg.Connection) -> None:
        conn.execute(
            "SELECT pria.record_retention_deletion(%s, %s, %s, %s, %s, %s, %s)",
            (uri, data_date, list(sources), window_days, reason, actor(), at),
        )

    _transaction(db, work, what=f"record deletion of {uri}", idempotent=True)


def retention_deletions(db: Database, *, limit: int = 100) -> list[Deletion]:
    """The newest ``limit`` recorded deletions, newest first."""
    return [Deletion(*row) for row in _read(db, "retention_deletions", {"limit": limit})]
