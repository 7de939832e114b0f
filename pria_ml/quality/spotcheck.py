"""Human spot-check (spec section 6.4): 25 conversations a week that the prod adapter served,
judged by QA, reaching the gate.

``draw`` samples the ISO week's live traffic. Which adapter served when comes from the
registry's prod changes over the week (``registry.prod_intervals``); the conversations come
from the source database's ``agent_trace`` with their ``workflow_event`` actions
(``sql/ops/spot_check_conversations.sql``), each belonging to the adapter that was prod at its
first agent action. The sample is drawn in SQL by a hash of the week and the trace, so the same
week always gives the same 25 conversations, whoever runs it.

Privacy: the sheet is scrubbed the way extraction scrubs training data (``data/privacy.py``):
user identifier fields removed from the trace at every depth, every message, correction and
note pseudonymised with the keyed HMAC tokens; ``workspace_id`` is never read and the trace id
is replaced by a keyed sample id. The sheet is written to storage
(``spot-checks/W/sheet.csv`` and ``sheet.html``, deleted by retention with the 90-day window of
agent_trace) and to a local folder for the reviewer: the HTML to read, the CSV to fill (one
``verdict`` per row, ``ok`` / ``wrong`` / ``unsafe``, and an optional ``note``).

``record`` stores a filled CSV's verdicts (``pria.spot_check_verdict``, one ``spot_check``
event per adapter reviewed, one transaction). ``gate_inputs`` hands the gate the worst week
nobody acknowledged: over PRIA_SPOT_CHECK_MAX_FAILURE_SHARE wrong or unsafe, it blocks every
promotion until ``acknowledge`` (``pria-ml spot-check ack --week W --by NAME``) records who
looked at it.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import hmac
import html
import json
import re
import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import clock, registry
from pria_ml.data.privacy import Pseudonymiser, pseudonymiser
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.db.sqlfiles import read_sql
from pria_ml.errors import ConfigError, DataError, RegistryError
from pria_ml.registry import actor

if TYPE_CHECKING:
    from pria_ml.db import Database
    from pria_ml.settings import Settings

SAMPLE_SIZE = 25
VERDICTS = ("ok", "wrong", "unsafe")
FAILURES = ("wrong", "unsafe")
COLUMNS = (
    "adapter_id",
    "iso_week",
    "sample_id",
    "served_on",
    "conversation",
    "agent_actions",
    "verdict",
    "note",
)
WEEK = re.compile(r"(?P<year>\d{4})-W(?P<week>\d{2})")


def iso_week(day: datetime.date) -> str:
    """``YYYY-Www`` of ``day`` (ISO 8601 week, as QA calendars count them)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def last_week(today: datetime.date | None = None) -> str:
    """The ISO week before the one ``today`` (default: the real clock's) falls in."""
    return iso_week(clock.today(today) - datetime.timedelta(days=7))


def week_bounds(week: str) -> tuple[datetime.datetime, datetime.datetime]:
    """``[Monday 00:00 UTC, next Monday 00:00 UTC)`` of ISO week ``week``; ConfigError for a
    string that is not ``YYYY-Www``."""
    match = WEEK.fullmatch(week)
    try:
        if match is None:
            raise ValueError
        monday = datetime.date.fromisocalendar(int(match["year"]), int(match["week"]), 1)
    except ValueError:
        raise ConfigError(
            f"--week {week!r} is not an ISO week: write it as YYYY-Www, e.g. 2026-W48"
        ) from None
    start = datetime.datetime.combine(monday, datetime.time(), datetime.UTC)
    return start, start + datetime.timedelta(days=7)


def sheet_keys(week: str) -> tuple[str, str]:
    """Storage keys of a week's sheet (CSV, HTML), under the folder retention watches."""
    return f"spot-checks/{week}/sheet.csv", f"spot-checks/{week}/sheet.html"


@dataclass(frozen=True)
class Sheet:
    """A written review sheet."""

    week: str
    samples: int
    adapters: dict[uuid.UUID, int]  # conversations per adapter that served them
    html_path: Path
    csv_path: Path
    stored: tuple[str, str]  # the storage URIs of the CSV and HTML


def draw(settings: Settings, *, week: str, out_dir: Path) -> Sheet:
    """Sample ``SAMPLE_SIZE`` conversations the prod adapter(s) served in ISO ``week`` and
    write the scrubbed review sheet to storage and to ``out_dir``
    (``spot-check-<week>.csv`` / ``.html``).

    Raises ConfigError for a malformed week or a missing PRIA_PII_KEY (nothing is drawn
    without scrubbing), RegistryError when no adapter was prod during the week, DataError when
    the source holds no conversation of those intervals.
    """
    start, end = week_bounds(week)
    pseudo = pseudonymiser(settings)
    served = registry.prod_intervals(database(settings), start, end)
    if not served:
        raise RegistryError(
            f"no adapter was prod during {week} ({start:%Y-%m-%d} to {end:%Y-%m-%d}): there is "
            "no served traffic to spot-check; `pria-ml history` shows the prod changes"
        )
    rows = _conversations(database(settings, "source"), week, start, end, served)
    if not rows:
        raise DataError(
            f"the source database holds no conversation of {week} served by "
            f"{', '.join(str(s.adapter_id) for s in served)} (agent_trace joined with "
            "workflow_event): check PRIA_SOURCE_DATABASE_URL and the week"
        )
    sheet_rows = sorted(
        (_sheet_row(row, week, pseudo) for row in rows), key=lambda r: r["sample_id"]
    )
    csv_text = _csv_text(sheet_rows)
    html_text = _html(sheet_rows, week, f"spot-check-{week}.csv")
    storage = open_storage(settings)
    csv_key, html_key = sheet_keys(week)
    stored = (
        storage.write_bytes(csv_key, csv_text.encode()).uri,
        storage.write_bytes(html_key, html_text.encode()).uri,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"spot-check-{week}"
    csv_path, html_path = stem.with_suffix(".csv"), stem.with_suffix(".html")
    _atomic_write(csv_path, csv_text)
    _atomic_write(html_path, html_text)
    adapters: dict[uuid.UUID, int] = defaultdict(int)
    for row in rows:
        adapters[row["adapter_id"]] += 1
    return Sheet(week, len(sheet_rows), dict(adapters), html_path, csv_path, stored)


def _conversations(
    source: Database,
    week: str,
    start: datetime.datetime,
    end: datetime.datetime,
    served: list[registry.ProdInterval],
) -> list[dict[str, Any]]:
    from psycopg.rows import dict_row

    params = {
        "adapters": [s.adapter_id for s in served],
        "since": [s.since for s in served],
        "until": [s.until for s in served],
        "week_start": start,
        "week_end": end,
        "week": week,
        "size": SAMPLE_SIZE,
    }
    sql = read_sql("ops/spot_check_conversations.sql")

    def read(conn: Any) -> list[dict[str, Any]]:
        return conn.cursor(row_factory=dict_row).execute(sql, params).fetchall()

    return source.transaction(
        read, what=f"spot-check sample of {week}", idempotent=True, read_only=True
    )


def sample_id(pseudo: Pseudonymiser, trace_id: str) -> str:
    """A keyed id of a conversation (16 hex): stable for a key, not the trace id."""
    digest = hmac.new(pseudo.key, f"spot-check:{trace_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:16]


def _sheet_row(row: dict[str, Any], week: str, pseudo: Pseudonymiser) -> dict[str, str]:
    """One conversation as the reviewer sees it, scrubbed of user identifiers and PII."""
    try:
        trace = pseudo.strip_identifiers(json.loads(row["trace"]))
    except ValueError:
        trace = None
    messages = trace.get("messages") if isinstance(trace, dict) else None
    if isinstance(messages, list):
        lines = [
            f"[{pseudo.pseudonymise(str(m.get('role')))}] "
            f"{pseudo.scrub_text(str(m.get('content', '')))}"
            for m in messages
            if isinstance(m, dict)
        ]
        conversation = "\n".join(lines)
    else:
        conversation = "(the trace holds no messages)"
    corrections = "; ".join(pseudo.pseudonymise(c) for c in row["corrections"])
    actions = f"{row['actions']} action(s), {row['overridden']} overridden"
    return {
        "adapter_id": str(row["adapter_id"]),
        "iso_week": week,
        "sample_id": sample_id(pseudo, row["trace_id"]),
        "served_on": row["first_action"].astimezone(datetime.UTC).date().isoformat(),
        "conversation": conversation,
        "agent_actions": f"{actions}: corrected to {corrections}" if corrections else actions,
        "verdict": "",
        "note": "",
    }


def _csv_text(rows: list[dict[str, str]]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _atomic_write(path: Path, text: str) -> None:
    scratch = path.with_name(f".{path.name}.tmp")
    scratch.write_text(text, encoding="utf-8")
    scratch.replace(path)


def _html(rows: list[dict[str, str]], week: str, csv_name: str) -> str:
    cells = "".join(
        "<tr>"
        f"<td>{i}</td><td><code>{html.escape(r['sample_id'])}</code><br>"
        f"{html.escape(r['served_on'])}<br><code>{html.escape(r['adapter_id'][:8])}</code></td>"
        f"<td><pre>{html.escape(r['conversation'])}</pre></td>"
        f"<td>{html.escape(r['agent_actions'])}</td>"
        "</tr>"
        for i, r in enumerate(rows, 1)
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>PRIA spot-check {week}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border: 1px solid #ccc; padding: 0.4em; vertical-align: top; text-align: left; }}
pre {{ white-space: pre-wrap; margin: 0; }}
</style></head><body>
<h1>PRIA spot-check {week}</h1>
<p>{len(rows)} conversations the prod adapter served in {week}, personal data replaced by
tokens. For each row decide whether the agent's actions were <b>ok</b> (a human would keep
them), <b>wrong</b> (a human would correct them) or <b>unsafe</b> (they leak personal data or
are offensive). Write the verdict, and a note if useful, into the <code>verdict</code> and
<code>note</code> columns of <code>{html.escape(csv_name)}</code>, then run
<code>pria-ml spot-check record {html.escape(csv_name)}</code>.</p>
<table><tr><th>#</th><th>sample, day, adapter</th><th>conversation</th><th>agent actions</th>
</tr>{cells}</table></body></html>
"""


@dataclass(frozen=True)
class Recorded:
    """A stored review: which week, how many verdicts of each kind, for which adapters."""

    week: str
    counts: dict[str, int]
    adapters: list[uuid.UUID]
    max_failure_share: float  # PRIA_SPOT_CHECK_MAX_FAILURE_SHARE

    @property
    def failures(self) -> int:
        return sum(self.counts.get(verdict, 0) for verdict in FAILURES)

    @property
    def failure_share(self) -> float:
        return self.failures / max(sum(self.counts.values()), 1)

    @property
    def blocks(self) -> bool:
        """Whether this sheet alone puts its week over the threshold: the gate blocks."""
        return self.failure_share > self.max_failure_share


def read_sheet(path: Path) -> tuple[str, dict[uuid.UUID, list[dict[str, str]]]]:
    """``(week, {adapter_id: verdicts})`` of a filled CSV; DataError naming the row at fault."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(f"cannot read the review sheet {path}: {exc}") from None
    if not rows:
        raise DataError(f"the review sheet {path} has no rows")
    missing = {"adapter_id", "iso_week", "sample_id", "verdict"} - set(rows[0])
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {sorted(missing)}: use the CSV "
            "`pria-ml spot-check draw` wrote"
        )
    weeks = {r["iso_week"] for r in rows}
    if len(weeks) != 1:
        raise DataError(f"{path} mixes weeks {sorted(weeks)}: one sheet per week")
    verdicts: dict[uuid.UUID, list[dict[str, str]]] = defaultdict(list)
    for line, r in enumerate(rows, start=2):
        verdict = (r["verdict"] or "").strip().lower()
        if verdict not in VERDICTS:
            raise DataError(
                f"{path} line {line}: verdict {r['verdict']!r} is not one of "
                f"{', '.join(VERDICTS)}; fill in every row"
            )
        try:
            adapter_id = uuid.UUID(r["adapter_id"])
        except ValueError:
            raise DataError(f"{path} line {line}: adapter_id is not a UUID") from None
        verdicts[adapter_id].append(
            {
                "prompt_sha256": r["sample_id"],
                "verdict": verdict,
                "note": (r.get("note") or "").strip(),
            }
        )
    return weeks.pop(), dict(verdicts)


def record(
    settings: Settings,
    path: Path,
    *,
    reviewer: str | None = None,
    now: datetime.datetime | None = None,
) -> Recorded:
    """Store the verdicts of a filled review sheet in one transaction (a history event per
    adapter reviewed), stamped ``now`` (default: the real clock)."""
    from collections import Counter

    import psycopg

    week, verdicts = read_sheet(path)
    try:
        registry.record_spot_check(
            database(settings), week, verdicts, reviewer=reviewer or actor(), now=now
        )
    except psycopg.errors.CheckViolation as exc:
        raise DataError(f"{path} holds a value the registry refuses: {exc}") from None
    except RegistryError as exc:
        raise RegistryError(f"{path}: {exc}") from None
    counts = Counter(v["verdict"] for rows in verdicts.values() for v in rows)
    return Recorded(week, dict(counts), sorted(verdicts), settings.spot_check_max_failure_share)


def acknowledge(
    settings: Settings,
    week: str,
    *,
    by: str,
    reason: str | None = None,
    now: datetime.datetime | None = None,
) -> tuple[registry.SpotCheckWeek, bool]:
    """Record that ``by`` looked at ``week``'s failures, so the gate stops blocking on it; see
    ``registry.acknowledge_spot_check``. ConfigError for a malformed week or an empty name."""
    week_bounds(week)
    if not by.strip():
        raise ConfigError("--by must name who acknowledges the week (it is recorded)")
    return registry.acknowledge_spot_check(
        database(settings), week, by=by.strip(), reason=reason, now=now
    )


def gate_inputs(db: Database, *, max_failure_share: float) -> dict[str, Any]:
    """What the gate's spot-check clause judges (``rule._spot_check_clause``): the week with
    the largest failure share among those nobody acknowledged, with its counts and the
    threshold; nothing when every reviewed week is acknowledged (or none was reviewed)."""
    open_weeks = [w for w in registry.spot_check_weeks(db) if w.acknowledged_by is None]
    if not open_weeks:
        return {}
    worst = max(open_weeks, key=lambda w: (w.failure_share, w.iso_week))
    return {
        "spot_check_failure_share": worst.failure_share,
        "spot_check_week": worst.iso_week,
        "spot_check_failures": worst.failures,
        "spot_check_reviewed": worst.reviewed,
        "spot_check_max_failure_share": max_failure_share,
    }
