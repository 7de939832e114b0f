"""Retention enforced on what the pipeline stored (spec section 2): ``pria-ml retention`` and
the nightly's last stage.

The spec's windows (workflow_event 365 days, expense 180, agent_trace 90; ``extract``
applies them to what it reads) bound how long source rows may be kept, and the copies the
pipeline makes hold those rows too. Each stored file is judged by the strictest window of the
sources whose rows it carries, counted from its data date D (the dataset date, or the last day
of a spot-check week): once D is older than that window, every row in it is past it, and the
file is deleted.

=====================================  ======================================  ===========
file                                   holds rows of                           kept
=====================================  ======================================  ===========
``datasets/D/*.parquet``, features     workflow_event, expense, agent_trace    90 days
``evals/D/<adapter>/samples.parquet``  prompts and outputs of those rows       90 days
``spot-checks/W/*``                    live conversations of week W            90 days
``adapters/D.*`` never prod            trained on them                         90 days
manifests, ``report.json``             counts and checksums, no source rows    kept
=====================================  ======================================  ===========

An adapter that is prod or a rollback target (every adapter that has been prod) is never
deleted. Every deletion is recorded in ``pria.retention_deletion`` before the file goes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pria_ml import clock, registry
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.extract import RETENTION_DAYS

if TYPE_CHECKING:
    from rich.console import RenderableType

    from pria_ml.settings import Settings

ALL_SOURCES = tuple(RETENTION_DAYS)
SPOT_CHECKS = "spot-checks/"

# (prefix, key pattern with the data date in group "date" or the ISO week in "week", sources)
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("datasets/", re.compile(r"datasets/(?P<date>\d{4}-\d{2}-\d{2})/.+\.parquet")),
    ("evals/", re.compile(r"evals/(?P<date>\d{4}-\d{2}-\d{2})/[^/]+/samples\.parquet")),
    (SPOT_CHECKS, re.compile(r"spot-checks/(?P<week>\d{4}-W\d{2})/.+")),
    ("adapters/", re.compile(r"adapters/(?P<date>\d{4}-\d{2}-\d{2})[^/]*")),
)


@dataclass(frozen=True)
class Due:
    """One stored file past its window."""

    key: str
    uri: str
    data_date: dt.date
    window_days: int
    reason: str


@dataclass(frozen=True)
class RetentionReport:
    as_of: dt.date
    due: list[Due]
    kept_former_prods: int  # adapter files past the window kept: prod or rollback targets
    deleted: bool


def window_days(sources: tuple[str, ...] = ALL_SOURCES) -> int:
    """The strictest window of ``sources`` (days)."""
    return min(RETENTION_DAYS[source] for source in sources)


def _data_date(match: re.Match[str]) -> dt.date:
    if match.groupdict().get("week"):
        year, week = match["week"].split("-W")
        return dt.date.fromisocalendar(int(year), int(week), 7)
    return dt.date.fromisoformat(match["date"])


def plan(settings: Settings, *, now: dt.datetime | None = None) -> RetentionReport:
    """The files past their window at ``now`` (default the real clock); deletes nothing."""
    today = clock.now(now).date()
    storage = open_storage(settings)
    protected = set(registry.former_prods(database(settings)).values())
    days = window_days()
    due: list[Due] = []
    kept = 0
    for prefix, pattern in _RULES:
        for key in sorted(storage.list(prefix)):
            match = pattern.fullmatch(key)
            if match is None:
                continue
            date = _data_date(match)
            if (today - date).days <= days:
                continue
            uri = storage.uri(key)
            if prefix == "adapters/" and _adapter_of(uri) in protected:
                kept += 1
                continue
            reason = (
                f"data of {date} is {(today - date).days} days old, past {days} days "
                f"(strictest window of {', '.join(ALL_SOURCES)})"
            )
            due.append(Due(key, uri, date, days, reason))
    return RetentionReport(today, due, kept, deleted=False)


def _adapter_of(uri: str) -> str:
    """An adapter's config file is protected with its weights: both map to the weights URI."""
    return re.sub(r"\.config\.json$", ".safetensors", uri)


def run(
    settings: Settings, *, dry_run: bool = False, now: dt.datetime | None = None
) -> RetentionReport:
    """Delete every file ``plan`` finds past its window, each recorded in the registry first
    (``pria.retention_deletion``, stamped ``now``). ``dry_run``: only report them."""
    report = plan(settings, now=now)
    if dry_run:
        return report
    storage = open_storage(settings)
    db = database(settings)
    for item in report.due:
        registry.record_retention_deletion(
            db,
            uri=item.uri,
            data_date=item.data_date,
            sources=ALL_SOURCES,
            window_days=item.window_days,
            reason=item.reason,
            now=now,
        )
        storage.delete(item.key)
    return RetentionReport(report.as_of, report.due, report.kept_former_prods, deleted=True)


def render(report: RetentionReport) -> RenderableType:
    """What was (or would be) deleted and why."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    verb = "deleted" if report.deleted else "would delete"
    table = Table(title=f"retention as of {report.as_of}: {verb}", title_justify="left")
    for column in ("file", "data date", "reason"):
        table.add_column(column)
    for item in report.due:
        table.add_row(item.uri, item.data_date.isoformat(), item.reason)
    summary = Text(
        f"{len(report.due)} file(s) {verb}; {report.kept_former_prods} adapter file(s) past the "
        "window kept (prod or rollback targets)"
    )
    return Group(table, summary)
