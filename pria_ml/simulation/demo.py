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
4. One planted bad week (``Incident``), the last but one: the review tool's category list is
   shifted by one, so most reviews store the category next to the right one. That week's own
   night evaluates on the corrupted labels and the next night trains on them; the gate must
   block both, and the reasons are printed and recorded.
5. A rollback drill at the end: the next simulated day is served by prod; that day's night is
   misconfigured (a learning rate 25 times too high, training only) and its adapter is forced
   into prod unevaluated; the following day's override rate jumps; ``rollback`` restores the
   previous adapter and the rate of the day after comes back.
6. The HTML report (``report``) of the whole run.

Simulated time is the time recorded: each night stamps its manifests and registry rows and
events at 01:00 UTC after its day (``night_time``), so the registry's history and the report
follow the simulated calendar, whenever the demo is run.

Everything lives in ``<home>/demo`` (emptied at the start), so a demo never mixes with a real
registry, except the report: ``<home>/reports/demo-<UTC time>.html``, kept from run to run. The
same ``--seed``, ``--weeks`` and ``--rows-per-day`` give the same outcomes.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from pria_ml import clock, registry
from pria_ml.db import database
from pria_ml.errors import ConfigError
from pria_ml.model import tiny as tinymodel
from pria_ml.noise import quiet_known_library_noise
from pria_ml.operations import nightly
from pria_ml.settings import Settings
from pria_ml.simulation import report as report_mod
from pria_ml.simulation import simulate
from pria_ml.train import PROFILES
from pria_ml.training import progress
from pria_ml.world import seed as seeder

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from pria_ml.settings import Settings
    from pria_ml.simulation.simulate import Day

FIRST_DAY = dt.date(2026, 1, 5)  # a Monday: simulated week k starts FIRST_DAY + 7 (k - 1)
NIGHT_STARTS = dt.time(1)  # the night of dataset date D runs at 01:00 UTC on D + 1
HISTORY_DAYS = 14
INCIDENT_RATE = 0.7
# The drill's misconfigured night: a learning rate this many times the demo's.
DRILL_LR_FACTOR = 25
DEMO_LATENCY_PROMPTS = 8
DEMO_LATENCY_REPEATS = 2
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
    cost_usd: float | None  # measured: GPU-hours x the tier's price (0 on a CPU)
    planned_usd: float | None  # the same training planned on the configured GPU tier
    seconds: float
    error: str | None = None


@dataclass
class Week:
    index: int
    days: list[Day]
    incident: bool
    night: NightSummary | None = None

    @property
    def served_by(self) -> uuid.UUID | None:
        """The prod adapter of the week's days (promotions happen at night, after its last)."""
        return self.days[-1].adapter_id

    def rate_of(self, name: str) -> float | None:
        """The week's override rate had ``name`` ("frozen", "base") answered all of its
        conversations (the counterfactual); None when it did not answer every day."""
        if not all(name in d.others for d in self.days):
            return None
        return sum(d.others[name] for d in self.days) / sum(d.rows for d in self.days)

    def interval(self, rate: float | None) -> list[float] | None:
        """The 95 % (Wilson) interval of a weekly rate over the week's conversations."""
        if rate is None:
            return None
        low, high = report_mod.wilson(rate, sum(d.rows for d in self.days))
        return [round(low, 4), round(high, 4)]

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
    json_path: Any = None

    @property
    def frozen_adapter(self) -> uuid.UUID | None:
        """The first adapter a night promoted: the loop frozen at its first step."""
        return next((w.night.adapter_id for w in self.weeks if w.night and w.night.promoted), None)

    def as_json(self) -> dict[str, Any]:
        """The run as ``demo-<time>.json`` holds it (schema: docs/demo.md)."""
        frozen = self.frozen_adapter
        drill = self.drill
        return {
            "frozen_adapter": None if frozen is None else str(frozen),
            "weeks": [_week_json(week, frozen) for week in self.weeks],
            "rollback_drill": None
            if drill is None
            else {"before": drill.before, "forced": drill.during, "after": drill.after},
            "wall_seconds": round(self.seconds, 1),
        }


def _week_json(week: Week, frozen: uuid.UUID | None) -> dict[str, Any]:
    served = week.served_by
    night = week.night
    decision = "not_gated"
    if night is not None and night.gate_passed is not None:
        decision = "promoted" if night.promoted else "blocked"
    reasons = list(night.reasons) if night else []
    if night is not None and night.gate_passed and not night.promoted:
        reasons.append(f"passed the gate, not promoted: {night.error or 'promotion failed'}")
    return {
        "week": week.index,
        "days": len(week.days),
        "served_by": None if served is None else str(served),
        "loop_rate": week.override_rate,
        "frozen_rate": week.rate_of("frozen"),
        "base_rate": week.rate_of("base"),
        "intervals": {
            "loop": week.interval(week.override_rate),
            "frozen": week.interval(week.rate_of("frozen")),
            "base": week.interval(week.rate_of("base")),
        },
        "incident": week.incident,
        "night": {
            "candidate": None
            if night is None or night.adapter_id is None
            else str(night.adapter_id),
            "decision": decision,
            "reasons": reasons,
        },
    }


def demo_settings(settings: Settings, base_model: str) -> Settings:
    """Settings of the demo's own home: embedded databases and storage, the tiny base.

    Evaluation settings the caller set (``PRIA_EVAL_*``) carry over; otherwise latency is timed
    on ``DEMO_LATENCY_PROMPTS`` prompts ``DEMO_LATENCY_REPEATS`` times (production: 64 x 3 on
    its GPU).
    """

    home = settings.home / "demo"
    evaluation: dict[str, Any] = {
        "eval_latency_prompts": DEMO_LATENCY_PROMPTS,
        "eval_latency_repeats": DEMO_LATENCY_REPEATS,
    }
    evaluation |= {
        name: getattr(settings, name)
        for name in settings.model_fields_set
        if name.startswith("eval_")
    }
    return Settings(
        mode="local",  # the demo's own embedded parts, whatever mode the caller runs in
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
        **evaluation,
    )


def drifting_world(seed: int, weeks: int, vertical_in_prompt: bool) -> seeder.World:
    """The demo's drifting world: three new merchants a week from week 1, a third of the
    traffic; from the middle week on, consulting tenants file meals as client entertainment."""
    change = FIRST_DAY + dt.timedelta(days=7 * (weeks // 2))
    return seeder.World(
        seed,
        FIRST_DAY,
        policy=seeder.PolicyChange("consulting", change),
        vertical_in_prompt=vertical_in_prompt,
        weeks=weeks + 1,
    )


def night_time(day: dt.date) -> dt.datetime:
    """When the simulated night of dataset date ``day`` runs, and stamps what it records."""
    return dt.datetime.combine(day + dt.timedelta(days=1), NIGHT_STARTS, tzinfo=dt.UTC)


def bad_week_of(weeks: int) -> int:
    """The week of the labelling incident: the last but one of four or more, so that the next
    night trains on its corrupted corrections; the last of two or three."""
    return weeks - 1 if weeks >= 4 else weeks


def run(
    settings: Settings,
    *,
    weeks: int = 4,
    rows_per_day: int = 30,
    seed: int = 0,
    console: Console,
    drill: bool = True,
    train_steps: int = TRAIN_OVERRIDES["max_steps"],
    now: dt.datetime | None = None,
    drift: bool = False,
    vertical_in_prompt: bool = False,
) -> DemoResult:
    """Run the demo (see the module docstring); print progress and a table per night. ``now``
    (default: the real clock) names and dates the report; the nights run on simulated time.
    ``drift``: the world drifts (``drifting_world``); ``vertical_in_prompt``: the tenant's
    vertical is part of every prompt (with ``drift``)."""

    if weeks < 2:
        raise ConfigError(f"--weeks {weeks}: the demo needs at least 2 weeks (4 show it best)")
    started = time.monotonic()
    quiet_known_library_noise(progress_bars=False)  # the demo shows its own progress
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
    world = drifting_world(seed, weeks, vertical_in_prompt) if drift else None
    simulator = simulate.Simulator(local, rows_per_day=rows_per_day, seed=seed, world=world)
    overrides = {**TRAIN_OVERRIDES, "max_steps": train_steps}
    overrides["save_steps"] = min(overrides["save_steps"], train_steps)
    train = PROFILES["demo"].with_overrides(**overrides)
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
        # The counterfactual on the same traffic: the bare base, and the first adapter promoted
        # (the loop frozen after its first step) once there is one; never written.
        frozen = next((w.night.adapter_id for w in results if w.night and w.night.promoted), None)
        others = {"base": None} | ({"frozen": frozen} if frozen is not None else {})
        with progress.bar(console, f"{label}: simulated days", 7) as advance:
            for offset in range(7):
                day = simulator.day(
                    first + dt.timedelta(days=offset), incident=incident, others=others
                )
                days.append(day)
                advance(offset + 1, f"{day.day}: {day.override_rate:.1%} overridden")
        week = Week(index, days, incident is not None)
        week.night = _night(local, days[-1].day, console, train)
        results.append(week)
        console.print(render_week(week))

    drill_result = None
    if drill:
        drill_result = _drill(local, simulator, results, console, train)
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
        f"({INCIDENT_RATE:.0%} of reviews stored the category next to the right one, as a review "
        "tool with a shifted category list would). Time is compressed: a simulated day takes "
        "seconds and a night about a minute on a laptop."
    ]
    if drill_result:
        notes.append(
            f"Rollback drill: an adapter trained with a learning rate {DRILL_LR_FACTOR}x too "
            f"high was forced into prod unevaluated; the daily override rate went "
            f"{drill_result.before:.1%} -> {drill_result.during:.1%}; after rollback "
            f"{drill_result.after:.1%}."
        )
    # From the first simulated week: the seeded history is the agent before pria-ml. Written
    # to <home>/reports, outside the demo's own home, so the next demo does not empty it.
    generated = clock.now(now)
    built = report_mod.build(
        local,
        output=settings.home / "reports" / f"demo-{generated:%Y%m%dT%H%M%SZ}.html",
        since=FIRST_DAY,
        title="PRIA learning loop - demo",
        notes=notes,
        now=generated,
        comparison=[_week_json(w, result.frozen_adapter) for w in results],
    )
    result.report_path = built.path
    result.seconds = time.monotonic() - started
    result.notes = notes
    result.json_path = built.path.with_suffix(".json")  # demo-<time>.json beside the page
    report_mod.write_atomically(result.json_path, json.dumps(result.as_json(), indent=2) + "\n")
    return result


def _night(settings: Settings, date: dt.date, console: Console, config) -> NightSummary:
    """The real nightly chain for ``date`` with the demo's training options ``config``."""

    started = time.monotonic()
    with console.status(f"night of {date}: extract, features, train, eval, gate, promote"):
        report = nightly.run(settings, date, train_config=config, now=night_time(date))
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
        planned_usd=_number((adapter.metrics_json.get("estimate") or {}).get("usd"))
        if adapter
        else None,
        seconds=time.monotonic() - started,
        error=str(report.error) if report.error else None,
    )


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("value")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _drill(
    settings: Settings, simulator, weeks: list[Week], console: Console, config
) -> Drill | None:
    """A misconfigured night's adapter forced into prod for a day, then rolled back.

    The day after the last week is served by prod (``before``). Its night is run up to training
    only, with a learning rate ``DRILL_LR_FACTOR`` times too high, and the adapter it registers
    is forced into prod without evaluation, as a hurried engineer would; the next day is served
    by it (``during``); ``rollback`` restores the previous adapter for the day after
    (``after``).
    """

    db = database(settings)
    prod = registry.current_prod(db)
    if prod is None:
        console.print("[yellow]rollback drill skipped: no adapter was promoted to roll back to[/]")
        return None
    first = weeks[-1].days[-1].day + dt.timedelta(days=1)
    with progress.bar(console, "rollback drill", 4) as advance:
        before = simulator.day(first)
        advance(1, f"{before.day}: {before.override_rate:.1%} overridden with prod")
        rate = config.learning_rate * DRILL_LR_FACTOR
        night = nightly.run(
            settings,
            first,
            selection=nightly.Selection(last="train"),
            # a third of the night's steps already break it; the rest would only cost time
            train_config=config.with_overrides(
                learning_rate=rate,
                max_steps=max(1, config.max_steps // 3),
                save_steps=max(1, config.max_steps // 3),
            ),
            now=night_time(first),
        )
        if night.error is not None or night.adapter is None:
            console.print(f"[yellow]rollback drill skipped: its night failed: {night.error}[/]")
            return None
        bad = night.adapter.adapter_id
        registry.promote(
            db,
            adapter_id=bad,
            force=True,
            reason=f"rollback drill: trained with learning rate {rate:g}, forced unevaluated",
            now=night_time(first),
        )
        advance(2, f"forced {_short(bad)} into prod")
        during = simulator.day(first + dt.timedelta(days=1))
        advance(3, f"{during.day}: {during.override_rate:.1%} overridden with {_short(bad)}")
        transition = registry.rollback(
            db, reason="rollback drill: override rate jumped", now=night_time(during.day)
        )
        after = simulator.day(first + dt.timedelta(days=2))
        advance(4, f"{after.day}: {after.override_rate:.1%} overridden after rollback")
    restored = registry.current_prod(db)
    console.print(
        f"rollback drill: {before.override_rate:.1%} overridden on {before.day} with prod "
        f"{_short(prod.adapter_id)}; {during.override_rate:.1%} on {during.day} with "
        f"{_short(bad)} forced in; rollback restored {_short(transition.adapter_id)}: "
        f"{after.override_rate:.1%} on {after.day}"
    )
    return Drill(
        bad_adapter=bad,
        previous_prod=prod.adapter_id,
        restored=restored.adapter_id if restored else None,
        before=before.override_rate,
        during=during.override_rate,
        after=after.override_rate,
    )


def render_week(week: Week) -> RenderableType:
    """One week and its night as a two-column table: fits an 80-column CI log."""
    from rich.box import SIMPLE
    from rich.table import Table

    night = week.night
    assert night is not None, "a week is rendered once its night ran"
    title = f"week {week.index}" + (" - labelling incident" if week.incident else "")
    table = Table(title=title, title_justify="left", box=SIMPLE, show_header=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    rows = sum(d.rows for d in week.days)
    served = {d.adapter_id for d in week.days}
    by = (
        "the bare base"
        if served == {None}
        else ", ".join(_short(a) for a in sorted(served, key=str))
    )
    table.add_row(
        "overridden", f"{week.override_rate:.1%} of {rows} conversations (served by {by})"
    )
    table.add_row(f"night {night.date}", f"{night.seconds:.0f} s")
    if night.error:
        table.add_row("[red]failed[/]", escape(night.error))
    table.add_row("candidate", _short(night.adapter_id))
    gate = {True: "[green]passed[/]", False: "[red]blocked[/]", None: "-"}[night.gate_passed]
    table.add_row("gate", gate + (" -> promoted to prod" if night.promoted else ""))
    for reason in night.reasons:
        table.add_row("", f"[red]x[/] {escape(reason)}")
    if night.accuracy_delta is not None:
        table.add_row("accuracy", f"{night.accuracy_delta:+.1f} pp against its baseline")
    if night.latency_delta is not None:
        table.add_row("p95 latency", f"{night.latency_delta:+.1%} against its baseline")
    cost = "-" if night.cost_usd is None else f"{_dollars(night.cost_usd)} measured"
    if night.planned_usd is not None:
        cost += f", {_dollars(night.planned_usd)} planned on the GPU tier"
    table.add_row("training cost", cost)
    return table


def render(result: DemoResult) -> RenderableType:
    """Every week on one line: its override rate, the change, what its night decided."""
    from rich.box import SIMPLE
    from rich.table import Table

    table = Table(title="the learning loop, week by week", title_justify="left", box=SIMPLE)
    for column in ("week", "overridden", "change", "night's candidate"):
        table.add_column(column, justify="right" if column != "night's candidate" else "left")
    previous = None
    for week in result.weeks:
        night = week.night
        verdict = "-"
        if night is not None and night.gate_passed is not None:
            verdict = "[green]promoted[/]" if night.promoted else "[red]blocked[/]"
            if night.gate_passed and not night.promoted:
                verdict = "passed, not promoted"
        change = "" if previous is None else f"{100 * (week.override_rate - previous):+.1f} pp"
        label = f"{week.index}" + (" (incident)" if week.incident else "")
        table.add_row(label, f"{week.override_rate:.1%}", change, verdict)
        previous = week.override_rate
    return table


def _dollars(amount: float) -> str:
    return f"${amount:.2f}" if amount == 0 or amount >= 0.01 else f"${amount:.5f}"


def _short(adapter_id: uuid.UUID | None) -> str:
    return str(adapter_id)[:8] if adapter_id else "-"
