"""``pria-ml nightly --date D``: one night of the learning loop as one resumable command.

    extract -> build-features -> train -> eval -> gate -> promote -> archive -> retention

Each stage knows whether its output for D is complete (``complete(settings, date)``: its
manifest, or its registry row, exists and the files match their recorded sha256), and a
complete stage is skipped. So a night that was killed anywhere, even by SIGKILL, is resumed by
running the same command again: the finished stages are skipped, the interrupted one starts
over (training resumes from its last checkpoint), and the night ends where an uninterrupted one
would have. A second run of a finished night skips every stage.

Two runs for the same date never overlap: the run holds a PostgreSQL advisory lock on the
registry database for its whole duration; the server releases it when the run's connection
ends, however the run ends. A second run exits 12 and names the holder.

The run ends with a table of every stage (status, time, cost), the gate's decision with its
reasons, metrics for Prometheus and, on a failure or a blocked gate, a Slack message. Exit code:
0 when the night finished, 11 when the gate blocked the candidate, 12 when the date is locked,
otherwise the failed stage's own code (docs/RUNBOOK.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pria_ml import clock, evaluate, extract, features, gate, registry, train
from pria_ml.db import database
from pria_ml.db.migrate import ensure_current
from pria_ml.db.sqlfiles import read_sql
from pria_ml.errors import ConfigError, NightlyLocked, PriaError, RegistryError
from pria_ml.operations import monitoring, notify, retention, transitions
from pria_ml.operations.night import (
    BLOCKED,
    DONE,
    FAILED,
    NOT_RUN,
    SKIPPED,
    STAGES,
    GateOutcome,
    NightlyReport,
    StageReport,
)
from pria_ml.quality import record
from pria_ml.train import PROFILES

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pria_ml.db import Database
    from pria_ml.registry import Adapter
    from pria_ml.settings import Settings
    from pria_ml.train import TrainConfig

log = logging.getLogger(__name__)

LOCK_CLASS = 0x50524941 & 0x7FFFFFFF  # "PRIA": the advisory-lock namespace of nightly runs
ARCHIVE_AFTER = dt.timedelta(days=7)  # spec section 7: old prod archived after 7 days


@dataclass(frozen=True)
class Selection:
    """Which stages this run may run, and which one ``--force`` redoes."""

    first: str = STAGES[0]
    last: str = STAGES[-1]
    force: bool = False

    def __post_init__(self) -> None:
        for option, name in (("--from", self.first), ("--until", self.last)):
            if name not in STAGES:
                raise ConfigError(f"{option} {name!r} is not a stage; stages: {', '.join(STAGES)}")
        if STAGES.index(self.first) > STAGES.index(self.last):
            raise ConfigError(
                f"--from {self.first} comes after --until {self.last}; "
                f"stages run in this order: {', '.join(STAGES)}"
            )

    def selected(self, stage: str) -> bool:
        return STAGES.index(self.first) <= STAGES.index(stage) <= STAGES.index(self.last)


# ---------------------------------------------------------------------------------------------
# The lock


def lock_name(date: dt.date) -> str:
    """The application_name the lock's connection carries: who runs the night, from where."""
    host = socket.gethostname()[:24]
    return f"pria-ml nightly {date.isoformat()} {host}:{os.getpid()}"[:63]


@contextlib.contextmanager
def night_lock(db: Database, date: dt.date) -> Iterator[None]:
    """Hold the nightly lock of ``date`` for the duration of the block.

    Raises NightlyLocked, naming the holder's host, pid and start time, when another run holds
    it. The lock lives as long as this connection: a killed run releases it with its socket.
    """
    import psycopg

    params = {"class": LOCK_CLASS, "date": date.toordinal()}
    try:
        conn = psycopg.connect(
            db.url, autocommit=True, application_name=lock_name(date), connect_timeout=5
        )
    except psycopg.Error as exc:
        raise db.unavailable(exc) from exc
    with conn:
        row = conn.execute(read_sql("ops/nightly_try_lock.sql"), params).fetchone()
        if not (row and row[0]):
            holder = conn.execute(read_sql("ops/nightly_lock_holder.sql"), params).fetchone()
            who = (
                f"{holder[0] or 'an unnamed session'} (connected {holder[1]:%Y-%m-%d %H:%M:%S %Z}"
                f" from {holder[2]})"
                if holder
                else "a run that has just finished"
            )
            raise NightlyLocked(
                f"the nightly of {date} is already running: {who}; wait for it, or stop that "
                "process (its lock is released when it exits) and run this again"
            )
        log.debug("holding the nightly lock of %s as %r", date, lock_name(date))
        yield


# ---------------------------------------------------------------------------------------------
# The stages: each has `complete` (is its output for D there and intact?) and `run`.


@dataclass
class Night:
    """What the stages of one run share."""

    settings: Settings
    date: dt.date
    train_config: TrainConfig
    db: Database
    now: dt.datetime | None = None  # what every stage stamps; None: the real clock at the time


def _adapter(night: Night) -> Adapter | None:
    """The adapter trained on the night's date, or None."""
    return registry.adapter_of_date(night.db, night.date)


def _need_adapter(night: Night) -> Adapter:
    adapter = _adapter(night)
    if adapter is None:
        raise RegistryError(
            f"no adapter trained on {night.date} in model_registry: run "
            f"`pria-ml nightly --date {night.date} --from train`"
        )
    return adapter


def _extract_complete(night: Night) -> bool:

    return extract.complete(night.settings, night.date)


def _extract_run(night: Night) -> str:

    # A stale or damaged manifest may exist (that is why the stage is running): replace it.
    result = extract.run(night.settings, night.date, force=True, now=night.now)
    rows = result.manifest["rows"]
    return f"{rows['raw']} rows, {rows['quarantined']} quarantined"


def _features_complete(night: Night) -> bool:

    return features.complete(night.settings, night.date)


def _features_run(night: Night) -> str:

    result = features.build(night.settings, night.date, now=night.now)
    return ", ".join(f"{n} {s['rows']}" for n, s in result.manifest["splits"].items())


def _train_complete(night: Night) -> bool:

    return train.complete(night.settings, night.date)


def _train_run(night: Night) -> str:
    # An adapter of the date that is not complete (trained on a train split the features no
    # longer hold, or its file damaged) or forced is kept as it is, and a new attempt is
    # trained beside it: that is how "patch filters and retry" reaches a trained date.
    retrain = _adapter(night) is not None
    result = train.run(
        night.settings, night.date, night.train_config, retrain=retrain, now=night.now
    )
    return train_detail(result)


def train_detail(result: train.TrainResult) -> str:
    """The train stage's report line; a non-main process of a multi-GPU launch registers
    nothing and says so."""
    steps = result.metrics["steps"]
    if result.adapter_id is None:
        index = result.metrics["process_index"]
        return f"process {index} trained {steps} steps; the main process registers the candidate"
    return f"candidate {result.adapter_id} (attempt {result.plan.attempt}), {steps} steps"


def _eval_complete(night: Night) -> bool:

    return evaluate.complete(night.settings, night.date)


def _eval_run(night: Night) -> str:
    return f"adapter {evaluate.run(night.settings, night.date, now=night.now).adapter_id}"


def _gate_complete(night: Night) -> bool:
    return gate.complete(night.settings, night.date)


def _gate_run(night: Night) -> str:
    result = gate.run(night.settings, night.date, now=night.now)
    return "passed" if result.decision.passed else "blocked"


def _promote_complete(night: Night) -> bool:
    # Promoted once is enough: a later rollback must not be undone by re-running the night.
    # But a promotion the endpoint hook never acknowledged is not done: the rerun retries it.
    adapter = _need_adapter(night)
    if adapter.promoted_at is None:
        return False
    return adapter.status != "prod" or transitions.rotation_complete(night.settings)


def _promote_run(night: Night) -> str:

    # The adapter the gate just judged (the newest attempt), by id: promoting "the gated
    # candidate of D" would stop at an older attempt that is prod already.
    adapter = _need_adapter(night)
    transition = transitions.promote(night.settings, adapter_id=adapter.adapter_id, now=night.now)
    return transition.message


def _archive_complete(night: Night) -> bool:
    return registry.archive_due(night.db, older_than=ARCHIVE_AFTER, now=night.now) == 0


def _archive_run(night: Night) -> str:

    archived = registry.archive(night.db, older_than=ARCHIVE_AFTER, now=night.now)
    return f"{len(archived)} archived"


def _retention_complete(night: Night) -> bool:
    return not retention.plan(night.settings, now=night.now).due


def _retention_run(night: Night) -> str:
    report = retention.run(night.settings, now=night.now)
    return f"{len(report.due)} files past their retention window deleted"


_STAGES: dict[str, tuple[Callable[[Night], bool], Callable[[Night], str]]] = {
    "extract": (_extract_complete, _extract_run),
    "build-features": (_features_complete, _features_run),
    "train": (_train_complete, _train_run),
    "eval": (_eval_complete, _eval_run),
    "gate": (_gate_complete, _gate_run),
    "promote": (_promote_complete, _promote_run),
    "archive": (_archive_complete, _archive_run),
    "retention": (_retention_complete, _retention_run),
}


# ---------------------------------------------------------------------------------------------
# The night


def run(
    settings: Settings,
    date: dt.date,
    *,
    selection: Selection | None = None,
    train_config: TrainConfig | None = None,
    now: dt.datetime | None = None,
) -> NightlyReport:
    """Run the night of ``date``: every selected stage whose output is not complete, in order.

    Args:
        settings: every part's settings; the registry database also holds the lock.
        date: the dataset date D.
        selection: ``--from`` / ``--until`` / ``--force`` (default: the whole chain, skipping
            complete stages). ``force`` redoes the ``--from`` stage even when it is complete;
            each later stage still runs only when its output is incomplete or stale.
        train_config: training options (default: the ``spec`` profile).
        now: the time the night stamps on what it records (manifests, registry rows and
            events, the report); default the real clock at each stamp. A simulated night
            passes its simulated time (``pria_ml/clock.py``).

    Returns:
        The report of every stage; ``report.error`` holds the failure that stopped the night
        (the stages after it are ``not run``), ``report.exit_code`` what CI should see.

    Raises:
        NightlyLocked: another run holds the date (nothing was done, nothing is reported).
        DatabaseUnavailable: the registry database cannot be reached for the lock.

    Never raises for a stage's failure: it is reported, notified and exported as metrics.
    """

    selection = selection or Selection()
    night = Night(settings, date, train_config or PROFILES["spec"], database(settings), now)
    report = NightlyReport(date, [StageReport(s) for s in STAGES], clock.now(now))
    started = time.monotonic()
    # The gate's decision belongs to this run's report only when the run reaches the gate.
    gated = selection.selected("gate") or selection.selected("promote")
    with night_lock(night.db, date):
        ensure_current(night.db)
        _record_machine(night)
        log.info("nightly %s: stages %s .. %s", date, selection.first, selection.last)
        for stage in report.stages:
            if not selection.selected(stage.stage):
                continue
            if stage.stage == "promote":
                _record_gate(night, report)
                if report.blocked:
                    stage.status, stage.detail = BLOCKED, "the gate blocked the candidate"
                    continue
            _run_stage(night, stage, force=selection.force and stage.stage == selection.first)
            if stage.status == FAILED:
                report.error = stage.error
                break
        if gated:
            _record_gate(night, report)
        report.finished_at = clock.now(now)
        report.seconds = time.monotonic() - started
        report.adapter = _adapter_or_none(night)
        _record_machine(night)
    # Reporting never fails the night: each of these logs its own trouble and returns.
    monitoring.publish(settings, report)
    if report.error is not None:
        notify.stage_failed(settings, report)
    elif report.blocked:
        notify.gate_blocked(settings, report)
    return report


def _record_machine(night: Night) -> None:
    """On a GPU machine (PRIA_GPU_MACHINE), record its run from boot to now as the night's
    cost: at the start (so a killed run still bills its time so far) and at the end. Real
    time, even in a simulated night: it is what the machine bills. Never fails the night."""
    settings = night.settings
    if not settings.gpu_machine:
        return
    booted = clock.machine_booted_at()
    try:
        usd = registry.record_machine_run(
            night.db,
            machine_id=f"{socket.gethostname()}@{booted.isoformat()}",
            dataset_date=night.date,
            booted_at=booted,
            exited_at=clock.system(),
            gpu_type=settings.tier.gpu_type,
            gpus=settings.gpu_machine_gpus,
            usd_per_gpu_hour=settings.tier.usd_per_gpu_hour,
            now=night.now,
        )
    except PriaError as exc:
        log.error("could not record this GPU machine's time for %s: %s", night.date, exc)
        return
    log.info("GPU machine since %s: $%.2f so far", booted.isoformat(), usd)


def _run_stage(night: Night, stage: StageReport, *, force: bool) -> None:
    complete, work = _STAGES[stage.stage]
    started = time.monotonic()
    try:
        if not force and complete(night):
            stage.status, stage.detail = SKIPPED, "output complete"
            log.info("stage %s: complete, skipped", stage.stage)
        else:
            log.info("stage %s: started", stage.stage)
            stage.detail = work(night)
            stage.status = DONE
            log.info("stage %s: done (%s)", stage.stage, stage.detail)
    except Exception as exc:
        stage.status, stage.detail = FAILED, f"{type(exc).__name__}: {exc}"
        stage.error = exc
        log.error("stage %s failed: %s", stage.stage, exc)
        if not isinstance(exc, PriaError):
            log.exception("unexpected error in stage %s", stage.stage)
    finally:
        stage.seconds = time.monotonic() - started
    if stage.stage == "train" and stage.status != FAILED:
        stage.cost_usd = _train_cost(night)


def _train_cost(night: Night) -> float | None:
    adapter = _adapter_or_none(night)
    cost = None if adapter is None else adapter.metrics_json.get("cost_usd")
    return None if cost is None else float(cost)


def _adapter_or_none(night: Night) -> Adapter | None:
    try:
        return _adapter(night)
    except PriaError:
        return None


def _record_gate(night: Night, report: NightlyReport) -> None:
    """Read the candidate's recorded gate decision into the report."""
    if report.gate is not None:
        return
    adapter = _adapter_or_none(night)
    decided = None if adapter is None else record.gate_of_adapter(adapter)
    if adapter is None or decided is None:
        return
    report.gate = GateOutcome(adapter.adapter_id, adapter.gate_reason or "", decided)
    gate_stage = report.stage("gate")
    if not decided.passed and gate_stage.status in (DONE, SKIPPED):
        gate_stage.status = BLOCKED
    if gate_stage.status in (DONE, SKIPPED, BLOCKED):
        gate_stage.detail = adapter.gate_reason or ""


# ---------------------------------------------------------------------------------------------
# Rendering


def render(report: NightlyReport) -> RenderableType:
    """The end table: every stage with its status, time, cost and detail; then the gate."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    colours = {DONE: "green", SKIPPED: "cyan", FAILED: "red", BLOCKED: "yellow", NOT_RUN: "dim"}
    table = Table(title=f"nightly {report.date}", title_justify="left")
    for column in ("stage", "status", "time", "cost", "detail"):
        table.add_column(column, justify="right" if column in ("time", "cost") else "left")
    for stage in report.stages:
        table.add_row(
            stage.stage,
            Text(stage.status, style=colours[stage.status]),
            f"{stage.seconds:.1f} s" if stage.status != NOT_RUN else "",
            "" if stage.cost_usd is None else f"${stage.cost_usd:.2f}",
            Text(stage.detail),
        )
    lines: list[RenderableType] = [table]
    if report.gate is not None:
        gate = report.gate
        verdict = "[green]passed[/]" if gate.passed else "[yellow]blocked[/]"
        lines.append(Text.from_markup(f"gate: {verdict} for adapter {gate.adapter_id}"))
        for clause in gate.failed:
            lines.append(Text(f"  failed: {clause}"))
        if not gate.failed and gate.reason:
            lines.append(Text(f"  reason: {gate.reason}"))
        numbers = {k: v for k, v in gate.inputs.items() if isinstance(v, int | float)}
        if numbers:
            shown = ", ".join(f"{k}={v:g}" for k, v in numbers.items())
            lines.append(Text(f"  inputs: {shown}"))
    total = sum(s.cost_usd or 0.0 for s in report.stages)
    outcome = (
        f"[red]failed in {report.failed_stage}[/]"
        if report.error is not None
        else "[yellow]gate blocked[/]"
        if report.blocked
        else "[green]finished[/]"
    )
    lines.append(
        Text.from_markup(
            f"{outcome} in {report.seconds:.1f} s, cost ${total:.2f}, exit {report.exit_code}"
        )
    )
    return Group(*lines)
