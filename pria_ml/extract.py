"""``pria-ml extract --date D``: the source database to ``datasets/D/raw.parquet``, privacy-safe.

The only door between customer data and training. In order:

1. One read-only, repeatable-read transaction on the source (the read replica), so the row
   counts and the rows come from the same snapshot. The per-source queries in ``sql/extract/``
   apply the retention windows (workflow_event 365 days, expense 180, agent_trace 90, each
   ending with day D) and never select ``workspace_id`` or ``user_id``.
2. The joined rows stream through a server-side cursor in batches, so memory stays flat however
   large the tables are. Each row is checked (``build_row``): a bad row goes to the quarantine
   file with its reason, never silently away. Identifier fields are removed from the trace JSON
   at every depth, and every piece of text is PII-tokenised (``privacy.py``).
3. Rows are written with a Parquet writer to local temporary files, uploaded, and the manifest
   (counts, quarantine reasons, retention cut-offs, schema hash, sha256 per file, code version)
   is written last: a dataset exists when its manifest does. Re-running a date whose manifest
   exists does nothing unless ``force``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import provenance
from pria_ml.contract import QUARANTINE_SCHEMA, RAW_SCHEMA, dataset_key
from pria_ml.errors import DatabaseUnavailable, DataError
from pria_ml.privacy import Tokeniser, tokeniser
from pria_ml.sqlfiles import read_sql

if TYPE_CHECKING:
    import pyarrow as pa

    from pria_ml.settings import Settings

RETENTION_DAYS = {"workflow_event": 365, "expense": 180, "agent_trace": 90}
KNOWN_ROLES = frozenset(("system", "user", "tool", "assistant"))
BATCH_ROWS = 10_000


def schema_hash(schema: pa.Schema) -> str:
    return hashlib.sha256(schema.to_string(show_schema_metadata=False).encode()).hexdigest()


@dataclass(frozen=True)
class Retention:
    """The half-open window [cutoff, until) of each source for extraction date ``date``."""

    date: dt.date

    @property
    def until(self) -> dt.datetime:
        return dt.datetime.combine(self.date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)

    def cutoff(self, source: str) -> dt.datetime:
        return self.until - dt.timedelta(days=RETENTION_DAYS[source])

    def params(self) -> dict[str, dt.datetime]:
        return {"until": self.until} | {f"{s}_cutoff": self.cutoff(s) for s in RETENTION_DAYS}

    def describe(self) -> dict[str, dict[str, Any]]:
        return {
            source: {
                "days": days,
                "from": self.cutoff(source).isoformat(),
                "until": self.until.isoformat(),
            }
            for source, days in RETENTION_DAYS.items()
        }


@dataclass(frozen=True)
class Rejected:
    """Why a source row cannot become a training example."""

    source: str
    reason: str
    detail: str


def build_row(row: dict[str, Any], tokens: Tokeniser, retention: Retention) -> dict | Rejected:
    """One joined source row as a raw.parquet row, or the reason it is rejected. No I/O; only
    ``tokens``' counters change.

    A row whose trace has aged out of agent_trace's retention window is ``Rejected`` with source
    ``retention``: excluded by policy and counted in the manifest, not quarantined.
    """
    for column in ("trace_id", "event_type", "override_flag"):
        if row[column] is None:
            return Rejected("workflow_event", f"null_{column}", f"{column} is null")
    if not row["trace_found"]:
        if row["created_at"] < retention.cutoff("agent_trace"):
            return Rejected("retention", "trace_outside_retention", "")
        return Rejected("workflow_event", "trace_missing", "no agent_trace row for trace_id")
    if row["trace"] is None:
        return Rejected("agent_trace", "null_trace", "trace is null")
    try:
        trace = json.loads(row["trace"])
    except ValueError as exc:
        return Rejected("agent_trace", "malformed_trace_json", f"not JSON ({exc.msg})")
    messages = trace.get("messages") if isinstance(trace, dict) else None
    if not isinstance(messages, list):
        return Rejected("agent_trace", "malformed_trace_json", "no 'messages' list")
    trace = tokens.strip_identifiers(trace)
    # This event is the agent's k-th action in the trace: its k-th assistant message. Earlier
    # actions stay in the prompt as assistant turns; what follows the action is not used.
    prompt, action, seen = [], None, 0
    for index, message in enumerate(trace["messages"]):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            detail = f"message {index} is not an object with string 'content'"
            return Rejected("agent_trace", "malformed_trace_json", detail)
        role = message.get("role")
        if role not in KNOWN_ROLES:
            shown = tokens.tokenise(str(role))[:40]
            return Rejected("agent_trace", "unknown_role", f"message {index} has role {shown!r}")
        if role == "assistant":
            seen += 1
            if seen == row["action_index"]:
                action = message["content"]
                break
        prompt.append({"role": role, "content": tokens.scrub_text(message["content"])})
    if action is None or not action.strip():
        detail = f"event is action {row['action_index']} of its trace, which has {seen}"
        return Rejected("agent_trace", "no_agent_action", detail)
    if not prompt:
        return Rejected("agent_trace", "empty_prompt", "no message before the agent action")
    corrected = row["corrected_output"]
    if row["override_flag"] and not (corrected and corrected.strip()):
        return Rejected(
            "workflow_event", "override_without_correction", "override_flag without output"
        )
    # Part by part: the same description and notes were just tokenised in the tool result,
    # so the detectors' cache answers.
    parts = (row["description"], row["merchant"], row["notes"])
    text = " | ".join(tokens.tokenise(part) for part in parts if part)
    return {
        "event_id": row["event_id"],
        "trace_id": row["trace_id"],
        "record_date": row["created_at"].astimezone(dt.UTC).date(),
        "event_type": tokens.tokenise(row["event_type"]),
        "override_flag": row["override_flag"],
        "prompt_messages": prompt,
        "agent_output": tokens.tokenise(action),
        "corrected_output": tokens.tokenise(corrected) if row["override_flag"] else None,
        "category_id": row["category_id"],
        "expense_text": text or None,
    }


@dataclass(frozen=True)
class ExtractResult:
    date: dt.date
    skipped: bool
    manifest: dict[str, Any]
    manifest_uri: str


def code_version() -> str:
    """Package version plus a hash of the code and SQL that decide what an extract contains."""
    return provenance.code_version(["extract.py", "privacy.py"], ("extract/*",))


def run(settings: Settings, date: dt.date, *, force: bool = False) -> ExtractResult:
    """Extract day ``date`` from the source database into ``datasets/<date>/`` in storage.

    Writes raw.parquet, quarantine.parquet and, last, manifest.json. A date whose manifest
    exists is left alone (``skipped``) unless ``force``. Raises ``ConfigError`` without
    PRIA_PII_KEY, ``DatabaseUnavailable`` if the source cannot be reached, ``DataError`` if it
    lacks the source tables, ``StorageError`` if storage refuses a write; in every failure case
    no manifest is written, so no partial dataset becomes visible.
    """
    from pria_ml.db import database
    from pria_ml.storage import open_storage

    tokens = tokeniser(settings)  # fail on a missing key before touching anything
    storage = open_storage(settings)
    manifest_key = dataset_key(date, "manifest.json")
    if storage.exists(manifest_key) and not force:
        manifest = json.loads(storage.read_bytes(manifest_key))
        return ExtractResult(date, True, manifest, storage.uri(manifest_key))

    retention = Retention(date)
    source = database(settings, "source")
    with tempfile.TemporaryDirectory(prefix="pria-extract-") as scratch:
        raw_path, quarantine_path = (
            Path(scratch, "raw.parquet"),
            Path(scratch, "quarantine.parquet"),
        )
        counts = _extract_to_files(source, retention, tokens, raw_path, quarantine_path)
        if force:
            storage.delete(manifest_key)  # the old manifest must not vouch for new files
        files = {}
        for name, path in (("raw.parquet", raw_path), ("quarantine.parquet", quarantine_path)):
            info = storage.upload(path, dataset_key(date, name), overwrite=True)
            files[name] = {"sha256": info.sha256, "bytes": info.size}
    manifest = {
        "date": date.isoformat(),
        "code_version": code_version(),
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "source": source.display_url if not source.embedded else "embedded PostgreSQL",
        "retention": retention.describe(),
        "rows": counts["rows"],
        "quarantined": dict(sorted(counts["quarantined"].items())),
        "excluded": dict(sorted(counts["excluded"].items())),
        "schema_hash": {
            "raw.parquet": schema_hash(RAW_SCHEMA),
            "quarantine.parquet": schema_hash(QUARANTINE_SCHEMA),
        },
        "files": files,
        "privacy": {
            "pii_key_fingerprint": tokens.fingerprint,
            "pii_tokens": dict(sorted(tokens.tokens.items())),
            "identifier_fields_removed": tokens.fields_removed,
        },
    }
    data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    info = storage.write_bytes(manifest_key, data, overwrite=False)
    return ExtractResult(date, False, manifest, info.uri)


def source_queries() -> dict[str, str]:
    """The retention-windowed query of each source, from ``sql/extract/<source>.sql``."""
    return {name: read_sql(f"extract/{name}.sql").strip().rstrip(";") for name in RETENTION_DAYS}


def joined_query(queries: dict[str, str]) -> str:
    """``sql/extract/raw.sql`` with each ``{source}`` replaced by that source's query."""
    joined = read_sql("extract/raw.sql")
    for name, query in queries.items():
        joined = joined.replace("{" + name + "}", query)
    return joined


def _extract_to_files(
    source, retention: Retention, tokens: Tokeniser, raw_path: Path, quarantine_path: Path
) -> dict[str, Any]:
    import psycopg
    import pyarrow as pa
    import pyarrow.parquet as pq
    from psycopg.rows import dict_row

    queries = source_queries()
    joined = joined_query(queries)
    params = retention.params()
    quarantined: Counter[str] = Counter()
    excluded: Counter[str] = Counter()
    rows = {"raw": 0}
    try:
        with (
            source.connect() as conn,
            pq.ParquetWriter(raw_path, RAW_SCHEMA, compression="zstd") as raw_writer,
            pq.ParquetWriter(quarantine_path, QUARANTINE_SCHEMA, compression="zstd") as q_writer,
        ):
            conn.read_only = True
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            # A cursor's plan is tuned for its first 10 % of rows by default (nested loops);
            # this one is read to the end, so plan for all of them (hash joins).
            conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            # The join sorts the windows by key; the 4 MB default spills them to disk.
            conn.execute("SET LOCAL work_mem = '64MB'")
            for name, query in queries.items():
                rows[name] = conn.execute(
                    f"SELECT count(*) FROM ({query}) AS s", params
                ).fetchone()[0]
            with conn.cursor(name="pria_extract", row_factory=dict_row) as cursor:
                cursor.itersize = BATCH_ROWS
                cursor.execute(joined, params)
                while batch := cursor.fetchmany(BATCH_ROWS):
                    good, bad = [], []
                    for row in batch:
                        built = build_row(row, tokens, retention)
                        if isinstance(built, dict):
                            good.append(built)
                        elif built.source == "retention":
                            excluded[built.reason] += 1
                        else:
                            quarantined[built.reason] += 1
                            by_trace = built.source == "agent_trace"
                            bad.append(
                                {
                                    "source": built.source,
                                    "source_key": row["trace_id" if by_trace else "event_id"],
                                    "reason": built.reason,
                                    "detail": built.detail,
                                }
                            )
                    if good:
                        raw_writer.write_table(pa.Table.from_pylist(good, schema=RAW_SCHEMA))
                        rows["raw"] += len(good)
                    if bad:
                        q_writer.write_table(pa.Table.from_pylist(bad, schema=QUARANTINE_SCHEMA))
    except psycopg.errors.UndefinedTable as exc:
        raise DataError(
            f"the source database {source.display_url} has no {exc.diag.message_primary}: "
            "point PRIA_SOURCE_DATABASE_URL at PRIA's database, or run `pria-ml seed`"
        ) from exc
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(str(source.unavailable(exc))) from exc
    rows["quarantined"] = sum(quarantined.values())
    rows["excluded"] = sum(excluded.values())
    return {"rows": rows, "quarantined": quarantined, "excluded": excluded}
