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

    from pria_ml.operations.status import StatusReport
    from pria_ml.registry import Adapter, Event

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
