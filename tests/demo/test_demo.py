"""A shortened demo end to end: its outcomes, not just its exit.

Three simulated weeks, each ending in the real nightly chain: week 1 is served by the bare base,
week 2 by the adapter its night promoted, week 3 carries the labelling incident. Then the
rollback drill and the report. Asserted: the adapter promoted after week 1 brings the weekly
override rate down, the incident's night is blocked by the gate with its reasons shown, the
drill's misconfigured adapter forced into prod makes the next day's rate jump and rollback
restores the previous adapter and the rate, exactly one prod at the end, and the report exists
with data in every plot. (The full demo's fourth week, whose night trains on the incident's
labels, is measured in docs/demo.md rather than here: a night costs the suite a minute.)
"""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from pria_ml.settings import Settings

# A shorter night than the demo's: fewer training steps, fewer timed prompts and benchmark
# documents (the demo's own figures are in docs/demo.md).
TRAIN_STEPS = 20
EVALUATION = {"eval_latency_prompts": 4, "eval_latency_repeats": 1, "eval_benchmark_limit": 8}


# A 3-week demo trains and evaluates every night: it gets twice the suite's per-test limit, so a
# busy machine slows it without failing it; its outcome assertions are unchanged.
@pytest.mark.timeout(1200)
def test_shortened_demo_outcomes(tmp_path) -> None:
    from pria_ml import registry
    from pria_ml.db import database
    from pria_ml.simulation import demo, report

    settings = Settings(home=tmp_path / "home", **EVALUATION)  # the demo's own pre-trained base
    console = Console(width=100, record=True)
    result = demo.run(
        settings, weeks=3, rows_per_day=12, seed=1, console=console, train_steps=TRAIN_STEPS
    )
    shown = console.export_text()

    first, second, bad = result.weeks
    assert bad.incident and not first.incident and not second.incident
    assert first.night.gate_passed and first.night.promoted  # the bare base is beaten
    assert {d.adapter_id for d in first.days} == {None}
    assert {d.adapter_id for d in second.days} == {first.night.adapter_id}
    assert second.override_rate < first.override_rate - 0.05  # and serves week 2 better

    # the incident's night evaluates on its corrupted corrections: blocked, reasons shown
    assert bad.night.gate_passed is False and bad.night.reasons and not bad.night.promoted
    assert any(r.startswith("baseline_accuracy_drift") for r in bad.night.reasons)
    printed = " ".join(shown.split())  # the table wraps long reasons
    assert all(" ".join(reason.split()) in printed for reason in bad.night.reasons)

    drill = result.drill  # a misconfigured night's adapter forced into prod, then rolled back
    assert drill is not None
    assert drill.bad_adapter not in {w.night.adapter_id for w in result.weeks}
    assert drill.during > drill.before + 0.2 and drill.after < drill.during - 0.2
    assert drill.restored == drill.previous_prod == first.night.adapter_id

    local = demo.demo_settings(settings, str(settings.tiny_model_dir))
    db = database(local)
    prods = [a for a in registry.adapters(db) if a.status == "prod"]
    assert [a.adapter_id for a in prods] == [drill.previous_prod]
    trail = {(e.action, e.adapter_id, e.forced) for e in registry.history(db)}
    assert ("promote", drill.bad_adapter, True) in trail  # forced, and recorded as such
    assert ("rollback", drill.previous_prod, False) in trail

    data = json.loads(result.json_path.read_text())  # demo-<time>.json beside the report
    assert result.json_path.name == result.report_path.with_suffix(".json").name
    assert data["frozen_adapter"] == str(first.night.adapter_id)
    assert [w["loop_rate"] for w in data["weeks"]] == [w.override_rate for w in result.weeks]
    assert data["rollback_drill"]["forced"] == drill.during
    # the counterfactual on the same traffic: the base served week 1 itself; in week 2 the
    # frozen adapter served it, and the bare base answered the same conversations as well
    week1, week2 = data["weeks"][:2]
    assert week1["base_rate"] == week1["loop_rate"] and week1["frozen_rate"] is None
    assert week2["frozen_rate"] == week2["loop_rate"] and week2["base_rate"] is not None
    low, high = week2["intervals"]["base"]
    assert low <= week2["base_rate"] <= high
    assert [d.others["base"] for d in second.days] != [d.overrides for d in second.days]
    # ... and none of the counterfactual answers reached the source tables
    with database(local, "source").connect() as conn:
        (events,) = conn.execute("SELECT count(*) FROM workflow_event").fetchone()
    served = sum(d.rows for w in result.weeks for d in w.days) + 3 * 12  # + the drill's 3 days
    assert events == demo.HISTORY_DAYS * 12 + served

    assert result.report_path.is_file()
    page = result.report_path.read_text()
    assert page.count("<svg") == len(report.PLOTS) + 1 and 'class="nodata"' not in page
    assert 'id="comparison"' in page  # loop vs frozen vs base


def test_the_machine_readable_result_follows_its_documented_schema() -> None:
    import datetime as dt
    import json
    import uuid

    from pria_ml.simulation import demo
    from pria_ml.simulation.simulate import Day

    first, second = uuid.uuid4(), uuid.uuid4()

    def week(index: int, served: uuid.UUID | None, overrides: int, night, incident=False):
        start = demo.FIRST_DAY + dt.timedelta(days=7 * (index - 1))
        others = {"base": 3} | ({"frozen": overrides} if index > 1 else {})
        days = [
            Day(start + dt.timedelta(days=n), 10, overrides, overrides, served, incident, others)
            for n in range(7)
        ]
        return demo.Week(index, days, incident, night)

    def night(adapter, passed, promoted, reasons=()):
        return demo.NightSummary(
            dt.date(2026, 1, 11), adapter, passed, list(reasons), promoted, None, None, 0, 0, 1
        )

    result = demo.DemoResult(
        weeks=[
            week(1, None, 3, night(first, True, True)),
            week(2, first, 1, night(second, False, False, ["latency_delta < 0.05 failed"]), True),
            week(3, first, 2, night(None, None, False)),
        ],
        drill=demo.Drill(second, first, first, 0.1, 0.9, 0.1),
        report_path=None,
        prod_at_end=first,
        seconds=372.04,
    )
    data = json.loads(json.dumps(result.as_json()))  # JSON all the way down
    assert data["frozen_adapter"] == str(first) and data["wall_seconds"] == 372.0
    assert data["rollback_drill"] == {"before": 0.1, "forced": 0.9, "after": 0.1}
    one, two, three = data["weeks"]
    assert one == {
        "week": 1,
        "days": 7,
        "served_by": None,
        "loop_rate": 0.3,
        "frozen_rate": None,
        "base_rate": 0.3,
        "intervals": {"loop": [0.2054, 0.4154], "frozen": None, "base": [0.2054, 0.4154]},
        "incident": False,
        "night": {"candidate": str(first), "decision": "promoted", "reasons": []},
    }
    assert two["served_by"] == str(first) and two["frozen_rate"] == two["loop_rate"] == 0.1
    assert two["base_rate"] == 0.3  # the counterfactual: the bare base on the same traffic
    assert two["incident"] and two["night"]["decision"] == "blocked"
    assert two["night"]["reasons"] == ["latency_delta < 0.05 failed"]
    assert three["night"] == {"candidate": None, "decision": "not_gated", "reasons": []}
