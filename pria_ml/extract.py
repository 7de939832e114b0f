"""``pria-ml extract --date D``: the source database to ``datasets/D/raw.parquet``, privacy-safe.

The only door between customer data and training. In order:

1. One read-only, repeatable-read transaction on the source (the read replica), so the row
   counts and the rows come from the same snapshot. The per-source queries in ``sql/extract/``
   apply the retention windows (workflow_event 365 days, expense 180, agent_trace 90, each
   ending with day D) and never select ``workspace_id`` or ``user_id``.
2. The known merchants (``sql/extract/known_merchants.sql``: used by two or more workspaces) are
   read first; the PII detectors leave them alone. The joined rows then stream through a
   server-side cursor in batches, so memory stays flat however large the tables are. Each row
   is checked (``build_row``): a bad row goes to the quarantine file with its reason, never
   silently away. Identifier fields are removed from the trace JSON at every depth, and every
   piece of text is PII-pseudonymised (``privacy.py``). Detection is the costly part, so the
   batches go to a pool of worker processes (every core by default), a few batches ahead of
   the writer, and come back in the order they were read: the files are the same whatever the
   number of workers.
3. Rows are written with a Parquet writer to local temporary files, uploaded, and the manifest
   (counts, quarantine reasons, retention cut-offs, schema hash, sha256 per file, code version)
   is written last: a dataset exists when its manifest does. Re-running a date whose manifest
   exists does nothing unless ``force``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import tempfile
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pria_ml import clock
from pria_ml.data import contract, provenance
from pria_ml.data.contract import dataset_key, manifest_complete
from pria_ml.data.privacy import (
    MAX_JSON_DEPTH,
    Pseudonymiser,
    Unscrubbable,
    json_depth,
    pseudonymiser,
)
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.db.sqlfiles import read_sql
from pria_ml.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from pria_ml.settings import Settings

RETENTION_DAYS = {"workflow_event": 365, "expense": 180, "agent_trace": 90}
KNOWN_ROLES = frozenset(("system", "user", "tool", "assistant"))
BATCH_ROWS = 10_000
# A merchant becomes a protected name once this many workspaces use it (known_merchants.sql).
MERCHANT_MIN_WORKSPACES = 2


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


def build_row(row: dict[str, Any], pseudo: Pseudonymiser, retention: Retention) -> dict | Rejected:
    """One joined source row as a raw.parquet row, or the reason it is rejected. No I/O; only
    ``pseudo``' counters change.

    A row whose trace has aged out of agent_trace's retention window is ``Rejected`` with source
    ``retention``: excluded by policy and counted in the manifest, not quarantined. A row with
    text that cannot be scrubbed with confidence (binary, oversized, JSON nested deeper than
    MAX_JSON_DEPTH) is quarantined with that reason; the detail never quotes the value.
    """
    try:
        return _build_row(row, pseudo, retention)
    except Unscrubbable as exc:
        return Rejected(_source_of(row), exc.reason, "a text could not be scrubbed; not shown")


def _source_of(row: dict[str, Any]) -> str:
    return "agent_trace" if row.get("trace_found") else "expense"


def _build_row(row: dict[str, Any], pseudo: Pseudonymiser, retention: Retention) -> dict | Rejected:
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
    except RecursionError:
        trace = None
    if trace is None or json_depth(trace) > MAX_JSON_DEPTH:
        detail = f"nested deeper than {MAX_JSON_DEPTH} levels"
        return Rejected("agent_trace", "json_too_deep", detail)
    messages = trace.get("messages") if isinstance(trace, dict) else None
    if not isinstance(messages, list):
        return Rejected("agent_trace", "malformed_trace_json", "no 'messages' list")
    trace = pseudo.strip_identifiers(trace)
    # This event is the agent's k-th action in the trace: its k-th assistant message. Earlier
    # actions stay in the prompt as assistant turns; what follows the action is not used.
    prompt, action, seen = [], None, 0
    for index, message in enumerate(trace["messages"]):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            detail = f"message {index} is not an object with string 'content'"
            return Rejected("agent_trace", "malformed_trace_json", detail)
        role = message.get("role")
        if role not in KNOWN_ROLES:
            shown = pseudo.pseudonymise(str(role))[:40]
            return Rejected("agent_trace", "unknown_role", f"message {index} has role {shown!r}")
        if role == "assistant":
            seen += 1
            if seen == row["action_index"]:
                action = message["content"]
                break
        prompt.append({"role": role, "content": pseudo.scrub_text(message["content"])})
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
    # Part by part: the same description and notes were just pseudonymised in the tool result,
    # so the detectors' cache answers.
    parts = (row["description"], row["merchant"], row["notes"])
    text = " | ".join(pseudo.pseudonymise(part) for part in parts if part)
    return {
        "event_id": row["event_id"],
        "trace_id": row["trace_id"],
        "record_date": row["created_at"].astimezone(dt.UTC).date(),
        "event_type": pseudo.pseudonymise(row["event_type"]),
        "override_flag": row["override_flag"],
        "prompt_messages": prompt,
        "agent_output": pseudo.pseudonymise(action),
        "corrected_output": pseudo.pseudonymise(corrected) if row["override_flag"] else None,
        "category_id": row["category_id"],
        "expense_text": text or None,
    }


@dataclass(frozen=True)
class ExtractResult:
    date: dt.date
    skipped: bool
    manifest: dict[str, Any]
    manifest_uri: str


# What the scrubber reads besides its own code: the word list its lexicon derives from, and the
# libraries whose detectors, validators and name list it runs as they ship.
_SCRUBBER_DATA = ["assets/cl100k_base.tiktoken"]
_SCRUBBER_DISTRIBUTIONS = ("detect-secrets", "python-stdnum", "phonenumbers", "gender-guesser")


def code_version() -> str:
    """Package version plus a hash of what decides what an extract contains: extract.py, the
    scrubber (data/privacy.py and every package module it imports: secrets, textview,
    lexicon, ...), the word list it reads, the SQL, and the versions of the libraries its
    detectors come from. A change to any of them is a new ``code_version``."""
    modules = ["extract.py", *provenance.package_imports("data/privacy.py"), *_SCRUBBER_DATA]
    return provenance.code_version(modules, ("extract/*",), _SCRUBBER_DISTRIBUTIONS)


def run(
    settings: Settings,
    date: dt.date,
    *,
    force: bool = False,
    workers: int | None = None,
    now: dt.datetime | None = None,
) -> ExtractResult:
    """Extract day ``date`` from the source database into ``datasets/<date>/`` in storage.

    Writes raw.parquet, quarantine.parquet and, last, manifest.json. A date whose manifest
    exists is left alone (``skipped``) unless ``force``. Raises ``ConfigError`` without
    PRIA_PII_KEY, ``DatabaseUnavailable`` if the source cannot be reached (a lost connection is
    read again until PRIA_DB_RETRY_DEADLINE_S), ``DataError`` if it
    lacks the source tables, ``StorageError`` if storage refuses a write; in every failure case
    no manifest is written, so no partial dataset becomes visible.

    PII detection runs on ``workers`` processes (default ``settings.extract_workers``, unset =
    every core); the files are byte-identical whatever the count. The manifest's
    ``created_at`` is ``now`` (default: the real clock).
    """

    pseudo = pseudonymiser(settings)  # fail on a missing key before touching anything
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
        workers = workers or settings.extract_workers or _all_cores()

        def attempt() -> tuple[Pseudonymiser, dict[str, Any]]:
            # Read-only, so a lost connection is simply read again, counting from zero.
            fresh = pseudonymiser(settings)
            counts = _extract_to_files(source, retention, fresh, raw_path, quarantine_path, workers)
            return fresh, counts

        pseudo, counts = source.retry(attempt, what=f"extract of {date}", idempotent=True)
        if force:
            storage.delete(manifest_key)  # the old manifest must not vouch for new files
        files = {}
        for name, path in (("raw.parquet", raw_path), ("quarantine.parquet", quarantine_path)):
            info = storage.upload(path, dataset_key(date, name), overwrite=True)
            files[name] = {"sha256": info.sha256, "bytes": info.size}
    manifest = {
        "date": date.isoformat(),
        "code_version": code_version(),
        "created_at": clock.now(now).isoformat(timespec="seconds"),
        "source": source.display_url if not source.embedded else "embedded PostgreSQL",
        "retention": retention.describe(),
        "rows": counts["rows"],
        "quarantined": dict(sorted(counts["quarantined"].items())),
        "excluded": dict(sorted(counts["excluded"].items())),
        "schema_hash": {
            "raw.parquet": schema_hash(contract.RAW_SCHEMA),
            "quarantine.parquet": schema_hash(contract.QUARANTINE_SCHEMA),
        },
        "files": files,
        "privacy": {
            "pii_key_fingerprint": pseudo.fingerprint,
            "pseudonyms": dict(sorted(pseudo.pseudonyms.items())),
            "identifier_fields_removed": pseudo.fields_removed,
        },
    }
    data = json.dumps(manifest, indent=2, sort_keys=False).encode() + b"\n"
    info = storage.write_bytes(manifest_key, data, overwrite=False)
    return ExtractResult(date, False, manifest, info.uri)


def complete(settings: Settings, date: dt.date) -> bool:
    """Whether ``datasets/<date>/`` holds a complete extract: its manifest exists and
    raw.parquet and quarantine.parquet match the sha256 it records."""

    return manifest_complete(open_storage(settings), dataset_key(date, "manifest.json"))


def _all_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def source_queries() -> dict[str, str]:
    """The retention-windowed query of each source, from ``sql/extract/<source>.sql``."""
    return {name: read_sql(f"extract/{name}.sql").strip().rstrip(";") for name in RETENTION_DAYS}


def joined_query(queries: dict[str, str]) -> str:
    """``sql/extract/raw.sql`` with each ``{source}`` replaced by that source's query."""
    joined = read_sql("extract/raw.sql")
    for name, query in queries.items():
        joined = joined.replace("{" + name + "}", query)
    return joined


def known_merchants(conn, retention: Retention) -> frozenset[str]:
    """Merchants of the expense window used by at least MERCHANT_MIN_WORKSPACES workspaces
    (``sql/extract/known_merchants.sql``): names the detectors leave alone."""
    params = retention.params() | {"merchant_min_workspaces": MERCHANT_MIN_WORKSPACES}
    return frozenset(m for (m,) in conn.execute(read_sql("extract/known_merchants.sql"), params))


@dataclass
class Batch:
    """What one batch of source rows became; batches are summed in stream order."""

    good: list[dict[str, Any]]
    bad: list[dict[str, Any]]
    quarantined: Counter[str]
    excluded: Counter[str]
    pseudonyms: Counter[str]
    fields_removed: int


# What a malformed value can raise while a row is built: the row is quarantined with the class
# name. Anything else (OSError, MemoryError, a RuntimeError from the machine) stops the extract.
_DATA_ERRORS = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, UnicodeError, RecursionError
)  # fmt: skip


def build_batch(rows: list[dict[str, Any]], pseudo: Pseudonymiser, retention: Retention) -> Batch:
    """``build_row`` over ``rows``, in order, with what ``pseudo`` counted for them."""
    pseudonyms_before, removed_before = Counter(pseudo.pseudonyms), pseudo.fields_removed
    batch = Batch([], [], Counter(), Counter(), Counter(), 0)
    for row in rows:
        try:
            built = build_row(row, pseudo, retention)
        except _DATA_ERRORS as exc:  # one bad row never stops a night's extract, nor leaks
            built = Rejected(_source_of(row), "unprocessable_row", type(exc).__name__)
        if isinstance(built, dict):
            batch.good.append(built)
        elif built.source == "retention":
            batch.excluded[built.reason] += 1
        else:
            batch.quarantined[built.reason] += 1
            by_trace = built.source == "agent_trace"
            batch.bad.append(
                {
                    "source": built.source,
                    "source_key": row["trace_id" if by_trace else "event_id"],
                    "reason": built.reason,
                    "detail": built.detail,
                }
            )
    batch.pseudonyms = pseudo.pseudonyms - pseudonyms_before
    batch.fields_removed = pseudo.fields_removed - removed_before
    return batch


# One per worker process: set by _start_worker, used by _build_in_worker.
_worker: tuple[Pseudonymiser, Retention] | None = None


def _start_worker(key: bytes, protected: frozenset[str], retention: Retention) -> None:
    import signal

    global _worker
    # Ctrl-C reaches the whole process group: the parent stops the pool, workers stay quiet.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _worker = (Pseudonymiser(key, protected=protected), retention)


def _build_in_worker(rows: list[dict[str, Any]]) -> Batch:
    assert _worker is not None, "worker used before _start_worker"
    return build_batch(rows, *_worker)


def _batches(cursor) -> Iterator[list[dict[str, Any]]]:
    while batch := cursor.fetchmany(BATCH_ROWS):
        yield batch


def _built_batches(
    batches: Iterator[list[dict[str, Any]]],
    pseudo: Pseudonymiser,
    retention: Retention,
    workers: int,
) -> Iterator[Batch]:
    """Each batch built, in the order read, with what it counted (``pseudo`` itself is left
    alone). With more than one worker and more than one batch, a process pool builds up to two
    batches per worker ahead of the writer (so memory holds a few batches, never the table);
    results come back in submission order, so the output is the same for any count. The pool
    is stopped on any error or Ctrl-C before the exception leaves. A source that fits in one
    batch starts no process."""
    local = Pseudonymiser(pseudo.key, protected=pseudo.protected)
    first = next(batches, None)
    second = next(batches, None) if workers > 1 and first is not None else None
    if second is None:
        head = [first] if first is not None else []
        for rows in itertools.chain(head, batches):
            yield build_batch(rows, local, retention)
        return
    import multiprocessing

    # spawn, not fork: the parent holds a database connection and may hold threads.
    context = multiprocessing.get_context("spawn")
    initargs = (pseudo.key, pseudo.protected, retention)
    pool = context.Pool(workers, initializer=_start_worker, initargs=initargs)
    try:
        pending: deque = deque()
        for rows in itertools.chain([first, second], batches):
            pending.append(pool.apply_async(_build_in_worker, (rows,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def _extract_to_files(
    source,
    retention: Retention,
    pseudo: Pseudonymiser,
    raw_path: Path,
    quarantine_path: Path,
    workers: int,
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
            pq.ParquetWriter(raw_path, contract.RAW_SCHEMA, compression="zstd") as raw_writer,
            pq.ParquetWriter(
                quarantine_path, contract.QUARANTINE_SCHEMA, compression="zstd"
            ) as q_writer,
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
            pseudo.protect(known_merchants(conn, retention))
            with conn.cursor(name="pria_extract", row_factory=dict_row) as cursor:
                cursor.itersize = BATCH_ROWS
                cursor.execute(joined, params)
                for batch in _built_batches(_batches(cursor), pseudo, retention, workers):
                    quarantined.update(batch.quarantined)
                    excluded.update(batch.excluded)
                    pseudo.pseudonyms.update(batch.pseudonyms)
                    pseudo.fields_removed += batch.fields_removed
                    if batch.good:
                        table = pa.Table.from_pylist(batch.good, schema=contract.RAW_SCHEMA)
                        raw_writer.write_table(table)
                        rows["raw"] += len(batch.good)
                    if batch.bad:
                        table = pa.Table.from_pylist(batch.bad, schema=contract.QUARANTINE_SCHEMA)
                        q_writer.write_table(table)
    except psycopg.errors.UndefinedTable as exc:
        raise DataError(
            f"the source database {source.display_url} has no {exc.diag.message_primary}: "
            "point PRIA_SOURCE_DATABASE_URL at PRIA's database, or run `pria-ml seed`"
        ) from exc
    rows["quarantined"] = sum(quarantined.values())
    rows["excluded"] = sum(excluded.values())
    return {"rows": rows, "quarantined": quarantined, "excluded": excluded}
