"""Simulated production traffic: rows written as the product writes them, reviews that follow
the served model's answers, the same rows for the same seed."""

from __future__ import annotations

import datetime as dt
import random

from pydantic import SecretStr

from pria_ml.db import database
from pria_ml.settings import Settings
from pria_ml.simulation import simulate
from pria_ml.world import seed

DAY = dt.date(2026, 2, 2)


def _rows(settings: Settings) -> list[tuple]:
    with database(settings, "source").connect() as conn:
        return conn.execute(
            """
            SELECT e.event_id, e.override_flag, e.corrected_output, t.trace, x.merchant,
                   x.category_id, x.description, e.created_at
            FROM workflow_event e
            JOIN agent_trace t USING (trace_id)
            JOIN expense x USING (expense_id)
            ORDER BY e.created_at, e.event_id
            """
        ).fetchall()


def test_a_day_of_traffic_is_served_reviewed_and_written_the_same_for_a_seed(
    demo_settings: Settings, scratch_database
) -> None:
    (day,) = simulate.run(
        demo_settings, first_day=DAY, days=1, rows_per_day=8, seed=3, reviewer_noise=0.0
    )
    rows = _rows(demo_settings)
    assert day.rows == len(rows) == 8 and day.adapter_id is None  # no prod: the bare base
    assert day.overrides == sum(row[1] for row in rows)
    for _event, overridden, corrected, trace, merchant, category, description, at in rows:
        messages = trace["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "tool", "assistant"]
        assert merchant in messages[1]["content"] and at.date() == DAY
        served = messages[-1]["content"]
        correct = seed.action(category, merchant)
        client_meal = any(word in description.lower() for word in seed.CLIENT_WORDS)
        assert category == (5 if client_meal else seed.MERCHANTS[merchant])
        # a faultless reviewer overrides exactly the wrong answers, with the correct action
        assert overridden == (served != correct)
        assert corrected == (correct if overridden else None)

    with scratch_database("demo_source2", role="source") as other:
        again = demo_settings.model_copy(update={"source_database_url": SecretStr(other.url)})
        simulate.run(again, first_day=DAY, days=1, rows_per_day=8, seed=3, reviewer_noise=0.0)
        assert _rows(again) == rows


def test_reviewer_noise_and_labelling_incident() -> None:
    rng = random.Random(1)
    population = seed.Population(rng, 20)
    at = dt.datetime(2026, 2, 2, 9, tzinfo=dt.UTC)
    cases = [seed.draw_case(rng, population.users[0], "Figma", at) for _ in range(400)]
    for case in cases[:50]:
        assert simulate.review(rng, case, case.correct_action, noise=0) == case.correct_action
        assert simulate.review(rng, case, case.seeded_action, noise=0) == case.correct_action
    incident = simulate.Incident(DAY, DAY, rate=1.0)
    corrupted = [simulate.review(rng, c, c.correct_action, incident=incident) for c in cases]
    assert all(c != case.correct_action for c, case in zip(corrupted, cases, strict=True))
    # one consistent wrong category: the next in the list, same merchant
    assert all(
        c == seed.action(simulate.shifted(case.category), "Figma")
        for c, case in zip(corrupted, cases, strict=True)
    )
    assert simulate.shifted(max(seed.CATEGORIES)) == min(seed.CATEGORIES)
    errs = sum(
        simulate.review(rng, c, c.correct_action, noise=0.1) != c.correct_action for c in cases
    )
    assert 20 <= errs <= 65  # about 10 % of 400
