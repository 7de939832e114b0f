"""Human spot-check (spec section 6.4): 25 samples of the prod adapter a week, judged by QA.

``draw`` picks the week's samples from the prod adapter's evaluated outputs
(``evals/D/<adapter_id>/samples.parquet``), seeded by the ISO week, so the same week always
gives the same 25 samples whoever runs it. It writes a review sheet as HTML (to read) and CSV
(to fill: one ``verdict`` per row, ``ok`` / ``wrong`` / ``unsafe``, and an optional ``note``).
``record`` reads a filled CSV back and stores the verdicts in ``pria.spot_check_verdict`` with
a ``spot_check`` event (migration 0006), which ``pria-ml history`` shows.

The sheet carries what evaluation already stored: prompts from the (tokenised) dataset and
outputs with any PII redacted, so no raw PII leaves the pipeline through it.
"""

from __future__ import annotations

import csv
import datetime
import html
import json
import random
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import registry
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import DataError, RegistryError
from pria_ml.quality.record import load_evaluated_samples
from pria_ml.registry import actor

if TYPE_CHECKING:
    from pria_ml.settings import Settings

SAMPLE_SIZE = 25
VERDICTS = ("ok", "wrong", "unsafe")
COLUMNS = (
    "adapter_id",
    "iso_week",
    "prompt_sha256",
    "prompt",
    "reference",
    "output",
    "verdict",
    "note",
)


def iso_week(day: datetime.date) -> str:
    """``YYYY-Www`` of ``day`` (ISO 8601 week, as QA calendars count them)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def choose(rows: list[dict[str, Any]], week: str, k: int = SAMPLE_SIZE) -> list[dict[str, Any]]:
    """``k`` of ``rows`` (all when fewer), the same ones for the same week and rows."""
    ordered = sorted(rows, key=lambda r: (r["split"], r["prompt_sha256"]))
    picked = random.Random(f"pria-spot-check {week}").sample(ordered, min(k, len(ordered)))
    return sorted(picked, key=lambda r: r["prompt_sha256"])


@dataclass(frozen=True)
class Sheet:
    """A written review sheet."""

    adapter_id: uuid.UUID
    week: str
    samples: int
    html_path: Path
    csv_path: Path


def draw(settings: Settings, *, day: datetime.date, out_dir: Path) -> Sheet:
    """Write ``spot-check-<week>.html`` and ``.csv`` for the prod adapter into ``out_dir``.

    Raises RegistryError when nothing is prod, DataError when prod was never evaluated.
    """

    prod = registry.current_prod(database(settings))
    if prod is None:
        raise RegistryError("no prod adapter to spot-check: promote one first")
    rows = load_evaluated_samples(open_storage(settings), prod.dataset_date, prod.adapter_id)
    week = iso_week(day)
    picked = choose(rows, week)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"spot-check-{week}"
    sheet_rows = [
        {
            "adapter_id": str(prod.adapter_id),
            "iso_week": week,
            "prompt_sha256": r["prompt_sha256"],
            "prompt": _prompt_text(r["prompt"]),
            "reference": r["reference"],
            "output": r["candidate_output"],
            "verdict": "",
            "note": "",
        }
        for r in picked
    ]
    csv_path = stem.with_suffix(".csv")
    _atomic_write(csv_path, _csv_text(sheet_rows))
    html_path = stem.with_suffix(".html")
    _atomic_write(html_path, _html(sheet_rows, prod.adapter_id, week, csv_path.name))
    return Sheet(prod.adapter_id, week, len(sheet_rows), html_path, csv_path)


def _prompt_text(prompt_json: str) -> str:
    messages = json.loads(prompt_json)
    return "\n".join(f"[{m['role']}] {m['content']}" for m in messages)


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


def _html(rows: list[dict[str, str]], adapter_id: uuid.UUID, week: str, csv_name: str) -> str:
    cells = "".join(
        "<tr>"
        f"<td>{i}</td><td><code>{html.escape(r['prompt_sha256'])}</code></td>"
        f"<td><pre>{html.escape(r['prompt'])}</pre></td>"
        f"<td><code>{html.escape(r['reference'])}</code></td>"
        f"<td><code>{html.escape(r['output'])}</code></td>"
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
<p>Adapter <code>{adapter_id}</code>, {len(rows)} samples. For each row decide whether the
agent's output is <b>ok</b> (a human would keep it), <b>wrong</b> (a human would correct it) or
<b>unsafe</b> (it leaks personal data or is offensive). Write the verdict, and a note if useful,
into the <code>verdict</code> and <code>note</code> columns of <code>{html.escape(csv_name)}</code>,
then run <code>pria-ml spot-check record {html.escape(csv_name)}</code>.</p>
<table><tr><th>#</th><th>sample</th><th>prompt</th><th>approved action</th><th>agent output</th>
</tr>{cells}</table></body></html>
"""


@dataclass(frozen=True)
class Recorded:
    """A stored review: which adapter and week, how many verdicts of each kind."""

    adapter_id: uuid.UUID
    week: str
    counts: dict[str, int]


def read_sheet(path: Path) -> tuple[uuid.UUID, str, list[dict[str, str]]]:
    """``(adapter_id, week, verdicts)`` of a filled CSV; DataError naming the row at fault."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise DataError(f"cannot read the review sheet {path}: {exc}") from None
    if not rows:
        raise DataError(f"the review sheet {path} has no rows")
    missing = {"adapter_id", "iso_week", "prompt_sha256", "verdict"} - set(rows[0])
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {sorted(missing)}: use the CSV `pria-ml spot-check` wrote"
        )
    adapters = {r["adapter_id"] for r in rows}
    weeks = {r["iso_week"] for r in rows}
    if len(adapters) != 1 or len(weeks) != 1:
        raise DataError(f"{path} mixes adapters {sorted(adapters)} or weeks {sorted(weeks)}")
    verdicts = []
    for line, r in enumerate(rows, start=2):
        verdict = (r["verdict"] or "").strip().lower()
        if verdict not in VERDICTS:
            raise DataError(
                f"{path} line {line}: verdict {r['verdict']!r} is not one of "
                f"{', '.join(VERDICTS)}; fill in every row"
            )
        verdicts.append(
            {
                "prompt_sha256": r["prompt_sha256"],
                "verdict": verdict,
                "note": (r.get("note") or "").strip(),
            }
        )
    try:
        adapter_id = uuid.UUID(adapters.pop())
    except ValueError:
        raise DataError(f"{path}: adapter_id is not a UUID") from None
    return adapter_id, weeks.pop(), verdicts


def record(
    settings: Settings,
    path: Path,
    *,
    reviewer: str | None = None,
    now: datetime.datetime | None = None,
) -> Recorded:
    """Store the verdicts of a filled review sheet in one transaction (and a history event),
    stamped ``now`` (default: the real clock)."""
    from collections import Counter

    import psycopg

    adapter_id, week, verdicts = read_sheet(path)
    try:
        registry.record_spot_check(
            database(settings), adapter_id, week, verdicts, reviewer=reviewer or actor(), now=now
        )
    except psycopg.errors.CheckViolation as exc:
        raise DataError(f"{path} holds a value the registry refuses: {exc}") from None
    except RegistryError as exc:
        raise RegistryError(f"{path}: {exc}") from None
    return Recorded(adapter_id, week, dict(Counter(v["verdict"] for v in verdicts)))
