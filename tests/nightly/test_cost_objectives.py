"""`pria-ml cost` and `pria-ml objectives` read the registry's recorded runs and the source's
workflow_event, and compare them with the spec's targets."""

import datetime as dt
import hashlib
import json

import pytest
from evalrecords import evaluate_and_gate
from pydantic import SecretStr
from typer.testing import CliRunner

from pria_ml import registry
from pria_ml.cli import app
from pria_ml.db import database
from pria_ml.operations import objectives
from pria_ml.training import cost
from pria_ml.world.seed import apply_schema

TODAY = dt.date(2026, 11, 25)  # a Wednesday of ISO week 2026-W48


def register(db, day: dt.date, usd: float, **metrics) -> object:
    uri = f"file:///adapters/{day}-{usd}.safetensors"
    return registry.register_candidate(
        db,
        dataset_date=day,
        artifact_uri=uri,
        artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
        base_model="tiny-mistral",
        metrics={"cost_usd": usd, "gpu_hours": usd / 2.13, "gpu_type": "A10G", **metrics},
    )


@pytest.fixture
def recorded(registry_settings):
    db = database(registry_settings)
    for back, usd in ((0, 1.6), (1, 160.0), (2, 30.0), (40, 99.0)):
        register(db, TODAY - dt.timedelta(days=back), usd)
    return registry_settings


def test_spend_per_night_and_over_30_days_against_the_budget(recorded) -> None:
    report = cost.spend(recorded, as_of=TODAY)
    assert [n.date for n in report.nights] == [TODAY - dt.timedelta(days=d) for d in (2, 1, 0)]
    assert report.window_usd == pytest.approx(191.6)
    assert report.all_time_usd == pytest.approx(290.6)
    assert not report.alerting
    assert [n.over(report.nightly_budget_usd) for n in report.nights] == [False, True, False]


def test_cost_command_prints_table_and_json(recorded, monkeypatch) -> None:
    monkeypatch.setenv("PRIA_HOME", str(recorded.home))
    monkeypatch.setenv("PRIA_DATABASE_URL", recorded.database_url.get_secret_value())
    runner = CliRunner()
    table = runner.invoke(app, ["cost", "--as-of", TODAY.isoformat()])
    assert table.exit_code == 0, table.output
    assert "30-day spend $191.60 of the $200.00 alert threshold" in table.output
    data = json.loads(runner.invoke(app, ["cost", "--as-of", TODAY.isoformat(), "--json"]).output)
    assert data["window_usd"] == pytest.approx(191.6) and len(data["nights"]) == 3


def fill_events(settings, weeks: dict[dt.date, tuple[int, int]]) -> None:
    """workflow_event rows: per Monday, (events, overrides)."""
    source = database(settings, "source")
    apply_schema(source)
    with source.connect() as conn:
        conn.execute("TRUNCATE workflow_event")
        for monday, (events, overrides) in weeks.items():
            for n in range(events):
                conn.execute(
                    "INSERT INTO workflow_event (event_id, workspace_id, event_type, "
                    "override_flag, created_at) VALUES (gen_random_uuid(), gen_random_uuid(), "
                    "'categorise', %s, %s)",
                    (n < overrides, dt.datetime.combine(monday, dt.time(12), tzinfo=dt.UTC)),
                )


def test_objectives_per_iso_week_against_the_targets(recorded, scratch_database) -> None:
    with scratch_database("source", role="source") as source:
        settings = recorded.model_copy(update={"source_database_url": SecretStr(source.url)})
        this_monday = TODAY - dt.timedelta(days=TODAY.weekday())
        weeks = {
            this_monday - dt.timedelta(weeks=2): (50, 10),  # 20 %
            this_monday - dt.timedelta(weeks=1): (50, 9),  # 18 %: -2 pp, target met
            this_monday: (40, 8),  # 20 %: +2 pp, missed
        }
        fill_events(settings, weeks)
        db = database(settings)
        # The registry is given the time it stamps: the promotion falls in TODAY's ISO week
        # whatever the date the suite runs on.
        at = dt.datetime.combine(TODAY, dt.time(1, 30), tzinfo=dt.UTC)
        promoted = register(db, TODAY, 0.5)
        evaluate_and_gate(db, promoted, TODAY, latency_delta=0.08, now=at)  # +8 %: blocked
        registry.promote(db, adapter_id=promoted, force=True, reason="objectives test", now=at)
        report = objectives.report(settings, weeks=2, today=TODAY)
        # Without a day, the weeks are the source's own: those of its newest recorded action
        # (simulated time in the demo's home), not the real clock's.
        own_time = objectives.report(settings, weeks=2)
        assert own_time.as_dict()["weeks"] == report.as_dict()["weeks"]
        env = {
            "PRIA_HOME": str(settings.home),
            "PRIA_DATABASE_URL": settings.database_url.get_secret_value(),
            "PRIA_SOURCE_DATABASE_URL": source.url,
        }
        shown = CliRunner().invoke(
            app, ["objectives", "--weeks", "2", "--as-of", TODAY.isoformat(), "--json"], env=env
        )
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["weeks"] == report.as_dict()["weeks"]
    last_week, this_week = report.weeks
    assert (last_week.week, this_week.week) == ("2026-W47", "2026-W48")
    assert last_week.override_rate_pct == pytest.approx(18.0)
    assert last_week.change_pp == pytest.approx(-2.0) and last_week.override_ok
    assert this_week.change_pp == pytest.approx(2.0) and this_week.override_ok is False
    (promotion,) = this_week.promotions
    assert promotion.promoted_at == "2026-11-25T01:30:00+00:00"
    assert promotion.latency_delta == 0.08 and this_week.latency_ok is False
    assert this_week.max_night_usd == pytest.approx(160.0) and report.cost_ok(this_week) is False
    data = report.as_dict()
    assert data["targets"] == {
        "override_change_pp": -2.0,
        "latency_delta": 0.05,
        "nightly_cost_usd": 150.0,
    }
    assert data["weeks"][1]["cost_ok"] is False
