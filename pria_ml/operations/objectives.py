"""``pria-ml objectives``: spec section 1's success metrics per ISO week, against their targets.

- Continuous improvement: the production override rate (workflow_event on the source
  database) and its change from the week before; target: at least 2 percentage points lower
  each week.
- Latency preservation: the p95 latency delta of each adapter promoted that week against the
  adapter it replaced, as its evaluation recorded it (``latency_delta``); target: at most +5 %.
- Cost control: training spend of each night (model_registry runs); target: under $150.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pria_ml import clock, registry
from pria_ml.db import database
from pria_ml.db.sqlfiles import read_sql
from pria_ml.errors import DataError
from pria_ml.quality import record
from pria_ml.training import cost

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pria_ml.settings import Settings

OVERRIDE_TARGET_PP = -2.0  # week-over-week change of the override rate, percentage points
LATENCY_TARGET = 0.05  # p95 latency of a promoted adapter at most 5 % above its predecessor


@dataclass
class Promotion:
    adapter_id: str
    promoted_at: str
    forced: bool
    latency_delta: float | None

    @property
    def latency_ok(self) -> bool | None:
        return None if self.latency_delta is None else self.latency_delta <= LATENCY_TARGET


@dataclass
class Week:
    """One ISO week's figures; None where there is nothing to measure."""

    week: str  # ISO week, e.g. 2026-W48
    start: dt.date
    events: int = 0
    overrides: int = 0
    override_rate_pct: float | None = None
    change_pp: float | None = None
    promotions: list[Promotion] = field(default_factory=list)
    nights: int = 0
    train_cost_usd: float = 0.0
    max_night_usd: float | None = None

    @property
    def override_ok(self) -> bool | None:
        return None if self.change_pp is None else self.change_pp <= OVERRIDE_TARGET_PP

    @property
    def latency_ok(self) -> bool | None:
        judged = [p.latency_ok for p in self.promotions if p.latency_ok is not None]
        return all(judged) if judged else None


@dataclass
class ObjectivesReport:
    weeks: list[Week]
    nightly_budget_usd: float

    def cost_ok(self, week: Week) -> bool | None:
        return None if week.max_night_usd is None else week.max_night_usd < self.nightly_budget_usd

    def as_dict(self) -> dict[str, Any]:
        weeks = []
        for week in self.weeks:
            item = asdict(week)
            item["start"] = week.start.isoformat()
            item["override_ok"] = week.override_ok
            item["latency_ok"] = week.latency_ok
            item["cost_ok"] = self.cost_ok(week)
            weeks.append(item)
        return {
            "targets": {
                "override_change_pp": OVERRIDE_TARGET_PP,
                "latency_delta": LATENCY_TARGET,
                "nightly_cost_usd": self.nightly_budget_usd,
            },
            "weeks": weeks,
        }


def report(settings: Settings, *, weeks: int = 8, today: dt.date | None = None) -> ObjectivesReport:
    """The last ``weeks`` ISO weeks up to ``today``.

    ``today`` defaults to the day of the newest reviewed action in workflow_event - the
    source's own time, so a simulated deployment (the demo's home) shows its own weeks - and
    to today on the real clock (UTC) when there is none. Each figure is counted in the week of
    its own recorded time: an event's ``created_at``, a
    promotion's ``occurred_at`` (the time the registry was given), a night's dataset date.
    Reads workflow_event from the source database and model_registry / registry_event from the
    registry. Raises DatabaseUnavailable when either cannot be reached, DataError when the
    source has no workflow_event table.
    """
    import psycopg

    source = database(settings, "source")
    if today is None:
        today = _newest_day(source) or clock.today()
    first = today - dt.timedelta(days=today.weekday()) - dt.timedelta(weeks=weeks - 1)
    # One week more than shown, so the first week shown has a week-over-week change.
    since = dt.datetime.combine(first - dt.timedelta(weeks=1), dt.time(), tzinfo=dt.UTC)
    table = {first + dt.timedelta(weeks=n): None for n in range(-1, weeks)}
    by_start = {start: _week(start) for start in table}

    try:
        with source.connect() as conn:
            rows = conn.execute(read_sql("ops/override_rate_by_week.sql"), {"since": since})
            for start, events, overrides in rows.fetchall():
                if start in by_start:
                    week = by_start[start]
                    week.events, week.overrides = events, overrides
                    week.override_rate_pct = 100.0 * overrides / events if events else None
    except psycopg.errors.UndefinedTable:
        raise DataError(
            f"the source database {source.display_url} has no workflow_event table: point "
            "PRIA_SOURCE_DATABASE_URL at PRIA's database, or run `pria-ml seed`"
        ) from None
    ordered = [by_start[start] for start in sorted(by_start)]
    for before, week in itertools.pairwise(ordered):
        if before.override_rate_pct is not None and week.override_rate_pct is not None:
            week.change_pp = week.override_rate_pct - before.override_rate_pct

    for promoted in registry.promotions_since(database(settings), since):
        at = promoted.occurred_at.astimezone(dt.UTC)  # the time the promotion was stamped with
        week = by_start.get(_monday(at.date()))
        if week is None:
            continue
        week.promotions.append(
            Promotion(
                str(promoted.adapter_id),
                at.isoformat(timespec="seconds"),
                promoted.forced,
                _latency_delta(promoted.metrics_json, promoted.adapter_id),
            )
        )
    for night in cost.recorded_nights(settings):
        week = by_start.get(_monday(night.date))
        if week is None:
            continue
        week.nights += 1
        week.train_cost_usd += night.usd
        week.max_night_usd = max(week.max_night_usd or 0.0, night.usd)
    return ObjectivesReport(ordered[1:], settings.nightly_budget_usd)


def _newest_day(source: Any) -> dt.date | None:
    """The day of the newest reviewed action in ``source`` (None: none, or no table yet)."""
    import psycopg

    try:
        with source.connect() as conn:
            (newest,) = conn.execute(read_sql("ops/newest_event.sql")).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return newest


def _latency_delta(metrics_json: dict[str, Any], adapter_id: uuid.UUID) -> float | None:
    measured = record.from_metrics(metrics_json, adapter_id)
    return None if measured is None else measured.latency.latency_delta.value


def _monday(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def _week(start: dt.date) -> Week:
    year, number, _ = start.isocalendar()
    return Week(week=f"{year}-W{number:02d}", start=start)


def render(report: ObjectivesReport) -> RenderableType:
    """One row per ISO week; a target met is green, missed red, not measurable blank."""
    from rich.table import Table
    from rich.text import Text

    def judged(text: str, ok: bool | None) -> Text:
        return Text(text, style={True: "green", False: "red", None: ""}[ok])

    table = Table(
        title=(
            f"objectives (targets: override rate {OVERRIDE_TARGET_PP:+.0f} pp/week, p95 latency "
            f"<= +{LATENCY_TARGET:.0%}, training < ${report.nightly_budget_usd:.0f}/night)"
        ),
        title_justify="left",
    )
    for column in ("week", "events", "override rate", "WoW", "promoted: p95 delta", "cost/night"):
        table.add_column(column, justify="left" if column == "week" else "right")
    for week in report.weeks:
        rate = "" if week.override_rate_pct is None else f"{week.override_rate_pct:.1f} %"
        change = "" if week.change_pp is None else f"{week.change_pp:+.1f} pp"
        latency = ", ".join(
            f"{p.adapter_id[:8]} "
            + ("?" if p.latency_delta is None else f"{p.latency_delta:+.1%}")
            + (" (forced)" if p.forced else "")
            for p in week.promotions
        )
        cost = (
            ""
            if week.max_night_usd is None
            else f"max ${week.max_night_usd:.2f} ({week.nights} nights)"
        )
        table.add_row(
            week.week,
            str(week.events),
            rate,
            judged(change, week.override_ok),
            judged(latency, week.latency_ok),
            judged(cost, report.cost_ok(week)),
        )
    return table
