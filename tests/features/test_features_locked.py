"""The outputs of build-features, locked: split bytes, row counts, token sums and the card's
tables for two fixed inputs, recorded from the Spark plan as it stood before the rewrite for
issue #25 (commit 5177fa2) in locked_outputs.json.

A change to how the splits are computed (the Spark plan, the route pass, the writer) must leave
all of it as it is. A change that means to alter the outputs (a new rule, a new column, a new
pyarrow that writes other bytes) re-records the file and says why in its commit:

    PYTHONPATH=. .venv/bin/python -c "import sys; sys.path.insert(0, 'tests/features'); \
        import test_features_locked as t; t.record()"
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from features_raw import FIRST_DAY, raw_row, split_key, storage_settings, synthetic_rows, write_raw

from pria_ml import features
from pria_ml.data.storage import LocalStorage
from pria_ml.features import SPLITS

DATE = dt.date(2026, 11, 24)
LOCK = Path(__file__).with_name("locked_outputs.json")
# The card's fields that name where or when a build happened rather than what it contains.
UNLOCKED = ("built_at", "code_version", "generation", "files", "engine")


def edge_rows() -> list[dict]:
    """30 % overrides (the seed picks the last copies) plus one raw row per text and length
    drop reason (the contract's key columns are not nullable: a missing key cannot be written)."""
    day = FIRST_DAY
    rows = synthetic_rows(override_rate=0.3)
    return [
        *rows,
        raw_row(event_id="b1", trace_id="bad-1", record_date=day, messages=[("user", " ")]),
        raw_row(event_id="b2", trace_id="bad-2", record_date=day, agent_output=""),
        raw_row(
            event_id="b3",
            trace_id="bad-3",
            record_date=day,
            override_flag=True,
            corrected_output=None,
        ),
        raw_row(event_id="b4", trace_id="bad-4", record_date=day, agent_output="long " * 500),
    ]


CASES = {
    "synthetic-seed-3": {"rows": synthetic_rows, "seed": 3, "max_tokens": 4096},
    "edges-seed-4": {"rows": edge_rows, "seed": 4, "max_tokens": 300},
}


def outputs(root: Path, manifest: dict) -> dict:
    """What a build produced, in the terms the lock compares: per split the file's sha256,
    rows, copies and token sums; the card without its time and place."""
    storage = LocalStorage((root / "storage").as_uri())
    splits = {}
    for name in SPLITS:
        table = pq.read_table(storage.path(split_key(storage, DATE, name)))
        splits[name] = {
            "sha256": manifest["splits"][name]["sha256"],
            "rows": table.num_rows,
            "copies": int(pc.sum(pc.greater(table["upsample_copy"], 0)).as_py() or 0),
            "prompt_tokens": int(pc.sum(table["prompt_tokens"]).as_py()),
            "completion_tokens": int(pc.sum(table["completion_tokens"]).as_py()),
            "example_ids": len(pc.unique(table["example_id"])),
        }
    card = {key: value for key, value in manifest.items() if key not in UNLOCKED}
    card["splits"] = {
        name: {key: value for key, value in split.items() if key != "key"}
        for name, split in card["splits"].items()
    }
    return {"splits": splits, "card": card}


def build_case(name: str, root: Path, spark=None) -> dict:
    case = CASES[name]
    settings = storage_settings(root)
    write_raw(settings, DATE, case["rows"]())
    built = features.build(
        settings, DATE, seed=case["seed"], max_tokens=case["max_tokens"], spark=spark
    )
    return outputs(root, built.manifest)


def record() -> None:
    """Re-record locked_outputs.json from the code as it is (see the module docstring)."""
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        locked = {name: build_case(name, Path(scratch, name)) for name in CASES}
    LOCK.write_text(json.dumps(locked, indent=1, sort_keys=True, default=str) + "\n")


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_are_the_locked_ones_byte_for_byte(spark, tmp_path, name):
    locked = json.loads(LOCK.read_text())[name]
    got = json.loads(json.dumps(build_case(name, tmp_path, spark), sort_keys=True, default=str))
    assert got["card"] == locked["card"]
    assert got["splits"] == locked["splits"]
