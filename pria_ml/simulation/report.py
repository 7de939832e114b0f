"""``pria-ml report``: one self-contained HTML page on how the learning loop is doing.

Built only from what production records, so it reads a real deployment as well as the demo:

- the override rate per day and per week from ``workflow_event`` (the source database; the
  spec's headline metric), with the target of a 2 pp reduction per week from the first week;
- every adapter in ``pria.model_registry``: its evaluation figures from ``metrics_json``
  (accuracy of the candidate and of its baseline with their intervals, the p95 latency delta,
  the training cost), its gate decision and reasons;
- the ``pria.registry_event`` trail: registrations, gate decisions, promotions, rollbacks.

Plots are rendered by matplotlib as SVG and inlined with the page's CSS: the file opens offline
and names no external URL. A figure the registry does not hold (an adapter never evaluated,
an older evaluator's keys) is shown as "no data", never invented.

The evaluation figures are read from each adapter's evaluation record (``quality.record``),
validated: a record that does not validate stops the report with an error naming the adapter.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import clock, registry
from pria_ml.db import database
from pria_ml.db.sqlfiles import read_sql
from pria_ml.noise import drop_known_log_records
from pria_ml.quality import record
from pria_ml.world.seed import EVENT_TYPE, apply_schema

if TYPE_CHECKING:
    from pria_ml.quality.record import ModelScores
    from pria_ml.registry import Adapter, Event
    from pria_ml.settings import Settings

TARGET_PP_PER_WEEK = 2.0  # spec: at least 2 pp weekly reduction of the manual override rate
HISTORY_DAYS = 120

# Where each evaluation figure lives in metrics_json: the layout ``pria-ml eval`` records
# (``eval.val`` holds each model's summary and the paired deltas in pp with their intervals,
# ``eval.latency`` the p95 ratio - 1 with its interval).
# The evaluation figures a night shows (each None when the adapter has no evaluation record).
FIGURES = (
    "accuracy_candidate",
    "accuracy_baseline",
    "accuracy_delta",
    "override_delta",
    "latency_delta",
)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float | None = None
    high: float | None = None


def as_interval(raw: Any) -> Interval | None:
    """A number or ``{"value", "low", "high"}`` as an Interval; None when it is neither."""
    if isinstance(raw, Mapping):
        value = _finite(raw.get("value"))
        if value is None:
            return None
        return Interval(value, _finite(raw.get("low")), _finite(raw.get("high")))
    value = _finite(raw)
    return None if value is None else Interval(value)


def _finite(raw: Any) -> float | None:
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        return None
    return float(raw)


def _accuracy(scores: ModelScores) -> Interval:
    """An accuracy with its Wilson interval from the number of samples it was measured on."""
    return Interval(scores.accuracy, *wilson(scores.accuracy, scores.samples))


def wilson(share: float, samples: int, z: float = 1.96) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion ``share`` measured on ``samples``."""
    centre = (share + z * z / (2 * samples)) / (1 + z * z / samples)
    spread = z * math.sqrt(share * (1 - share) / samples + z * z / (4 * samples**2))
    spread /= 1 + z * z / samples
    return max(0.0, centre - spread), min(1.0, centre + spread)


@dataclass(frozen=True)
class Night:
    """One adapter as the report shows it: what was measured and what the gate said."""

    adapter: Adapter
    figures: dict[str, Interval | None]
    cost_usd: float | None  # measured GPU cost of training (0 on a CPU)
    planned_usd: float | None  # the cost guard's estimate on the configured GPU tier

    @property
    def label(self) -> str:
        return self.adapter.dataset_date.isoformat()


def night(adapter: Adapter) -> Night:
    """An adapter's figures from its metrics_json; the accuracy of each model gets its Wilson
    interval from the number of samples it was measured on."""
    metrics = adapter.metrics_json or {}
    measured = record.of_adapter(adapter)
    figures: dict[str, Interval | None] = dict.fromkeys(FIGURES)
    if measured is not None:
        val = measured.val
        figures["accuracy_candidate"] = _accuracy(val.candidate)
        figures["accuracy_baseline"] = _accuracy(val.baseline)
        figures["accuracy_delta"] = as_interval(val.deltas.accuracy_delta.model_dump())
        figures["override_delta"] = as_interval(val.deltas.override_delta.model_dump())
        figures["latency_delta"] = as_interval(measured.latency.latency_delta.model_dump())
    estimate = metrics.get("estimate")
    planned = _finite(estimate.get("usd")) if isinstance(estimate, Mapping) else None
    return Night(adapter, figures, _finite(metrics.get("cost_usd")), planned)


@dataclass(frozen=True)
class Period:
    """Events and overrides of one day or one week (``start`` is its first day)."""

    start: dt.date
    events: int
    overrides: int
    days: int = 1  # days with events summed into it

    @property
    def rate_pct(self) -> float:
        return 100.0 * self.overrides / self.events


@dataclass
class ReportData:
    days: list[Period]
    nights: list[Night]
    events: list[Event]
    generated_at: dt.datetime
    title: str = "PRIA learning loop"
    notes: list[str] = field(default_factory=list)
    # The demo's counterfactual, weeks as demo-<time>.json holds them (docs/demo.md); the
    # registry and workflow_event do not hold it, so only the demo hands it in.
    comparison: list[dict] = field(default_factory=list)

    @property
    def weeks(self) -> list[Period]:
        """Days summed into weeks counted from the first day (a simulated week in the demo)."""
        if not self.days:
            return []
        first = self.days[0].start
        weeks: dict[int, list[Period]] = {}
        for day in self.days:
            weeks.setdefault((day.start - first).days // 7, []).append(day)
        return [
            Period(
                first + dt.timedelta(days=7 * index),
                sum(d.events for d in days),
                sum(d.overrides for d in days),
                len(days),
            )
            for index, days in sorted(weeks.items())
        ]


def collect(
    settings: Settings,
    *,
    since: dt.date | None = None,
    title: str = "PRIA learning loop",
    now: dt.datetime | None = None,
) -> ReportData:
    """Read the override rates (source database) and the registry (registry database).

    Everything is placed by its own recorded time (an event's day, a registry event's
    ``occurred_at``); ``now`` (default: the real clock) is only the "generated" line.
    """

    source = database(settings, "source")
    apply_schema(source)
    with source.connect() as conn:
        rows = conn.execute(
            read_sql("report/override_rate_daily.sql"),
            {"event_type": EVENT_TYPE, "since": since, "days": HISTORY_DAYS},
        ).fetchall()
    db = database(settings)
    adapters = sorted(
        registry.adapters(db, limit=10_000), key=lambda a: (a.dataset_date, a.created_at)
    )
    events = sorted(registry.history(db, limit=100_000), key=lambda e: e.event_id)
    return ReportData(
        days=[Period(day, events, overrides) for day, events, overrides in rows],
        nights=[night(adapter) for adapter in adapters],
        events=events,
        generated_at=clock.now(now),
        title=title,
    )


@dataclass(frozen=True)
class ReportResult:
    path: Path
    plots: dict[str, int]  # plot name -> data points drawn (0 = "no data")


def build(
    settings: Settings,
    *,
    output: Path | None = None,
    since: dt.date | None = None,
    title: str = "PRIA learning loop",
    notes: list[str] | None = None,
    now: dt.datetime | None = None,
    comparison: list[dict] | None = None,
) -> ReportResult:
    """Collect, render and write the report (``<home>/reports/report-<now, UTC>.html`` unless
    ``output`` is given), atomically."""
    data = collect(settings, since=since, title=title, now=now)
    data.notes = list(notes or [])
    data.comparison = list(comparison or [])
    page, plots = render(data)
    if output is None:
        stamp = data.generated_at.strftime("%Y%m%dT%H%M%SZ")
        output = settings.home / "reports" / f"report-{stamp}.html"
    write_atomically(Path(output), page)
    return ReportResult(Path(output), plots)


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(staging, 0o644)  # mkstemp makes it private; a report is for reading
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


# Rendering -------------------------------------------------------------------------------------

GREEN, RED, GREY, BLUE, ORANGE = "#2e7d32", "#c62828", "#9e9e9e", "#1565c0", "#ef6c00"


def _figure(height: float = 3.0):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8.0, height), layout="constrained")
    return figure, figure.add_subplot()


def _svg(figure) -> str:
    """The figure as inline SVG with no URL in it: the XML prolog, DOCTYPE, RDF metadata and
    namespace declarations (which name w3.org and purl.org) are dropped; HTML5 parses inline
    SVG, ``xlink:href`` included, without them."""
    import re

    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text: small, searchable
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)
    return re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)


def _no_data(what: str) -> str:
    return f'<p class="nodata">no data: {html.escape(what)}</p>'


def plot_override_rate(data: ReportData) -> tuple[str, int]:
    weeks = data.weeks
    if not weeks:
        return _no_data("no categorisation events in workflow_event"), 0
    figure, axes = _figure()
    x = list(range(1, len(weeks) + 1))
    rates = [week.rate_pct for week in weeks]
    target = [max(0.0, rates[0] - TARGET_PP_PER_WEEK * (i - 1)) for i in x]
    axes.plot(x, rates, marker="o", color=BLUE, label="override rate")
    axes.plot(x, target, linestyle="--", color=GREY, label="target: -2 pp per week")
    for xi, rate, week in zip(x, rates, weeks, strict=True):
        axes.annotate(
            f"{rate:.1f}%", (xi, rate), textcoords="offset points", xytext=(0, 6), ha="center"
        )
        axes.annotate(
            f"n={week.events}",
            (xi, 0),
            textcoords="offset points",
            xytext=(0, 4),
            ha="center",
            fontsize=7,
            color=GREY,
        )
    partial = [xi for xi, week in zip(x, weeks, strict=True) if week.days < 7]
    if partial:  # a week with fewer days of data (the current one): hollow, and labelled so
        axes.plot(
            partial,
            [rates[xi - 1] for xi in partial],
            linestyle="none",
            marker="o",
            markerfacecolor="white",
            color=BLUE,
        )
    labels = [
        f"week {i}\n{w.start:%b %d}" + (f"\n{w.days} days" if w.days < 7 else "")
        for i, w in zip(x, weeks, strict=True)
    ]
    axes.set_xticks(x, labels)
    axes.set_ylabel("overridden actions (%)")
    axes.set_ylim(0, max(rates + target) * 1.25 + 1)
    axes.legend(loc="upper right")
    axes.grid(axis="y", alpha=0.3)
    return _svg(figure), len(weeks)


def plot_comparison(data: ReportData) -> tuple[str, int]:
    """Loop vs frozen first adapter vs bare base, per week, on the same traffic, with 95 %
    intervals (the demo's counterfactual)."""
    weeks = data.comparison
    figure, axes = _figure()
    series = (
        ("loop", "loop_rate", BLUE),
        ("frozen", "frozen_rate", GREY),
        ("base", "base_rate", RED),
    )
    drawn = 0
    for offset, (name, key, colour) in zip((-0.1, 0.0, 0.1), series, strict=True):
        points = [(w["week"], w[key], (w.get("intervals") or {}).get(name)) for w in weeks]
        points = [p for p in points if p[1] is not None]
        if not points:
            continue
        x = [week + offset for week, _, _ in points]
        y = [100 * rate for _, rate, _ in points]
        low = [100 * (rate - (i or [rate, rate])[0]) for _, rate, i in points]
        high = [100 * ((i or [rate, rate])[1] - rate) for _, rate, i in points]
        axes.errorbar(x, y, yerr=[low, high], marker="o", color=colour, capsize=3, label=name)
        drawn += len(points)
    for week in weeks:
        if week.get("incident"):
            axes.axvspan(week["week"] - 0.4, week["week"] + 0.4, color=RED, alpha=0.08)
    axes.set_xticks([w["week"] for w in weeks], [f"week {w['week']}" for w in weeks])
    axes.set_ylabel("overridden actions (%)")
    axes.set_ylim(bottom=0)
    axes.legend(loc="upper right")
    axes.grid(axis="y", alpha=0.3)
    return _svg(figure), drawn


def plot_daily_rate(data: ReportData) -> tuple[str, int]:
    if not data.days:
        return _no_data("no categorisation events in workflow_event"), 0
    figure, axes = _figure(2.6)
    axes.plot([d.start for d in data.days], [d.rate_pct for d in data.days], marker=".", color=BLUE)
    axes.set_ylabel("overridden (%) per day")
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", alpha=0.3)
    figure.autofmt_xdate()
    return _svg(figure), len(data.days)


def plot_accuracy(data: ReportData) -> tuple[str, int]:
    points = [
        (n, n.figures["accuracy_candidate"], n.figures["accuracy_baseline"])
        for n in data.nights
        if n.figures["accuracy_candidate"] is not None
    ]
    if not points:
        return _no_data("no adapter has evaluation accuracy in metrics_json"), 0
    figure, axes = _figure()
    x = list(range(len(points)))
    for offset, index, color, label in ((-0.12, 1, BLUE, "candidate"), (0.12, 2, GREY, "baseline")):
        xs, ys, errors = [], [], [[], []]
        for xi, point in zip(x, points, strict=True):
            interval = point[index]
            if interval is None:
                continue
            value = _pct(interval.value)
            xs.append(xi + offset)
            ys.append(value)
            errors[0].append(value - _pct(interval.low) if interval.low is not None else 0)
            errors[1].append(_pct(interval.high) - value if interval.high is not None else 0)
        axes.errorbar(xs, ys, yerr=errors, fmt="o", color=color, capsize=3, label=label)
    axes.set_xticks(x, [p[0].label for p in points], rotation=30, ha="right")
    axes.set_ylabel("exact-match accuracy (%)")
    axes.legend(loc="lower right")
    axes.grid(axis="y", alpha=0.3)
    return _svg(figure), len(points)


def _pct(value: float) -> float:
    """Accuracy as a percentage whether recorded as a share (0..1) or in percent."""
    return value * 100.0 if abs(value) <= 1.0 else value


def plot_latency(data: ReportData) -> tuple[str, int]:
    points = [(n, n.figures["latency_delta"]) for n in data.nights if n.figures["latency_delta"]]
    if not points:
        return _no_data("no adapter has a p95 latency delta in metrics_json"), 0
    figure, axes = _figure(2.6)
    x = list(range(len(points)))
    values = [100 * interval.value for _, interval in points]
    lows = [
        v - 100 * i.low if i.low is not None else 0
        for v, (_, i) in zip(values, points, strict=True)
    ]
    highs = [
        100 * i.high - v if i.high is not None else 0
        for v, (_, i) in zip(values, points, strict=True)
    ]
    axes.errorbar(x, values, yerr=[lows, highs], fmt="o", color=BLUE, capsize=3)
    axes.axhline(5, color=RED, linestyle="--", linewidth=1, label="gate limit +5%")
    axes.axhline(0, color=GREY, linewidth=0.8)
    axes.set_xticks(x, [n.label for n, _ in points], rotation=30, ha="right")
    axes.set_ylabel("p95 latency vs baseline (%)")
    axes.legend(loc="upper right")
    return _svg(figure), len(points)


def plot_cost(data: ReportData) -> tuple[str, int]:
    points = [n for n in data.nights if n.cost_usd is not None or n.planned_usd is not None]
    if not points:
        return _no_data("no adapter has cost_usd or a cost estimate in metrics_json"), 0
    figure, axes = _figure(2.6)
    x = list(range(len(points)))
    axes.bar(
        [xi - 0.2 for xi in x],
        [n.cost_usd or 0 for n in points],
        width=0.4,
        color=BLUE,
        label="measured (GPU-hours x $/h; 0 on a CPU)",
    )
    axes.bar(
        [xi + 0.2 for xi in x],
        [n.planned_usd or 0 for n in points],
        width=0.4,
        color=GREY,
        label="planned on the configured GPU tier",
    )
    axes.set_xticks(x, [n.label for n in points], rotation=30, ha="right")
    axes.set_ylabel("USD per night")
    axes.legend(loc="upper right", fontsize=8)
    return _svg(figure), len(points)


def plot_gate(data: ReportData) -> tuple[str, int]:
    gated = [n for n in data.nights if n.adapter.gate_passed is not None]
    if not gated:
        return _no_data("no gate decision recorded"), 0
    figure, axes = _figure(2.4)
    for xi, item in enumerate(gated):
        delta = item.figures["accuracy_delta"]
        y = delta.value if delta is not None else 0.0
        passed = item.adapter.gate_passed
        axes.bar(xi, y, color=GREEN if passed else RED, width=0.6)
        axes.annotate(
            "passed" if passed else "blocked",
            (xi, y),
            textcoords="offset points",
            xytext=(0, 4 if y >= 0 else -12),
            ha="center",
            fontsize=8,
        )
    axes.axhline(
        0.5, color=GREY, linestyle="--", linewidth=1, label="gate: accuracy delta > 0.5 pp"
    )
    axes.axhline(0, color="black", linewidth=0.6)
    axes.set_xticks(range(len(gated)), [n.label for n in gated], rotation=30, ha="right")
    axes.set_ylabel("accuracy delta (pp)")
    axes.legend(loc="best", fontsize=8)
    return _svg(figure), len(gated)


_MARKERS = {
    "register": ("o", GREY, "registered"),
    "promote": ("^", GREEN, "promoted"),
    "rollback": ("v", ORANGE, "rolled back to"),
    "archive": ("s", GREY, "archived"),
}


def plot_timeline(data: ReportData) -> tuple[str, int]:
    if not data.events:
        return _no_data("no registry events"), 0
    order = {n.adapter.adapter_id: i for i, n in enumerate(data.nights)}
    labels = {n.adapter.adapter_id: n.label for n in data.nights}
    figure, axes = _figure(max(2.2, 0.35 * len(order) + 1.2))
    prod_since: tuple[int, Any] | None = None
    drawn: set[str] = set()
    for step, event in enumerate(data.events):
        row = order.get(event.adapter_id)
        if row is None:
            continue
        if event.action in ("promote", "rollback"):
            if prod_since is not None:
                axes.plot(
                    [prod_since[0], step], [prod_since[1]] * 2, color=GREEN, linewidth=5, alpha=0.3
                )
            prod_since = (step, row)
        if event.action == "gate":
            passed = bool((event.detail or {}).get("passed"))  # recorded by record_gate_decision
            marker, color, label = (
                ("P", GREEN, "gate passed") if passed else ("X", RED, "gate blocked")
            )
        elif event.action in _MARKERS:
            marker, color, label = _MARKERS[event.action]
        else:
            continue
        axes.scatter(
            [step], [row], marker=marker, color=color, s=60, zorder=3,
            label=None if label in drawn else label,
        )  # fmt: skip
        drawn.add(label)
    if prod_since is not None:
        end = len(data.events)
        axes.plot([prod_since[0], end], [prod_since[1]] * 2, color=GREEN, linewidth=5, alpha=0.3)
    axes.set_yticks(list(order.values()), [labels[a] for a in order])
    axes.set_ylim(-0.6, len(order) - 0.4)
    axes.set_xlabel("registry event (in order); green band = in prod")
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), fontsize=8, ncols=6)
    return _svg(figure), len(data.events)


PLOTS = {
    "override_rate": ("Production override rate per week", plot_override_rate),
    "daily_rate": ("Override rate per day", plot_daily_rate),
    "accuracy": ("Evaluation accuracy: candidate vs baseline, 95% intervals", plot_accuracy),
    "gate": ("Gate decisions", plot_gate),
    "latency": ("p95 latency delta vs baseline", plot_latency),
    "cost": ("Training cost per night", plot_cost),
    "timeline": ("Registry timeline", plot_timeline),
}

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 62em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; }
.nodata { color: #9e9e9e; font-style: italic; border: 1px dashed #ccc; padding: 1em; }
.passed { color: #2e7d32; } .blocked { color: #c62828; }
svg { max-width: 100%; height: auto; }
"""


def _fmt(interval: Interval | None, scale: float = 1.0, unit: str = "") -> str:
    if interval is None:
        return "no data"
    text = f"{interval.value * scale:+.1f}{unit}" if unit == " pp" else f"{interval.value:.3f}"
    if interval.low is not None and interval.high is not None:
        text += f" [{interval.low * scale:.1f}, {interval.high * scale:.1f}]"
    return text


def _nights_table(data: ReportData) -> str:
    if not data.nights:
        return _no_data("no adapters in the registry")
    rows = []
    for n in data.nights:
        a = n.adapter
        gate = "not gated" if a.gate_passed is None else ("passed" if a.gate_passed else "blocked")
        css = {"passed": "passed", "blocked": "blocked"}.get(gate, "")
        cand, base = n.figures["accuracy_candidate"], n.figures["accuracy_baseline"]
        rows.append(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(cell))}</td>"
                for cell in (
                    n.label,
                    str(a.adapter_id)[:8],
                    a.status + (" (superseded)" if a.superseded_at and a.status != "prod" else ""),
                    f"{_pct(cand.value):.1f}%" if cand else "no data",
                    f"{_pct(base.value):.1f}%" if base else "no data",
                    _fmt(n.figures["accuracy_delta"], 1.0, " pp"),
                    _fmt(n.figures["latency_delta"]),
                    "no data" if n.cost_usd is None else f"${n.cost_usd:.2f}",
                )
            )
            + f'<td class="{css}">{html.escape(gate)}</td>'
            + f"<td>{html.escape(a.gate_reason or '')}</td></tr>"
        )
    head = (
        "night", "adapter", "status", "accuracy", "baseline", "delta", "p95 latency delta",
        "cost", "gate", "reasons",
    )  # fmt: skip
    return (
        "<table><tr>"
        + "".join(f"<th>{h}</th>" for h in head)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _events_table(data: ReportData) -> str:
    if not data.events:
        return _no_data("no registry events")
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(cell))}</td>"
            for cell in (
                e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
                e.action + (" (forced)" if e.forced else ""),
                e.dataset_date,
                str(e.adapter_id)[:8],
                f"{e.from_status or ''} -> {e.to_status or ''}",
                e.reason or "",
            )
        )
        + "</tr>"
        for e in data.events
        if e.action != "rotation"
    )
    return (
        "<table><tr><th>when</th><th>action</th><th>night</th><th>adapter</th>"
        "<th>status</th><th>reason</th></tr>" + rows + "</table>"
    )


def headline(weeks: list[Period]) -> str:
    """The page's summary: first against last *full* week (seven days of data); a shorter
    stretch after them (the demo's rollback drill, the current week) is shown apart, never
    compared with a week."""
    if not weeks:
        return "no categorisation events yet"
    full = [w for w in weeks if w.days >= 7]
    text = f"{sum(w.events for w in weeks)} categorisation events over {len(weeks)} week(s)"
    if full:
        first, last = full[0], full[-1]
        text += (
            f"; override rate {first.rate_pct:.1f}% in the first full week, {last.rate_pct:.1f}% "
            f"in the last full week, week {weeks.index(last) + 1} "
            f"({last.rate_pct - first.rate_pct:+.1f} pp; target "
            f"{-TARGET_PP_PER_WEEK * (weeks.index(last) - weeks.index(first)):+.1f} pp)"
        )
    for week in weeks:
        if week.days < 7:
            text += (
                f"; {week.days} day(s) from {week.start} shown apart (not a full week): "
                f"{week.rate_pct:.1f}%"
            )
    return text + "."


def render(data: ReportData) -> tuple[str, dict[str, int]]:
    """The page, and how many data points each plot drew."""
    drop_known_log_records()  # before matplotlib, which announces a cold font cache
    sections, counts = [], {}
    for name, (heading, plot) in PLOTS.items():
        svg, points = plot(data)
        counts[name] = points
        sections.append(f'<h2 id="{name}">{html.escape(heading)}</h2>\n{svg}')
    if data.comparison:
        svg, _ = plot_comparison(data)
        sections.insert(
            1,
            '<h2 id="comparison">override rate per week: the loop, the frozen first adapter '
            "and the bare base on the same traffic (95 % intervals; incident weeks shaded)"
            f"</h2>\n{svg}",
        )
    summary = headline(data.weeks)
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in data.notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(data.title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(data.title)}</h1>
<p>Generated {data.generated_at:%Y-%m-%d %H:%M} UTC from workflow_event and the model registry.
{html.escape(summary)}</p>
{notes}
{"".join(sections)}
<h2>Adapters and gate decisions</h2>
{_nights_table(data)}
<h2>Registry events</h2>
{_events_table(data)}
</body></html>
"""
    return page, counts
