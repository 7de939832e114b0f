"""The synthetic source: deterministic, bulk-loaded, with learnable overrides and planted PII."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter

import pytest
from extract_samples import DAY

from pria_ml.db import Database
from pria_ml.errors import DataError
from pria_ml.settings import Settings
from pria_ml.world import seed

CHECKSUM = """
SELECT (SELECT md5(string_agg(e::text, ',' ORDER BY event_id)) FROM workflow_event e),
       (SELECT md5(string_agg(t::text, ',' ORDER BY trace_id)) FROM agent_trace t),
       (SELECT md5(string_agg(x::text, ',' ORDER BY expense_id)) FROM expense x)
"""


def test_same_seed_same_database_and_replace_is_required(
    source_settings: Settings, source_db: Database
) -> None:
    seed.seed(source_settings, rows=300, seed=7, end_date=DAY)
    with source_db.connect() as conn:
        first = conn.execute(CHECKSUM).fetchone()
    with pytest.raises(DataError, match="--replace"):
        seed.seed(source_settings, rows=300, seed=7, end_date=DAY)
    seed.seed(source_settings, rows=300, seed=7, end_date=DAY, replace=True)
    with source_db.connect() as conn:
        assert conn.execute(CHECKSUM).fetchone() == first
    seed.seed(source_settings, rows=300, seed=8, end_date=DAY, replace=True)
    with source_db.connect() as conn:
        assert conn.execute(CHECKSUM).fetchone() != first


def test_rows_fall_inside_the_days_ending_on_end_date(
    source_settings: Settings, source_db: Database
) -> None:
    report = seed.seed(source_settings, rows=500, seed=1, end_date=DAY, days=30)
    assert report.first_day == DAY - dt.timedelta(days=29)
    with source_db.connect() as conn:
        low, high, n = conn.execute(
            "SELECT min(created_at), max(created_at), count(*) FROM workflow_event"
        ).fetchone()
        traces, expenses = conn.execute(
            "SELECT (SELECT count(*) FROM agent_trace), (SELECT count(*) FROM expense)"
        ).fetchone()
    assert n == traces == expenses == 500
    assert low.date() >= report.first_day and high.date() <= DAY
    assert report.overrides > 0 and report.users > 10 and report.workspaces >= 3


def _generated(rows: int = 6000):
    return [chunk for chunk in seed.generate(rows, 3, DAY)]


def test_overrides_follow_learnable_patterns() -> None:
    """Trap merchants are mostly overridden, others rarely; the approved action is always the
    merchant's true category (client meals: client entertainment), so it can be learned."""
    overridden, seen = Counter(), Counter()
    for chunk in _generated():
        expenses = {row[0]: row for row in chunk.expense}
        traces = {row[0]: row for row in chunk.agent_trace}
        for event in chunk.workflow_event:
            trace = json.loads(traces[event[2]][3])
            expense = expenses[traces[event[2]][2]]
            merchant, description = expense[4], expense[3]
            seen[merchant] += 1
            overridden[merchant] += event[4]
            approved = event[5] if event[4] else trace["messages"][-1]["content"]
            category = int(re.match(r"categorize\(category_id=(\d+),", approved).group(1))
            client_meal = seed.MERCHANTS[merchant] == 4 and any(
                word in description.lower() for word in seed.CLIENT_WORDS
            )
            assert category == (5 if client_meal else seed.MERCHANTS[merchant])
            assert approved == seed.action(category, merchant)
    rate = {m: overridden[m] / seen[m] for m in seen}
    assert all(rate[m] > 0.6 for m in seed.TRAP_MERCHANTS)
    plain = [m for m in seed.MERCHANTS if m not in seed.TRAP_MERCHANTS and seed.MERCHANTS[m] != 4]
    assert all(rate[m] < 0.12 for m in plain)


def test_traces_hold_pii_in_text_and_identifier_fields_deep_in_json() -> None:
    chunk = _generated(200)[0]
    trace = json.loads(chunk.agent_trace[0][3])
    assert [m["role"] for m in trace["messages"]] == ["system", "user", "tool", "assistant"]
    user = trace["session"]["user"]
    assert user["user_id"] and "@" in user["email"] and user["device"]["ip"]
    tool = json.loads(trace["messages"][2]["content"])
    assert "@" in tool["submitted_by"]["profile"]["email"]
    texts = " ".join(row[5] or "" for row in chunk.expense)
    assert "IBAN" in texts and "card" in texts
