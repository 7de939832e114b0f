import datetime
import json
import logging
import threading

import psycopg
import pytest

from pria_ml import registry
from pria_ml.db import Database
from pria_ml.errors import DatabaseUnavailable, RegistryBusy, RegistryError
from pria_ml.operations import render
from pria_ml.registry import (
    archive,
    current_prod,
    get_adapter,
    history,
    promote,
    replay,
    rollback,
)


def _snapshot(db: Database) -> tuple:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT adapter_id, status, promoted_at, superseded_at FROM pria.model_registry"
            " ORDER BY adapter_id"
        ).fetchall()
        events = conn.execute("SELECT count(*) FROM pria.registry_event").fetchone()
    return rows, events


def test_promote_then_rollback_restores_previous_prod(registry_db: Database, candidate) -> None:
    a, b = candidate(), candidate()
    first = promote(registry_db, adapter_id=a)
    assert first.changed and first.previous_prod is None
    second = promote(registry_db, adapter_id=str(b))
    assert second.previous_prod == a
    assert get_adapter(registry_db, a).state == "superseded"
    back = rollback(registry_db, reason="latency regression")
    assert back.changed and back.adapter_id == a and back.previous_prod == b
    assert current_prod(registry_db).adapter_id == a
    events = history(registry_db)
    assert events[0].action == "rollback" and events[0].reason == "latency regression"
    assert replay(events) == {x.adapter_id: x.status for x in registry.adapters(registry_db)}


def test_promote_current_prod_is_a_no_op(registry_db: Database, candidate) -> None:
    a = candidate()
    promote(registry_db, adapter_id=a)
    before = _snapshot(registry_db)
    again = promote(registry_db, adapter_id=a)
    assert not again.changed and "already prod" in again.message
    assert _snapshot(registry_db) == before


def test_promote_by_date_and_forced_promotion_is_recorded(registry_db: Database, candidate) -> None:
    day = datetime.date(2026, 11, 20)
    failed = candidate(day, gate=False)
    with pytest.raises(RegistryError, match="no candidate of 2026-11-20 passed the gate"):
        promote(registry_db, dataset_date=day)
    with pytest.raises(RegistryError, match="failed the gate.*--force --reason"):
        promote(registry_db, adapter_id=failed)
    with pytest.raises(RegistryError, match="forced promotion needs a reason"):
        promote(registry_db, adapter_id=failed, force=True)
    forced = promote(registry_db, dataset_date=day, force=True, reason="CTO sign-off #123")
    assert forced.adapter_id == failed
    (event,) = [e for e in history(registry_db) if e.action == "promote"]
    assert event.forced and event.reason == "CTO sign-off #123"


def test_ungated_candidate_is_refused(registry_db: Database, candidate) -> None:
    ungated = candidate(gate=None)
    with pytest.raises(RegistryError, match="has no gate decision") as info:
        promote(registry_db, adapter_id=ungated)
    assert info.value.exit_code == 7
    assert current_prod(registry_db) is None


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("promote_unknown", "no adapter"),
        ("promote_archived", "archived adapters are never promoted"),
        ("promote_garbage_id", "is not an adapter id"),
        ("rollback_first_prod", "no previous prod"),
        ("rollback_to_never_prod", "was never prod"),
        ("rollback_to_unknown", "no adapter"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(
    registry_db: Database, candidate, action: str, message: str
) -> None:
    a, b, c = candidate(), candidate(), candidate()
    promote(registry_db, adapter_id=a)
    if action != "rollback_first_prod":
        promote(registry_db, adapter_id=b)
        archive(registry_db, older_than=datetime.timedelta(0))  # a, superseded, is archived
    before = _snapshot(registry_db)
    calls = {
        "promote_unknown": lambda: promote(
            registry_db, adapter_id="6f1c1c3e-0000-4000-8000-000000000000"
        ),
        "promote_archived": lambda: promote(registry_db, adapter_id=a, force=True, reason="x"),
        "promote_garbage_id": lambda: promote(registry_db, adapter_id="prod-latest"),
        "rollback_first_prod": lambda: rollback(registry_db),
        "rollback_to_never_prod": lambda: rollback(registry_db, to=c),
        "rollback_to_unknown": lambda: rollback(
            registry_db, to="6f1c1c3e-0000-4000-8000-000000000000"
        ),
    }
    with pytest.raises(RegistryError, match=message):
        calls[action]()
    assert _snapshot(registry_db) == before


def test_rollback_with_no_prod_is_refused(registry_db: Database, candidate) -> None:
    candidate()
    with pytest.raises(RegistryError, match="no prod adapter to roll back from"):
        rollback(registry_db)


def test_archive_keeps_recent_former_prods(registry_db: Database, candidate) -> None:
    a, b = candidate(), candidate()
    promote(registry_db, adapter_id=a)
    promote(registry_db, adapter_id=b)
    assert archive(registry_db) == []
    assert archive(registry_db, older_than=datetime.timedelta(0)) == [a]
    assert get_adapter(registry_db, a).status == "archived"
    with pytest.raises(RegistryError, match="must not be negative"):
        archive(registry_db, older_than=datetime.timedelta(days=-1))


def test_each_change_stamps_the_time_it_is_given(registry_db: Database) -> None:
    """A simulated night records its simulated time: rows and events carry ``now``, and archive
    judges a former prod's age from ``now``, not from the database server's clock."""
    night = datetime.datetime(2025, 3, 4, 1, 0, tzinfo=datetime.UTC)
    week = datetime.timedelta(days=7)

    def make(n: int):
        uri = f"file:///adapters/stamped-{n}.safetensors"
        adapter_id = registry.register_candidate(
            registry_db,
            dataset_date=datetime.date(2025, 3, n),
            artifact_uri=uri,
            artifact_sha256=f"{n:064x}",
            base_model="tiny-mistral",
            metrics={},
            now=night,
        )
        registry.record_gate_decision(
            registry_db, adapter_id, passed=True, reason="ok", metrics={}, now=night
        )
        return adapter_id

    a, b = make(1), make(2)
    promote(registry_db, adapter_id=a, now=night)
    promote(registry_db, adapter_id=b, now=night + week)
    rollback(registry_db, now=night + week + datetime.timedelta(hours=1))
    a_row, b_row = get_adapter(registry_db, a), get_adapter(registry_db, b)
    assert (a_row.created_at, a_row.gate_decided_at) == (night, night)
    assert a_row.promoted_at == night + week + datetime.timedelta(hours=1)
    assert b_row.superseded_at == night + week + datetime.timedelta(hours=1)
    assert [e.occurred_at for e in reversed(history(registry_db))] == [
        night, night, night, night, night, night + week, night + week + datetime.timedelta(hours=1)
    ]  # fmt: skip
    # b was superseded a week and an hour after `night`: 7 days old only a week later.
    assert archive(registry_db, now=night + 2 * week) == []
    assert archive(registry_db, now=night + 3 * week) == [b]
    assert get_adapter(registry_db, b).archived_at == night + 3 * week
    assert history(registry_db, limit=1)[0].occurred_at == night + 3 * week


def test_every_change_of_prod_is_notified(registry_db: Database, candidate) -> None:
    a, b = candidate(), candidate()
    with psycopg.connect(registry_db.url, autocommit=True) as listener:
        listener.execute(f"LISTEN {registry.NOTIFY_CHANNEL}")
        promote(registry_db, adapter_id=a)
        promote(registry_db, adapter_id=a)  # no-op: no notification
        with pytest.raises(RegistryError):
            promote(registry_db, adapter_id=candidate(gate=False))  # refused: none either
        promote(registry_db, adapter_id=b)
        rollback(registry_db)
        payloads = [json.loads(n.payload) for n in listener.notifies(timeout=1.0)]
    assert [(p["action"], p["adapter_id"], p["previous_prod"]) for p in payloads] == [
        ("promote", str(a), None),
        ("promote", str(b), str(a)),
        ("rollback", str(a), str(b)),
    ]
    assert payloads[0]["artifact_uri"] == get_adapter(registry_db, a).artifact_uri


def test_busy_registry_is_retried_then_reported(
    registry_db: Database, candidate, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    a, b = candidate(), candidate()
    promote(registry_db, adapter_id=a)
    monkeypatch.setattr(registry, "LOCK_TIMEOUT_MS", 50)
    monkeypatch.setattr(registry, "BUSY_RETRIES", 2)
    monkeypatch.setattr(registry, "BUSY_BACKOFF_S", 0.01)
    with registry_db.connect() as holder:
        holder.execute("SELECT pria.lock_registry()")
        with pytest.raises(RegistryBusy, match="registry busy.*after 2 retries.*nothing was"):
            promote(registry_db, adapter_id=b)
        assert current_prod(registry_db).adapter_id == a

        monkeypatch.setattr(registry, "BUSY_RETRIES", 50)
        release = threading.Timer(0.3, holder.rollback)
        release.start()
        with caplog.at_level(logging.WARNING, logger="pria_ml.registry"):
            promoted = promote(registry_db, adapter_id=b)
        release.join()
    assert promoted.changed and current_prod(registry_db).adapter_id == b
    assert "registry busy (55P03), retried" in caplog.text


def test_database_down_is_a_clear_error() -> None:
    down = Database(
        role="registry",
        url="postgresql://pria@127.0.0.1:9/pria",
        embedded=False,
        retry_deadline_s=0.5,
    )
    with pytest.raises(DatabaseUnavailable, match="cannot connect to the registry database") as e:
        promote(down, adapter_id="6f1c1c3e-0000-4000-8000-000000000000")
    assert e.value.exit_code == 3
    with pytest.raises(DatabaseUnavailable):
        rollback(down)


def test_promote_waits_for_a_gate_decision_in_flight(registry_db: Database, candidate) -> None:
    """A failing gate decision committed while promote waits must be the one promote sees."""
    a = candidate()
    outcome: list[object] = []
    with registry_db.connect() as evaluation:
        evaluation.execute(
            "SELECT pria.record_gate_decision(%s, false, 'late failure', '{}', 'eval')", (a,)
        )

        def operator() -> None:
            try:
                outcome.append(promote(registry_db, adapter_id=a))
            except RegistryError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=operator)
        thread.start()
        thread.join(timeout=0.5)
        assert thread.is_alive(), "promote must wait for the row the evaluation is writing"
    thread.join(timeout=10)
    (result,) = outcome
    assert isinstance(result, RegistryError) and "late failure" in str(result)
    assert current_prod(registry_db) is None


def test_history_view_of_an_empty_and_a_busy_registry(registry_db: Database, candidate) -> None:
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render.history(None, [], []))
    assert "prod: none yet" in console.export_text()

    a = candidate(gate=False)
    promote(registry_db, adapter_id=a, force=True, reason="[bold]incident 7[/]")
    console = Console(record=True, width=120)
    console.print(
        render.history(
            current_prod(registry_db), registry.adapters(registry_db), history(registry_db)
        )
    )
    text = console.export_text()
    assert f"prod: {a}" in text and "failed" in text
    assert "forced: [bold]incident 7[/]" in text  # user text is shown, not interpreted


def test_promote_by_date_takes_the_newest_attempt_even_when_the_clock_says_otherwise(
    registry_db: Database,
) -> None:
    """Two gated attempts of one date, the second stamped *earlier* (a simulated night, or a
    clock step back between retrains): --date promotes attempt 2, as train, eval and gate read
    "the adapter of the date"."""
    day = datetime.date(2026, 11, 24)
    night = datetime.datetime(2026, 11, 25, 2, tzinfo=datetime.UTC)
    attempts = []
    for stamp in (night + datetime.timedelta(hours=1), night):  # attempt 2 stamped earlier
        uri = f"file:///adapters/{day}.a{len(attempts) + 1}.safetensors"
        adapter_id = registry.register_candidate(
            registry_db,
            dataset_date=day,
            artifact_uri=uri,
            artifact_sha256=f"{len(attempts) + 1:064x}",
            base_model="tiny-mistral",
            metrics={"train_loss": 0.5},
            now=stamp,
        )
        registry.record_gate_decision(
            registry_db, adapter_id, passed=True, reason="all gate metrics within limits",
            metrics={"accuracy_delta": 1.0, "safety_flags": 0},
        )  # fmt: skip
        attempts.append(adapter_id)
    first, second = attempts
    assert get_adapter(registry_db, first).created_at > get_adapter(registry_db, second).created_at
    assert registry.adapter_of_date(registry_db, day).adapter_id == second
    assert promote(registry_db, dataset_date=day).adapter_id == second
    assert current_prod(registry_db).attempt == 2
