"""Extraction against a real PostgreSQL and real Parquet: contract, retention, quarantine,
idempotency, and what happens when the input or the database is bad."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import pyarrow.parquet as pq
import pytest
from extract_samples import DAY
from pydantic import SecretStr

from pria_ml import extract
from pria_ml.data import privacy
from pria_ml.data.contract import RAW_SCHEMA
from pria_ml.data.storage import open_storage
from pria_ml.db import Database
from pria_ml.errors import ConfigError, DatabaseUnavailable, DataError
from pria_ml.settings import Settings
from pria_ml.world import seed

AT = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
WORKSPACE = "00000000-0000-4000-8000-00000000aaaa"


def _trace(messages) -> str:
    session = {"user": {"user_id": "u-1", "email": "x@y.example"}}
    return json.dumps({"session": session, "messages": messages})


GOOD_MESSAGES = [
    {"role": "system", "content": "You file expenses."},
    {"role": "user", "content": "File my Lufthansa receipt, I'm Aleksandra Wiśniewska."},
    {"role": "tool", "content": '{"merchant": "Lufthansa", "user_email": "a.w@poczta.pl"}'},
    {"role": "assistant", "content": 'categorize(category_id=1, merchant="Lufthansa")'},
]


def insert(
    db: Database,
    *,
    messages=GOOD_MESSAGES,
    trace: str | None = "default",
    at: dt.datetime = AT,
    expense_at: dt.datetime | None = None,
    event_type: str | None = seed.EVENT_TYPE,
    override_flag: bool | None = False,
    corrected_output: str | None = None,
    with_trace: bool = True,
) -> str:
    """One hand-made event (+ trace + expense); returns the event id."""
    event_id, trace_id, expense_id = (str(uuid.uuid4()) for _ in range(3))
    body = _trace(messages) if trace == "default" else trace
    with db.connect() as conn:
        conn.execute(
            "INSERT INTO expense (expense_id, workspace_id, user_id, description, merchant, notes,"
            " category_id, amount, currency, created_at) VALUES (%s, %s, %s, %s, %s, %s, 1, 10,"
            " 'EUR', %s)",
            (
                expense_id,
                WORKSPACE,
                str(uuid.uuid4()),
                "Flight to Kraków",
                "Lufthansa",
                "card 4111 1111 1111 1111",
                expense_at or at,
            ),
        )
        if with_trace:
            conn.execute(
                "INSERT INTO agent_trace (trace_id, workspace_id, expense_id, trace, created_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (trace_id, WORKSPACE, expense_id, body, at),
            )
        conn.execute(
            "INSERT INTO workflow_event (event_id, workspace_id, trace_id, event_type,"
            " override_flag, corrected_output, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (event_id, WORKSPACE, trace_id, event_type, override_flag, corrected_output, at),
        )
    return event_id


def read(settings: Settings, name: str):
    return open_storage(settings).read_parquet(f"datasets/{DAY}/{name}")


def manifest(settings: Settings) -> dict:
    return json.loads(open_storage(settings).read_bytes(f"datasets/{DAY}/manifest.json"))


def test_seeded_source_extracts_to_the_contract_schema(source_settings: Settings) -> None:
    report = seed.seed(source_settings, rows=400, seed=3, end_date=DAY, days=120)
    result = extract.run(source_settings, DAY)

    raw = read(source_settings, "raw.parquet")
    assert raw.schema.equals(RAW_SCHEMA)
    assert not result.skipped
    rows = result.manifest["rows"]
    assert rows["workflow_event"] == report.rows
    assert rows["raw"] == raw.num_rows > 0
    assert rows["raw"] + rows["quarantined"] + rows["excluded"] == rows["workflow_event"]
    assert result.manifest["excluded"] == {"trace_outside_retention": rows["excluded"]}
    assert rows["excluded"] > 0  # 120 days of events, 90 days of traces
    assert min(raw.column("record_date").to_pylist()) >= DAY - dt.timedelta(days=89)

    first = raw.slice(0, 1).to_pylist()[0]
    assert [m["role"] for m in first["prompt_messages"]] == ["system", "user", "tool"]
    assert first["agent_output"].startswith("categorize(category_id=")
    assert first["expense_text"] and first["category_id"] in seed.CATEGORIES
    approved = [
        row["corrected_output"] if row["override_flag"] else row["agent_output"]
        for row in raw.to_pylist()
    ]
    assert all(a.startswith("categorize(category_id=") for a in approved)
    overridden = raw.filter(raw.column("override_flag")).to_pylist()
    assert overridden and all(r["corrected_output"] != r["agent_output"] for r in overridden)


def test_manifest_is_complete_and_checksums_match_the_files(source_settings: Settings) -> None:
    seed.seed(source_settings, rows=150, seed=1, end_date=DAY, days=60)
    result = extract.run(source_settings, DAY)
    storage = open_storage(source_settings)
    m = manifest(source_settings)
    assert m == result.manifest
    for name in ("raw.parquet", "quarantine.parquet"):
        data = storage.read_bytes(f"datasets/{DAY}/{name}")
        assert m["files"][name] == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    assert m["schema_hash"]["raw.parquet"] == extract.schema_hash(RAW_SCHEMA)
    assert m["retention"]["agent_trace"] == {
        "days": 90,
        "from": "2026-08-27T00:00:00+00:00",
        "until": "2026-11-25T00:00:00+00:00",
    }
    assert m["retention"]["expense"]["days"] == 180
    assert m["retention"]["workflow_event"]["days"] == 365
    assert m["code_version"].startswith("0.")
    assert set(m["rows"]) >= {"workflow_event", "agent_trace", "expense", "raw", "quarantined"}
    assert m["privacy"]["pseudonyms"]["EMAIL"] > 0
    assert m["privacy"]["identifier_fields_removed"] > 0


def test_rerun_is_a_no_op_and_force_redoes_it(source_settings: Settings) -> None:
    seed.seed(source_settings, rows=100, seed=2, end_date=DAY, days=60)
    first = extract.run(source_settings, DAY)
    storage = open_storage(source_settings)
    raw_before = storage.read_bytes(f"datasets/{DAY}/raw.parquet")

    again = extract.run(source_settings, DAY)
    assert again.skipped and again.manifest == first.manifest

    insert(Database("source", source_settings.source_database_url.get_secret_value(), False))
    forced = extract.run(source_settings, DAY, force=True)
    assert not forced.skipped
    assert forced.manifest["rows"]["raw"] == first.manifest["rows"]["raw"] + 1
    assert storage.read_bytes(f"datasets/{DAY}/raw.parquet") != raw_before
    assert manifest(source_settings) == forced.manifest


def test_same_source_and_key_give_the_same_raw_file(source_settings: Settings, tmp_path) -> None:
    seed.seed(source_settings, rows=120, seed=5, end_date=DAY, days=60)
    extract.run(source_settings, DAY)
    other = source_settings.model_copy(update={"storage_url": (tmp_path / "s2").as_uri()})
    extract.run(other, DAY)
    assert read(source_settings, "raw.parquet").equals(read(other, "raw.parquet"))


def test_retention_windows_are_relative_to_the_date(
    source_settings: Settings, source_db: Database
) -> None:
    until = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
    inside = insert(source_db, at=until - dt.timedelta(days=90))  # first second of the window
    old_trace = insert(source_db, at=until - dt.timedelta(days=90, seconds=1))
    tomorrow = insert(source_db, at=until)  # after D: not part of D's dataset
    old_expense = insert(
        source_db, at=until - dt.timedelta(days=10), expense_at=until - dt.timedelta(days=181)
    )
    result = extract.run(source_settings, DAY)

    raw = {row["event_id"]: row for row in read(source_settings, "raw.parquet").to_pylist()}
    assert set(raw) == {inside, old_expense}
    assert old_trace not in raw and tomorrow not in raw
    assert raw[old_expense]["category_id"] is None and raw[old_expense]["expense_text"] is None
    assert raw[inside]["category_id"] == 1
    assert result.manifest["excluded"] == {"trace_outside_retention": 1}
    assert result.manifest["rows"]["workflow_event"] == 3  # the event after D is not counted


@pytest.mark.parametrize(
    ("kwargs", "reason", "source"),
    [
        ({"trace": '"just a string"'}, "malformed_trace_json", "agent_trace"),
        ({"trace": '{"messages": {"role": "user"}}'}, "malformed_trace_json", "agent_trace"),
        ({"trace": None}, "null_trace", "agent_trace"),
        (
            {"messages": [{"role": "user", "content": 42}, GOOD_MESSAGES[3]]},
            "malformed_trace_json",
            "agent_trace",
        ),
        (
            {"messages": [{"role": "bot", "content": "hi"}, GOOD_MESSAGES[3]]},
            "unknown_role",
            "agent_trace",
        ),
        ({"messages": GOOD_MESSAGES[:3]}, "no_agent_action", "agent_trace"),
        ({"messages": GOOD_MESSAGES[3:]}, "empty_prompt", "agent_trace"),
        ({"event_type": None}, "null_event_type", "workflow_event"),
        ({"override_flag": None}, "null_override_flag", "workflow_event"),
        ({"override_flag": True}, "override_without_correction", "workflow_event"),
        ({"with_trace": False}, "trace_missing", "workflow_event"),
    ],
)
def test_bad_rows_are_quarantined_with_a_reason(
    source_settings: Settings, source_db: Database, kwargs: dict, reason: str, source: str
) -> None:
    good = insert(source_db)
    insert(source_db, **kwargs)
    result = extract.run(source_settings, DAY)

    assert read(source_settings, "raw.parquet").column("event_id").to_pylist() == [good]
    quarantine = read(source_settings, "quarantine.parquet").to_pylist()
    assert [(q["source"], q["reason"]) for q in quarantine] == [(source, reason)]
    assert quarantine[0]["source_key"] and quarantine[0]["detail"]
    assert result.manifest["quarantined"] == {reason: 1}
    assert result.manifest["rows"]["quarantined"] == 1


def test_quarantine_detail_carries_no_raw_pii(
    source_settings: Settings, source_db: Database
) -> None:
    insert(source_db, messages=[{"role": "jan.kowalski@poczta.pl", "content": "x"}])
    extract.run(source_settings, DAY)
    (row,) = read(source_settings, "quarantine.parquet").to_pylist()
    assert row["reason"] == "unknown_role"
    assert "kowalski" not in row["detail"] and "<EMAIL_" in row["detail"]


def test_missing_pii_key_is_a_config_error_naming_it(source_settings: Settings) -> None:
    keyless = source_settings.model_copy(update={"pii_key": None})
    with pytest.raises(ConfigError, match="PRIA_PII_KEY"):
        extract.run(keyless, DAY)
    assert open_storage(keyless).list() == []


def test_unreachable_source_fails_clearly_and_writes_nothing(settings: Settings) -> None:
    down = settings.model_copy(
        update={"source_database_url": SecretStr("postgresql://pria@127.0.0.1:1/nowhere")}
    )
    with pytest.raises(DatabaseUnavailable, match="PRIA_SOURCE_DATABASE_URL"):
        extract.run(down, DAY)
    assert open_storage(down).list() == []


def test_source_without_tables_is_a_data_error(settings: Settings, fresh_db: Database) -> None:
    empty = settings.model_copy(update={"source_database_url": SecretStr(fresh_db.url)})
    with pytest.raises(DataError, match="pria-ml seed"):
        extract.run(empty, DAY)
    assert open_storage(empty).list() == []


def test_extraction_runs_in_a_read_only_transaction(
    source_settings: Settings, source_db: Database, monkeypatch
) -> None:
    """The SQL files run read-only: a query that writes is refused by PostgreSQL itself."""
    original = extract.read_sql

    def writing(name: str) -> str:
        if name == "extract/expense.sql":
            return "SELECT * FROM (SELECT 1) s, LATERAL (SELECT nextval('evil')) n"
        return original(name)

    with source_db.connect() as conn:
        conn.execute("CREATE SEQUENCE evil")
    insert(source_db)
    monkeypatch.setattr(extract, "read_sql", writing)
    with pytest.raises(Exception, match="read-only transaction"):
        extract.run(source_settings, DAY)
    assert open_storage(source_settings).list() == []


def test_memory_holds_one_batch_not_the_table(source_settings: Settings, monkeypatch) -> None:
    """Rows arrive in batches of BATCH_ROWS from a server-side cursor; each becomes a row group."""
    monkeypatch.setattr(extract, "BATCH_ROWS", 25)
    seed.seed(source_settings, rows=200, seed=4, end_date=DAY, days=30)
    extract.run(source_settings, DAY)
    path = open_storage(source_settings).root / f"datasets/{DAY}/raw.parquet"
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_rows == 200
    assert metadata.num_row_groups == 8
    assert all(metadata.row_group(i).num_rows == 25 for i in range(8))


def test_unparsable_trace_text_is_quarantined_not_a_crash() -> None:
    """A source whose trace column is text (not jsonb) can hold broken JSON."""
    pseudo = privacy.Pseudonymiser(b"k")
    row = {
        "event_id": "e1",
        "trace_id": "t1",
        "event_type": seed.EVENT_TYPE,
        "override_flag": False,
        "corrected_output": None,
        "created_at": AT,
        "trace_found": True,
        "action_index": 1,
        "trace": '{"messages": [{"role": "user", "content": "hi from jan@x.pl"',
    }
    rejected = extract.build_row(row, pseudo, extract.Retention(DAY))
    assert rejected == extract.Rejected("agent_trace", "malformed_trace_json", rejected.detail)
    assert rejected.detail.startswith("not JSON") and "jan@x.pl" not in rejected.detail


def test_a_failure_mid_stream_leaves_no_dataset(
    source_settings: Settings, monkeypatch, tmp_path
) -> None:
    source_settings = source_settings.model_copy(update={"extract_workers": 1})
    seed.seed(source_settings, rows=120, seed=6, end_date=DAY, days=30)
    extract.run(source_settings, DAY)
    before = manifest(source_settings)
    monkeypatch.setattr(extract, "BATCH_ROWS", 20)
    calls = {"n": 0}
    original = extract.build_row

    def dies_on_row_50(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 50:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    monkeypatch.setattr(extract, "build_row", dies_on_row_50)
    with pytest.raises(RuntimeError, match="disk full"):
        extract.run(source_settings, DAY, force=True)
    # The previous complete dataset is untouched: nothing was uploaded, no manifest removed.
    assert manifest(source_settings) == before
    fresh = source_settings.model_copy(update={"storage_url": (tmp_path / "fresh").as_uri()})
    calls["n"] = 0
    with pytest.raises(RuntimeError, match="disk full"):
        extract.run(fresh, DAY)
    assert open_storage(fresh).list() == []


def test_each_event_of_a_multi_action_trace_gets_its_own_action(
    source_settings: Settings, source_db: Database
) -> None:
    messages = [
        *GOOD_MESSAGES,
        {"role": "user", "content": "No - that was a train ticket."},
        {"role": "assistant", "content": 'categorize(category_id=3, merchant="Lufthansa")'},
    ]
    trace_id = str(uuid.uuid4())
    events = [str(uuid.uuid4()) for _ in range(3)]
    with source_db.connect() as conn:
        conn.execute(
            "INSERT INTO agent_trace VALUES (%s, %s, NULL, %s, %s)",
            (trace_id, WORKSPACE, _trace(messages), AT),
        )
        for k, event_id in enumerate(events):
            conn.execute(
                "INSERT INTO workflow_event VALUES (%s, %s, %s, %s, false, NULL, %s)",
                (event_id, WORKSPACE, trace_id, seed.EVENT_TYPE, AT + dt.timedelta(minutes=k)),
            )
    extract.run(source_settings, DAY)

    first, second = read(source_settings, "raw.parquet").to_pylist()
    assert (first["event_id"], second["event_id"]) == (events[0], events[1])
    assert first["agent_output"] == 'categorize(category_id=1, merchant="Lufthansa")'
    assert second["agent_output"] == 'categorize(category_id=3, merchant="Lufthansa")'
    assert [m["role"] for m in first["prompt_messages"]] == ["system", "user", "tool"]
    assert [m["role"] for m in second["prompt_messages"]] == [
        "system",
        "user",
        "tool",
        "assistant",
        "user",
    ]
    (rejected,) = read(source_settings, "quarantine.parquet").to_pylist()
    assert (rejected["reason"], rejected["source_key"]) == ("no_agent_action", trace_id)
    assert rejected["detail"] == "event is action 3 of its trace, which has 2"


def test_output_is_byte_identical_on_one_and_two_workers(
    source_settings: Settings, tmp_path, monkeypatch
) -> None:
    """Batches go to a process pool and come back in order: the files do not depend on the
    worker count. Small batches, so both workers get several."""
    monkeypatch.setattr(extract, "BATCH_ROWS", 40)
    seed.seed(source_settings, rows=300, seed=8, end_date=DAY, days=60)
    runs = {}
    for workers in (1, 2):
        settings = source_settings.model_copy(
            update={"storage_url": (tmp_path / f"w{workers}").as_uri()}
        )
        extract.run(settings, DAY, workers=workers)
        storage = open_storage(settings)
        runs[workers] = {
            name: storage.read_bytes(f"datasets/{DAY}/{name}")
            for name in ("raw.parquet", "quarantine.parquet", "manifest.json")
        }
    assert runs[1]["raw.parquet"] == runs[2]["raw.parquet"]
    assert runs[1]["quarantine.parquet"] == runs[2]["quarantine.parquet"]
    # The manifest differs only in its creation time; its counts and checksums are the same.
    one, two = (json.loads(runs[w]["manifest.json"]) for w in (1, 2))
    assert one.pop("created_at") and two.pop("created_at")
    assert one == two
    assert one["privacy"]["pseudonyms"]["NAME"] > 0
    assert one["rows"]["raw"] > 40 * 2


def test_a_failure_with_a_worker_pool_stops_the_pool_and_leaves_no_dataset(
    source_settings: Settings, monkeypatch
) -> None:
    """An error while batches are in flight (here: the writer) stops and joins the workers
    before it propagates; nothing is uploaded."""
    import multiprocessing

    import pyarrow.parquet as pq

    monkeypatch.setattr(extract, "BATCH_ROWS", 20)
    seed.seed(source_settings, rows=200, seed=6, end_date=DAY, days=30)
    original = pq.ParquetWriter.write_table
    calls = {"n": 0}

    def disk_full_on_third(self, table, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("disk full")
        return original(self, table, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", disk_full_on_third)
    with pytest.raises(OSError, match="disk full"):
        extract.run(source_settings, DAY, workers=2)
    assert multiprocessing.active_children() == []
    assert open_storage(source_settings).list() == []
