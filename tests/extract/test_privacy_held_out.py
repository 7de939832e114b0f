"""The held-out PII set (held_out.py): recall per kind on sentences, and no leak after a real
extraction that plants every value in all three sources and in nested JSON.
docs/privacy.md quotes the figures the first test prints."""

from __future__ import annotations

import json
import random
import uuid
from collections import Counter, defaultdict

import pytest
from extract_samples import DAY
from held_out import Plant, held_out_plants, leaks

from pria_ml import extract
from pria_ml.data import privacy
from pria_ml.data.storage import open_storage
from pria_ml.db import Database
from pria_ml.settings import Settings
from pria_ml.world import seed


def recall_table(plants: list[Plant]) -> tuple[dict[str, tuple[int, int]], list[tuple]]:
    """(caught, total) per kind, and every miss as (kind, origin, value, text, output)."""
    pseudo = privacy.Pseudonymiser(b"held-out", protected=frozenset(seed.MERCHANTS))
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses = []
    for plant in plants:
        output = pseudo.pseudonymise(plant.text)
        counts[plant.kind][1] += 1
        if leaks(plant, output):
            misses.append((plant.kind, plant.origin, plant.value, plant.text, output))
        else:
            counts[plant.kind][0] += 1
    return {kind: (c, t) for kind, (c, t) in counts.items()}, misses


def test_held_out_recall_per_kind() -> None:
    table, misses = recall_table(held_out_plants())
    print("\nheld-out recall per kind:")
    for kind, (caught, total) in sorted(table.items()):
        print(f"  {kind:15} {caught:4}/{total:<4} {caught / total:7.1%}")
    for miss in misses:
        print("  MISS", miss)
    assert set(table) == {
        "name", "address", "national_id", "passport", "iban_near_miss", "account"
    }  # fmt: skip
    assert misses == []


def _plant_rows(db: Database, plants: list[Plant]) -> None:
    """Each value in one of five places: expense description or notes, a user message, a
    string four levels deep in a tool result's JSON, a corrected output."""
    rng = random.Random(5)
    with db.connect() as conn:
        for index, plant in enumerate(plants):
            workspace, user = str(uuid.uuid4()), str(uuid.uuid4())
            expense_id, trace_id, event_id = (str(uuid.uuid4()) for _ in range(3))
            where = index % 5
            description = plant.text if where == 0 else "Taxi to the airport"
            notes = plant.text if where == 1 else None
            user_text = plant.text if where == 2 else "Please file my receipt from Uber."
            deep = {"expense": {"notes": {"free_text": {"line": plant.text if where == 3 else ""}}}}
            corrected = 'categorize(category_id=3, merchant="Uber")'
            if where == 4:
                corrected += f" # {plant.text}"
            conn.execute(
                "INSERT INTO expense VALUES (%s, %s, %s, %s, 'Uber', %s, 3, 12.5, 'EUR', %s)",
                (expense_id, workspace, user, description, notes, _at(rng)),
            )
            trace = {
                "messages": [
                    {"role": "system", "content": "You file expenses."},
                    {"role": "user", "content": user_text},
                    {"role": "tool", "content": json.dumps(deep, ensure_ascii=False)},
                    {"role": "assistant", "content": 'categorize(category_id=4, merchant="Uber")'},
                ]
            }
            conn.execute(
                "INSERT INTO agent_trace VALUES (%s, %s, %s, %s, %s)",
                (trace_id, workspace, expense_id, json.dumps(trace), _at(rng)),
            )
            conn.execute(
                "INSERT INTO workflow_event VALUES (%s, %s, %s, %s, true, %s, %s)",
                (event_id, workspace, trace_id, seed.EVENT_TYPE, corrected, _at(rng)),
            )


def _at(rng: random.Random):
    import datetime as dt

    end = dt.datetime.combine(DAY, dt.time(23), tzinfo=dt.UTC)
    return end - dt.timedelta(minutes=rng.randrange(60 * 24 * 30))


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


@pytest.mark.slow
def test_held_out_values_planted_in_every_source_do_not_leak(
    source_settings: Settings, source_db: Database, monkeypatch
) -> None:
    monkeypatch.setattr(extract, "BATCH_ROWS", 50)  # several batches: the pool really runs
    plants = held_out_plants(per_origin=1)
    _plant_rows(source_db, plants)
    result = extract.run(source_settings, DAY, workers=2)
    assert result.manifest["rows"]["raw"] == len(plants)

    storage = open_storage(source_settings)
    raw = storage.read_parquet(f"datasets/{DAY}/raw.parquet").to_pylist()
    text = "\n".join(s for row in raw for s in _strings(row))
    leaked = Counter(plant.kind for plant in plants if leaks(plant, text))
    assert leaked == Counter()
    assert "<NAME_" in text and "<ID_" in text and "<ADDRESS_" in text
