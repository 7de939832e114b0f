"""Terminal views of pria-ml's results, built with rich: one home for how things look.

Each function takes plain results (dataclasses from the modules that compute them) and returns
a renderable; the CLI prints it. Nothing here reads a database or a file.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.table import Table

    from pria_ml.extract import ExtractResult
    from pria_ml.features import FeatureBuild
    from pria_ml.operations.status import StatusReport
    from pria_ml.operations.transitions import RollbackPlan
    from pria_ml.quality.spotcheck import Recorded
    from pria_ml.registry import Adapter, Event, SpotCheckWeek, Transition
    from pria_ml.train import TrainResult
    from pria_ml.world.seed import SeedReport

_STATUS_STYLE = {"ok": "green", "warn": "yellow", "down": "bold red", "info": "dim"}


def status(report: StatusReport) -> Table:
    """``pria-ml status``: one row per part, its target, state and detail."""
    from rich.table import Table

    table = Table(title="pria-ml status", show_lines=False)
    for column in ("part", "points at", "state", "detail"):
        table.add_column(column, overflow="fold")
    for part in report.components:
        style = _STATUS_STYLE[part.state]
        table.add_row(part.name, part.target, f"[{style}]{part.state}[/]", part.detail)
    return table


def history(prod: Adapter | None, rows: list[Adapter], events: list[Event]) -> RenderableType:
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


def extracted(result: ExtractResult) -> RenderableType:
    """``pria-ml extract``: rows per source, quarantined and excluded rows, where it wrote."""
    from rich.markup import escape
    from rich.text import Text

    rows, manifest = result.manifest["rows"], result.manifest
    lines = []
    if result.skipped:
        lines.append(f"[yellow]already extracted[/] {escape(result.manifest_uri)} (use --force)")
    lines.append(
        f"raw {rows['raw']} rows from {rows['workflow_event']} events, "
        f"{rows['agent_trace']} traces, {rows['expense']} expenses; "
        f"quarantined {rows['quarantined']} {escape(str(manifest['quarantined'] or ''))}, "
        f"excluded {rows['excluded']} {escape(str(manifest['excluded'] or ''))}"
    )
    if not result.skipped:
        lines.append(f"[green]wrote[/] {escape(result.manifest_uri)}")
    return Text.from_markup("\n".join(lines))


def features_built(result: FeatureBuild) -> RenderableType:
    """``pria-ml build-features``: rows and classes per split, drops, where it wrote."""
    from rich.markup import escape
    from rich.text import Text

    lines = []
    for name, split in result.manifest["splits"].items():
        classes = split["rows_by_class_after_upsampling"]
        lines.append(
            f"[green]{name}[/] {split['rows']} rows ({classes['reward_1']} reward 1, "
            f"{classes['reward_0']} reward 0), {split['dates']['first']} .. "
            f"{split['dates']['last']}"
        )
    dropped = {k: v for k, v in result.manifest["drops"].items() if v}
    lines.append(f"dropped: {escape(str(dropped or 'none'))}")
    lines.append(f"[green]wrote[/] {escape(result.manifest_uri)}")
    return Text.from_markup("\n".join(lines))


def trained(result: TrainResult) -> RenderableType:
    """``pria-ml train``: the candidate, its artifact and the run's figures, on one line."""
    from rich.markup import escape
    from rich.text import Text

    metrics = result.metrics
    return Text.from_markup(
        f"[green]candidate {result.adapter_id}[/] (attempt {result.plan.attempt}) "
        f"{escape(result.artifact_uri)} "
        f"sha256 {result.artifact_sha256[:12]} - {metrics['steps']} steps, "
        f"mean train loss {metrics['loss']['train_mean']:.3f}, "
        f"{metrics['trainable_params']:,} trainable params, ${metrics['cost_usd']:.2f}"
    )


def transition(change: Transition) -> RenderableType:
    """A promote / rollback outcome, and whether the endpoint was rotated."""
    from rich.markup import escape
    from rich.text import Text

    colour = "green" if change.changed else "yellow"
    lines = [f"[{colour}]{escape(change.message)}[/]"]
    if change.rotated:
        lines.append(f"[green]MODEL_ENDPOINT rotated: {escape(change.rotation or '')}[/]")
    elif change.rotation:
        lines.append(f"[bold yellow]warning: MODEL_ENDPOINT {escape(change.rotation)}[/]")
    return Text.from_markup("\n".join(lines))


def rollback_plan(plan: RollbackPlan) -> RenderableType:
    """``pria-ml rollback --dry-run``: the target, why, its files, what the endpoint does."""
    from rich.markup import escape
    from rich.text import Text

    target = plan.target
    action = "retry the rotation of" if plan.retry_rotation else "roll back to"
    return Text.from_markup(
        f"[bold]dry run[/]: would {action} {target.target} (prod now: {target.current_prod})\n"
        f"why: {escape(target.why)}\n"
        f"files: {escape(plan.files)}\n"
        f"endpoint: {escape(plan.rotation)}\n"
        "nothing was changed"
    )


def seeded(report: SeedReport) -> RenderableType:
    """``pria-ml seed``: what was written to the source tables."""
    from rich.text import Text

    return Text.from_markup(
        f"[green]seeded[/] {report.rows} expenses, traces and events "
        f"({report.first_day} .. {report.last_day}), {report.users} users in "
        f"{report.workspaces} workspaces, {report.overrides} human overrides"
    )


def spot_check_recorded(recorded: Recorded) -> RenderableType:
    """``pria-ml spot-check record``: the counts, and whether the week now blocks promotion."""
    from rich.text import Text

    counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(recorded.counts.items()))
    text = Text.from_markup(f"[green]recorded[/] spot-check {recorded.week}: {counts}")
    if recorded.blocks:
        text.append_text(
            Text.from_markup(
                f"\n[bold red]{recorded.failure_share:.0%} wrong or unsafe[/], over the "
                f"{recorded.max_failure_share:.0%} threshold: the gate blocks every promotion "
                f"until `pria-ml spot-check ack --week {recorded.week} --by NAME`"
            )
        )
    return text


def spot_check_acknowledged(week: SpotCheckWeek, *, already: bool) -> RenderableType:
    """``pria-ml spot-check ack``: who acknowledged the week, and what it held."""
    from rich.markup import escape
    from rich.text import Text

    state = "was already acknowledged" if already else "[green]acknowledged[/]"
    return Text.from_markup(
        f"spot-check {week.iso_week} {state} by {escape(week.acknowledged_by or '')} "
        f"({week.failures} of {week.reviewed} wrong or unsafe); the gate no longer blocks on it"
    )
