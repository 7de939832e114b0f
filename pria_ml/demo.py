"""``pria-ml demo``: PRIA's learning loop closing for real, in simulated weeks, on a laptop.

Time is compressed - a simulated day of traffic takes seconds, a night's training a minute -
but every step is the production code path on embedded defaults:

1. The base model is the tiny local one, pre-trained once on the seeded agent's conversations
   (``tinymodel``), so before any adapter it makes the agent's mistakes: trap merchants filed
   under the wrong category, client meals filed as meals.
2. Two weeks of history are seeded (``seed``); then each simulated week is seven days of
   production traffic (``simulate``) served by whichever adapter is in prod, reviewed by a
   simulated reviewer, written to the source tables. The override rate in ``workflow_event``
   therefore moves with the adapter in prod.
3. Each week ends in the real nightly chain (``nightly.run``: extract, build-features, train,
   eval, gate, promote, archive) for the week's last day, with the demo training profile.
4. One planted bad week (``Incident``): a labelling incident makes reviewers write wrong
   categories into their corrections. The candidate that learns from it must be blocked by the
   gate, with the reasons recorded.
5. A rollback drill at the end: the blocked candidate is forced into prod, the next simulated
   day's override rate jumps, ``rollback`` restores the previous adapter, and the rate of the
   day after comes back.
6. The HTML report (``report``) of the whole run.

Everything lives in ``<home>/demo`` (emptied at the start), so a demo never mixes with a real
registry, and the same ``--seed``, ``--weeks`` and ``--rows-per-day`` give the same outcomes.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pria_ml.errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from pria_ml.settings import Settings
    from pria_ml.simulate import Day

FIRST_DAY = dt.date(2026, 1, 5)  # a Monday: simulated week k starts FIRST_DAY + 7 (k - 1)
HISTORY_DAYS = 14
INCIDENT_RATE = 0.7
DEMO_PII_KEY = "pria-demo-pii-key"  # the demo's datasets are synthetic; never a real key
# The demo profile shortened for a laptop night (docs/demo.md measures it).
TRAIN_OVERRIDES: dict[str, Any] = {
    "max_steps": 30,
    "learning_rate": 2e-3,
    "per_device_train_batch_size": 8,
    "max_length": 512,
    "warmup_steps": 3,
    "save_steps": 10,
    "logging_steps": 5,
    "lora_r": 16,
    "lora_alpha": 32,
}


@dataclass
class NightSummary:
    """What one night did, as the per-night table shows it."""

    date: dt.date
    adapter_id: uuid.UUID | None
    gate_passed: bool | None
    reasons: list[str]
    promoted: bool
    accuracy_delta: float | None
    latency_delta: float | None
    cost_usd: float | None
    seconds: float
    error: str | None = None


@dataclass
class Week:
    index: int
    days: list[Day]
    incident: bool
    night: NightSummary | None = None

    @property
    def override_rate(self) -> float:
        return sum(d.overrides for d in self.days) / sum(d.rows for d in self.days)


@dataclass
class Drill:
    """The rollback drill: rates of the day before, with the bad adapter, and after rollback."""

    bad_adapter: uuid.UUID
    previous_prod: uuid.UUID
    restored: uuid.UUID | None
    before: float
    during: float
    after: float


@dataclass
class DemoResult:
    weeks: list[Week]
    drill: Drill | None
    report_path: Any
    prod_at_end: uuid.UUID | None
    seconds: float
    notes: list[str] = field(default_factory=list)


def demo_settings(settings: Settings, base_model: str) -> Settings:
    """Settings of the demo's own home: embedded databases and storage, the tiny base."""
    from pria_ml.settings import Settings

    home = settings.home / "demo"
    return Settings(
        home=home,
        base_model=base_model,
        storage_url=(home / "storage").as_uri(),
        pii_key=DEMO_PII_KEY,
        database_url=None,
        source_database_url=None,
        gpu_tier=settings.gpu_tier,
        gpu_tiers=settings.gpu_tiers,
        nightly_budget_usd=settings.nightly_budget_usd,
        endpoint_rotation_url=None,
    )


def bad_week_of(weeks: int) -> int:
    """The week of the labelling incident: the third of four or more, else the last."""
    return 3 if weeks >= 4 else weeks


def run(
    settings: Settings,
    *,
    weeks: int = 4,
    rows_per_day: int = 30,
    seed: int = 0,
    console: Console,
    drill: bool = True,
) -> DemoResult:
    """Run the demo (see the module docstring); print progress and a table per night."""
    from pria_ml import progress, registry, simulate, tinymodel
    from pria_ml import report as report_mod
    from pria_ml import seed as seeder
    from pria_ml.db import database

    if weeks < 2:
        raise ConfigError(f"--weeks {weeks}: the demo needs at least 2 weeks (4 show it best)")
    started = time.monotonic()
    recipe = tinymodel.built_recipe(settings.tiny_model_dir) or {}
    if recipe.get("pretrain_steps"):
        base = settings.tiny_model_dir
        console.print(f"tiny base: pre-trained {recipe['pretrain_steps']} steps (cached)")
    else:
        steps = settings.tiny_pretrain_steps or tinymodel.PRETRAIN_STEPS
        with progress.bar(console, "pre-training the tiny base (once)", steps) as advance:
            base = tinymodel.ensure(
                settings,
                pretrained=True,
                progress=lambda step, _total, loss: advance(step, f"loss {loss:.3f}"),
            )
    local = demo_settings(settings, str(base))
    shutil.rmtree(local.home, ignore_errors=True)
    db = database(local)
    seeder.seed(
        local,
        rows=HISTORY_DAYS * rows_per_day,
        seed=seed,
        end_date=FIRST_DAY - dt.timedelta(days=1),
        days=HISTORY_DAYS,
    )
    console.print(
        f"seeded {HISTORY_DAYS} days of history ({HISTORY_DAYS * rows_per_day} conversations "
        "answered by the seeded agent, reviewed by humans)"
    )
    simulator = simulate.Simulator(local, rows_per_day=rows_per_day, seed=seed)
    bad_week = bad_week_of(weeks)
    results: list[Week] = []
    for index in range(1, weeks + 1):
        first = FIRST_DAY + dt.timedelta(days=7 * (index - 1))
        incident = (
            simulate.Incident(first, first + dt.timedelta(days=6), INCIDENT_RATE)
            if index == bad_week
            else None
        )
        days = []
        label = f"week {index}" + (" (labelling incident)" if incident else "")
        with progress.bar(console, f"{label}: simulated days", 7) as advance:
            for offset in range(7):
                day = simulator.day(first + dt.timedelta(days=offset), incident=incident)
                days.append(day)
                advance(offset + 1, f"{day.day}: {day.override_rate:.1%} overridden")
        week = Week(index, days, incident is not None)
        week.night = _night(local, days[-1].day, console)
        results.append(week)
        _print_week(console, week)

    drill_result = None
    if drill:
        drill_result = _drill(local, simulator, results, console)
    prod = registry.current_prod(db)
    result = DemoResult(
        weeks=results,
        drill=drill_result,
        report_path=None,
        prod_at_end=prod.adapter_id if prod else None,
        seconds=0.0,
    )
    notes = [
        f"Demo: {weeks} simulated weeks of {7 * rows_per_day} conversations each (seed {seed}), "
        f"each ending in the nightly chain; week {bad_week} planted a labelling incident "
        f"({INCIDENT_RATE:.0%} of reviews wrote a wrong category). Time is compressed: a "
        "simulated day takes seconds and a night about a minute on a laptop."
    ]
    if drill_result:
        notes.append(
            f"Rollback drill: with the blocked adapter forced into prod the daily override rate "
            f"went {drill_result.before:.1%} -> {drill_result.during:.1%}; after rollback "
            f"{drill_result.after:.1%}."
        )
    built = report_mod.build(local, title="PRIA learning loop - demo", notes=notes)
    result.report_path = built.path
    result.seconds = time.monotonic() - started
    result.notes = notes
    return result


def _night(settings: Settings, date: dt.date, console: Console) -> NightSummary:
    """The real nightly chain for ``date`` with the demo's training profile."""
    from pria_ml import nightly
    from pria_ml.train import PROFILES

    config = PROFILES["demo"].with_overrides(**TRAIN_OVERRIDES)
    started = time.monotonic()
    with console.status(f"night of {date}: extract, features, train, eval, gate, promote"):
        report = nightly.run(settings, date, train_config=config)
    adapter = report.adapter
    gate = report.gate
    inputs = gate.inputs if gate else {}
    promote = report.stage("promote")
    return NightSummary(
        date=date,
        adapter_id=adapter.adapter_id if adapter else None,
        gate_passed=gate.passed if gate else None,
        reasons=list(gate.failed) if gate else [],
        promoted=promote.status == "done",
        accuracy_delta=_number(inputs.get("accuracy_delta")),
        latency_delta=_number(inputs.get("latency_delta")),
        cost_usd=sum(s.cost_usd or 0.0 for s in report.stages),
        seconds=time.monotonic() - started,
        error=str(report.error) if report.error else None,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _drill(settings: Settings, simulator, weeks: list[Week], console: Console) -> Drill | None:
    """Force the blocked candidate into prod for a day, then roll back for a day."""
    from pria_ml import registry
    from pria_ml.db import database

    db = database(settings)
    prod = registry.current_prod(db)
    blocked = [w.night for w in weeks if w.night and w.night.gate_passed is False]
    if prod is None or not blocked or blocked[0].adapter_id is None:
        console.print(
            "[yellow]rollback drill skipped: it needs a prod adapter and a blocked one[/]"
        )
        return None
    bad = blocked[0].adapter_id
    day = weeks[-1].days[-1].day
    before = weeks[-1].days[-1].override_rate
    registry.promote(
        db, adapter_id=bad, force=True, reason="rollback drill: blocked candidate forced into prod"
    )
    during = simulator.day(day + dt.timedelta(days=1))
    transition = registry.rollback(db, reason="rollback drill: override rate jumped")
    after = simulator.day(day + dt.timedelta(days=2))
    restored = registry.current_prod(db)
    console.print(
        f"rollback drill: forced {str(bad)[:8]} into prod -> {during.override_rate:.1%} "
        f"overridden on {during.day}; rollback restored "
        f"{str(transition.adapter_id)[:8]} -> {after.override_rate:.1%} on {after.day}"
    )
    return Drill(
        bad_adapter=bad,
        previous_prod=prod.adapter_id,
        restored=restored.adapter_id if restored else None,
        before=before,
        during=during.override_rate,
        after=after.override_rate,
    )


def _print_week(console: Console, week: Week) -> None:
    from rich.table import Table

    night = week.night
    table = Table(title=f"week {week.index}" + (" - labelling incident" if week.incident else ""))
    for column in ("override rate", "night", "candidate", "gate", "acc. delta", "latency delta"):
        table.add_column(column)
    table.add_column("cost")
    table.add_column("time")
    table.add_column("reasons", overflow="fold")
    if night is None:
        return
    gate = {True: "[green]passed[/]", False: "[red]blocked[/]", None: "-"}[night.gate_passed]
    if night.promoted:
        gate += " -> prod"
    table.add_row(
        f"{week.override_rate:.1%}",
        str(night.date),
        str(night.adapter_id)[:8] if night.adapter_id else "-",
        gate,
        f"{night.accuracy_delta:+.1f} pp" if night.accuracy_delta is not None else "-",
        f"{night.latency_delta:+.1%}" if night.latency_delta is not None else "-",
        f"${night.cost_usd:.2f}" if night.cost_usd is not None else "-",
        f"{night.seconds:.0f} s",
        night.error or "; ".join(night.reasons),
    )
    console.print(table)
