"""Builders of raw.parquet rows that follow docs/data-contract.md, for the feature tests and
perf/bench_features.py (written here, not by extract, so these tests stand on their own)."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa

from pria_ml.data.contract import RAW_SCHEMA, dataset_key, features_key, write_manifest
from pria_ml.data.storage import Storage, open_storage
from pria_ml.settings import Settings

SYSTEM = "You are PRIA's expense assistant. Pick the expense category and explain briefly."
MERCHANTS = ["Uber", "Lufthansa", "Pret A Manger", "AWS", "Staples", "Hilton", "Shell", "Zoom"]
AMOUNTS = ["9.99", "12.50", "42.00"]
FIRST_DAY = dt.date(2026, 10, 1)


def storage_settings(root: Path) -> Settings:
    return Settings(home=root / "home", storage_url=(root / "storage").as_uri())


def raw_row(
    *,
    event_id: str,
    trace_id: str,
    record_date: dt.date,
    override_flag: bool = False,
    messages: list[tuple[str, str]] | None = None,
    agent_output: str | None = "category=3",
    corrected_output: str | None = None,
    category_id: int | None = 3,
    expense_text: str | None = "taxi to airport",
) -> dict[str, Any]:
    """One raw.parquet row as docs/data-contract.md defines it."""
    if messages is None:
        messages = [("system", SYSTEM), ("user", f"Categorise: {expense_text}")]
    return {
        "event_id": event_id,
        "trace_id": trace_id,
        "record_date": record_date,
        "event_type": "categorise",
        "override_flag": override_flag,
        "prompt_messages": [{"role": r, "content": c} for r, c in messages],
        "agent_output": agent_output,
        "corrected_output": corrected_output,
        "category_id": category_id,
        "expense_text": expense_text,
    }


def raw_table(rows: list[dict[str, Any]]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=RAW_SCHEMA)


def synthetic_rows(
    *, days: int = 12, traces_per_day: int = 30, override_rate: float = 0.2, seed: int = 7
) -> list[dict[str, Any]]:
    """Traces of 1-3 agent actions over ``days`` days, with the awkward cases real data has.

    Some traces run past midnight (so a trace can straddle a split's cut point), and recurring
    charges repeat their prompt word for word on many dates.
    """
    rng = random.Random(seed)
    rows = []
    for day in range(days):
        for t in range(traces_per_day):
            trace_id = f"trace-{day:03d}-{t:03d}"
            merchant, amount = rng.choice(MERCHANTS), rng.choice(AMOUNTS)
            # One trace in five is a recurring charge whose prompt repeats word for word.
            if rng.random() < 0.2:
                request = f"Categorise {merchant} {amount} EUR, monthly"
            else:
                request = f"Categorise {merchant} {amount} EUR, receipt {rng.randrange(10**6)}"
            messages = [("system", SYSTEM), ("user", request)]
            for step in range(rng.choice((1, 1, 2, 3))):
                # Every 7th trace ends on the next day (unless that is past the last day).
                spill = step > 0 and t % 7 == 0 and day < days - 1
                date = FIRST_DAY + dt.timedelta(days=day + spill)
                overridden = rng.random() < override_rate
                category = MERCHANTS.index(merchant)
                rows.append(
                    raw_row(
                        event_id=f"{trace_id}-e{step}",
                        trace_id=trace_id,
                        record_date=date,
                        override_flag=overridden,
                        messages=list(messages),
                        agent_output=f"category={category}",
                        corrected_output=f"category={(category + 1) % 8}" if overridden else None,
                        category_id=category,
                        expense_text=f"{merchant} {amount}",
                    )
                )
                messages += [
                    ("tool", f'{{"merchant": "{merchant}", "mcc": {4000 + category}}}'),
                    ("user", "Are you sure? Check the policy."),
                ]
    return rows


def write_raw(settings: Settings, date: dt.date, rows: list[dict[str, Any]] | pa.Table) -> None:
    """raw.parquet and the manifest that vouches for it, as extract publishes them."""
    table = rows if isinstance(rows, pa.Table) else raw_table(rows)
    storage = open_storage(settings)
    info = storage.write_parquet(dataset_key(date, "raw.parquet"), table)
    files = {"raw.parquet": {"sha256": info.sha256, "bytes": info.size}}
    write_manifest(storage, dataset_key(date, "manifest.json"), {"files": files})


def split_key(storage: Storage, date: dt.date, split: str) -> str:
    """Where the features manifest of ``date`` says ``split`` is stored."""
    manifest = json.loads(storage.read_bytes(features_key(date, "manifest.json")))
    return manifest["files"][f"{split}.parquet"]["key"]
