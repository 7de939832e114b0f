"""Spot-check from live traffic: `spot-check draw --week W` samples the conversations the prod
adapters served that week (prod intervals from the registry, agent_trace / workflow_event from
the source), scrubbed and reproducible; QA's verdicts are recorded; a week over the failure
threshold adds a failing clause to the gate until `spot-check ack` acknowledges it."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import uuid
from pathlib import Path

import pytest
from evalrecords import evaluate_and_gate
from pydantic import SecretStr
from typer.testing import CliRunner

from pria_ml import registry
from pria_ml.cli import app
from pria_ml.data.privacy import pseudonymiser
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import ConfigError, DataError
from pria_ml.quality import spotcheck

WEEK = "2026-W48"  # Monday 2026-11-23 to Sunday 2026-11-29
MONDAY = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
SWITCH = dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)  # adapter B replaces A as prod
EMAIL = "jane.doe@example.com"


def test_iso_week_follows_iso_8601() -> None:
    assert spotcheck.iso_week(dt.date(2026, 11, 25)) == WEEK
    assert spotcheck.iso_week(dt.date(2027, 1, 1)) == "2026-W53"
    assert spotcheck.last_week(dt.date(2026, 12, 1)) == WEEK
    assert spotcheck.week_bounds(WEEK) == (MONDAY, MONDAY + dt.timedelta(days=7))


@pytest.mark.parametrize("week", ["2026-48", "2026-W54", "W48"])
def test_a_malformed_week_is_named(week: str) -> None:
    with pytest.raises(ConfigError, match=f"--week {week!r} is not an ISO week"):
        spotcheck.week_bounds(week)


def test_an_unfilled_row_is_named(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=spotcheck.COLUMNS)
        writer.writeheader()
        for i, verdict in enumerate(["ok", "", "ok"]):
            writer.writerow(
                {"adapter_id": str(uuid.UUID(int=1)), "iso_week": WEEK, "sample_id": f"{i:016x}"}
                | {"verdict": verdict}
            )
    with pytest.raises(DataError, match=r"s.csv line 3: verdict '' is not one of ok, wrong"):
        spotcheck.read_sheet(path)


def register(db, day: dt.date) -> uuid.UUID:
    uri = f"file:///adapters/spot-{day}.safetensors"
    return registry.register_candidate(
        db,
        dataset_date=day,
        artifact_uri=uri,
        artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
        base_model="tiny-mistral",
        metrics={},
    )


def seed_traffic(source) -> dict[str, dt.datetime]:
    """40 conversations spread over the week (and one the week before), each with a user's
    identifiers in its metadata and an e-mail address in its text; every fifth overridden.
    Returns {trace_id: time of its agent action}."""
    served = {}
    with source.connect() as conn:
        for i in range(41):
            at = MONDAY + dt.timedelta(hours=4 * i) if i < 40 else MONDAY - dt.timedelta(days=2)
            trace_id, workspace = uuid.uuid4(), uuid.uuid4()
            trace = {
                "session": {"user_id": str(uuid.uuid4()), "user_email": EMAIL},
                "messages": [
                    {"role": "system", "content": "You are PRIA's expense agent."},
                    {"role": "user", "content": f"Categorise Uber 23.{i:02d} EUR, mail {EMAIL}"},
                    {"role": "assistant", "content": "set_category transport"},
                ],
            }
            conn.execute(
                "INSERT INTO agent_trace (trace_id, workspace_id, trace, created_at) "
                "VALUES (%s, %s, %s, %s)",
                (trace_id, workspace, json.dumps(trace), at),
            )
            conn.execute(
                "INSERT INTO workflow_event (event_id, workspace_id, trace_id, event_type, "
                "override_flag, corrected_output, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (uuid.uuid4(), workspace, trace_id, "categorise", i % 5 == 0,
                 "set_category travel" if i % 5 == 0 else None, at + dt.timedelta(minutes=1)),
            )  # fmt: skip
            if i < 40:
                served[str(trace_id)] = at + dt.timedelta(minutes=1)
    return served


def fill(path: Path, wrong: int) -> None:
    rows = list(csv.DictReader(path.open()))
    for i, row in enumerate(rows):
        row["verdict"] = "wrong" if i < wrong else "ok"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=spotcheck.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def test_a_week_of_live_traffic_is_drawn_reviewed_and_reaches_the_gate(
    registry_settings, source_db, tmp_path
) -> None:
    settings = registry_settings.model_copy(
        update={"source_database_url": SecretStr(source_db.url)}
    )
    db = database(settings)
    a, b = register(db, dt.date(2026, 11, 18)), register(db, dt.date(2026, 11, 25))
    before = MONDAY - dt.timedelta(days=3)
    registry.promote(db, adapter_id=a, force=True, reason="prod before the week", now=before)
    registry.promote(db, adapter_id=b, force=True, reason="mid-week", now=SWITCH)
    served = seed_traffic(source_db)

    sheet = spotcheck.draw(settings, week=WEEK, out_dir=tmp_path / "a")
    rows = list(csv.DictReader(sheet.csv_path.open()))
    assert sheet.samples == len(rows) == spotcheck.SAMPLE_SIZE
    # Each conversation belongs to the adapter that was prod when the agent acted on it.
    pseudo = pseudonymiser(settings)
    by_sample = {spotcheck.sample_id(pseudo, t): at for t, at in served.items()}
    for row in rows:
        expected = a if by_sample[row["sample_id"]] < SWITCH else b
        assert row["adapter_id"] == str(expected) and row["iso_week"] == WEEK
    assert set(sheet.adapters) == {a, b} and sum(sheet.adapters.values()) == 25
    # Scrubbed: no workspace or user identifiers, no trace ids, no e-mail address.
    text = sheet.csv_path.read_text() + sheet.html_path.read_text()
    assert EMAIL not in text and "<EMAIL_" in text and "user_id" not in text
    assert not any(trace_id in text for trace_id in served)
    assert "1 action(s), 1 overridden: corrected to set_category travel" in text
    stored = open_storage(settings).read_bytes(spotcheck.sheet_keys(WEEK)[0])
    assert stored == sheet.csv_path.read_bytes()

    env = {
        "PRIA_HOME": str(settings.home),
        "PRIA_DATABASE_URL": settings.database_url.get_secret_value(),
        "PRIA_SOURCE_DATABASE_URL": source_db.url,
        "PRIA_STORAGE_URL": settings.storage_url,
        "PRIA_PII_KEY": settings.pii_key.get_secret_value(),
    }
    runner = CliRunner()
    out = tmp_path / "cli"
    drawn = runner.invoke(app, ["spot-check", "draw", "--week", WEEK, "--out", str(out)], env=env)
    assert drawn.exit_code == 0, drawn.output
    assert (out / f"spot-check-{WEEK}.csv").read_bytes() == sheet.csv_path.read_bytes()

    fill(sheet.csv_path, wrong=6)  # 24 % wrong, over the 20 % threshold
    recorded = runner.invoke(app, ["spot-check", "record", str(sheet.csv_path)], env=env)
    assert recorded.exit_code == 0, recorded.output
    assert "19 ok, 6 wrong" in recorded.output and "gate blocks every promotion" in recorded.output

    candidate = register(db, dt.date(2026, 11, 30))
    blocked = evaluate_and_gate(db, candidate, dt.date(2026, 11, 30))
    (clause,) = [c for c in blocked.as_record().clauses if c.name == "spot_check_failure_share"]
    assert not blocked.passed and not clause.passed
    assert (clause.op, clause.threshold, clause.value) == ("<=", 0.2, pytest.approx(0.24))
    assert f"spot-check ack --week {WEEK}" in clause.note
    assert registry.get_adapter(db, candidate).gate_passed is False

    ack = ["spot-check", "ack", "--week", WEEK, "--by", "qa lead", "--reason", "labels fixed"]
    acknowledged = runner.invoke(app, ack, env=env)
    assert acknowledged.exit_code == 0, acknowledged.output
    assert "acknowledged by qa lead (6 of 25 wrong or unsafe)" in acknowledged.output
    assert "already acknowledged" in runner.invoke(app, ack, env=env).output
    events = [e for e in registry.history(db, limit=10) if e.action == "spot_check_ack"]
    assert {e.adapter_id for e in events} == {a, b} and all(e.actor for e in events)

    passed = evaluate_and_gate(db, candidate, dt.date(2026, 11, 30))
    assert passed.passed and "spot_check_failure_share" not in passed.inputs


def test_ack_of_a_week_nobody_reviewed_is_refused(registry_settings) -> None:
    with pytest.raises(registry.RegistryError, match="2026-W47 has no recorded verdicts"):
        spotcheck.acknowledge(registry_settings, "2026-W47", by="qa lead")


def test_a_week_without_a_prod_adapter_has_nothing_to_draw(registry_settings, tmp_path) -> None:
    with pytest.raises(registry.RegistryError, match="no adapter was prod during 2026-W48"):
        spotcheck.draw(registry_settings, week=WEEK, out_dir=tmp_path)
