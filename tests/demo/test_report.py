"""The HTML report, built from a real registry and real workflow_event rows: every plot has
data when the registry holds evaluated adapters, "no data" when it does not, and the file names
no external URL."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from evalrecords import evaluate_and_gate

from pria_ml import registry
from pria_ml.db import Database, database
from pria_ml.settings import Settings
from pria_ml.simulation import report
from pria_ml.world import seed

FIRST = dt.date(2026, 3, 2)


@pytest.fixture
def report_settings(demo_settings: Settings) -> Settings:
    return demo_settings


def _db(settings: Settings) -> Database:
    return database(settings)


def _traffic(settings: Settings, rates: list[float], per_day: int = 20) -> None:
    """``per_day`` reviews a day for len(rates) weeks; week i overrides about rates[i]."""
    import random

    rng = random.Random(5)
    population = seed.Population(rng, per_day * 7)
    rows = seed.Rows()
    for week, rate in enumerate(rates):
        for day in range(7):
            at = dt.datetime.combine(FIRST + dt.timedelta(days=7 * week + day), dt.time(9), dt.UTC)
            for i in range(per_day):
                case = seed.draw_case(rng, rng.choice(population.users), "Figma", at)
                wrong = i < rate * per_day
                proposal = seed.action(6 if wrong else case.category, case.merchant)
                case.add_rows(rows, proposal)
    source = database(settings, "source")
    seed.apply_schema(source)
    with source.connect() as conn:
        seed.write_rows(conn, rows)


def _candidate(db: Database, day: dt.date, **metrics) -> object:
    uri = f"file:///adapters/{day.isoformat()}.safetensors"
    return registry.register_candidate(
        db,
        dataset_date=day,
        artifact_uri=uri,
        artifact_sha256=hashlib.sha256(uri.encode()).hexdigest(),
        base_model="tiny",
        metrics={"cost_usd": 0.0, "estimate": {"usd": 0.42}, **metrics},
    )


def test_report_of_a_loop_with_a_block_and_a_rollback(report_settings: Settings) -> None:
    db = _db(report_settings)
    _traffic(report_settings, [0.30, 0.20, 0.10])
    nights = [FIRST + dt.timedelta(days=7 * k + 6) for k in range(3)]
    good = _candidate(db, nights[0])
    evaluate_and_gate(db, good, nights[0], accuracy=0.9, baseline_accuracy=0.7)
    registry.promote(db, adapter_id=good)
    better = _candidate(db, nights[1])
    evaluate_and_gate(db, better, nights[1], accuracy=0.95, baseline_accuracy=0.9, baseline_id=good)
    registry.promote(db, adapter_id=better)
    bad = _candidate(db, nights[2])
    evaluate_and_gate(db, bad, nights[2], accuracy=0.75, baseline_accuracy=0.95, baseline_id=better)
    registry.promote(db, adapter_id=bad, force=True, reason="rollback drill")
    registry.rollback(db)

    result = report.build(report_settings)

    assert result.path.parent == report_settings.home / "reports"
    page = result.path.read_text()
    assert all(points > 0 for points in result.plots.values()), result.plots
    assert result.plots["override_rate"] == 3 and result.plots["accuracy"] == 3
    assert "no data" not in page
    assert not re.search(r"https?://", page)  # opens offline: nothing to fetch
    assert page.count("<svg") == len(report.PLOTS)
    assert "blocked: accuracy_delta" in page and "rollback drill" in page
    assert "30.0%" in page and "10.0%" in page  # weekly override rates from workflow_event


def test_empty_registry_and_source_render_no_data(report_settings: Settings, tmp_path) -> None:
    result = report.build(report_settings, output=tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert set(result.plots.values()) == {0}
    assert page.count('class="nodata"') >= len(report.PLOTS)
    assert "<svg" not in page


def test_accuracy_intervals_from_the_number_of_samples() -> None:
    low, high = report.wilson(0.9, 120)
    assert 0.83 < low < 0.9 < high < 0.95
    assert report.wilson(1.0, 10)[1] == 1.0


def test_unknown_or_malformed_eval_metrics_show_as_no_data() -> None:
    assert report.as_interval({"value": 0.5, "low": 0.4, "high": 0.6}) == report.Interval(
        0.5, 0.4, 0.6
    )
    assert report.as_interval(0.25) == report.Interval(0.25)
    for raw in (None, "0.5", float("nan"), True, {"low": 0.1}, [0.5]):
        assert report.as_interval(raw) is None


def test_weeks_count_their_days_and_a_partial_week_is_labelled_so() -> None:
    first = dt.date(2026, 1, 5)
    days = [report.Period(first + dt.timedelta(days=i), 10, 3 if i < 7 else 1) for i in range(10)]
    data = report.ReportData(days=days, nights=[], events=[], generated_at=dt.datetime.now(dt.UTC))
    full, partial = data.weeks
    assert (full.days, full.events, full.overrides) == (7, 70, 21)
    assert (partial.days, partial.events, partial.overrides) == (3, 30, 3)
    svg, points = report.plot_override_rate(data)
    assert points == 2 and "3 days" in svg and "7 days" not in svg


def test_the_headline_compares_full_weeks_and_shows_a_partial_stretch_apart() -> None:
    weeks = [
        report.Period(FIRST, 210, 57, 7),  # 27.1 %
        report.Period(FIRST + dt.timedelta(days=7), 210, 23, 7),  # 11.0 %
        report.Period(FIRST + dt.timedelta(days=14), 210, 32, 7),  # 15.2 %
        report.Period(FIRST + dt.timedelta(days=21), 90, 37, 3),  # the drill: 41.1 %
    ]
    text = report.headline(weeks)
    assert "27.1% in the first full week, 15.2% in the last full week, week 3" in text
    assert "(-11.9 pp; target -4.0 pp)" in text
    assert "3 day(s) from 2026-03-23 shown apart (not a full week): 41.1%" in text
    assert report.headline([]) == "no categorisation events yet"
