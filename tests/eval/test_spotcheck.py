"""Spot-check: sampling is reproducible per ISO week, a badly filled sheet names its row, and a
filled sheet of the prod adapter's evaluated samples is stored and shown in `history`."""

from __future__ import annotations

import csv
import datetime
import uuid
from pathlib import Path

import pytest

from pria_ml.errors import DataError
from pria_ml.quality import spotcheck

ROWS = [{"split": "val", "prompt_sha256": f"{i:016x}"} for i in range(100)]


def test_iso_week_follows_iso_8601() -> None:
    assert spotcheck.iso_week(datetime.date(2026, 11, 25)) == "2026-W48"
    assert spotcheck.iso_week(datetime.date(2027, 1, 1)) == "2026-W53"


def test_same_week_same_samples_other_week_others() -> None:
    week = spotcheck.choose(ROWS, "2026-W48")
    assert len(week) == 25
    assert week == spotcheck.choose(list(reversed(ROWS)), "2026-W48")  # input order is irrelevant
    assert week != spotcheck.choose(ROWS, "2026-W49")
    assert len(spotcheck.choose(ROWS[:10], "2026-W48")) == 10


def sheet(path: Path, verdicts: list[str]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=spotcheck.COLUMNS)
        writer.writeheader()
        for i, verdict in enumerate(verdicts):
            writer.writerow(
                {
                    "adapter_id": str(uuid.UUID(int=1)),
                    "iso_week": "2026-W48",
                    "prompt_sha256": f"{i:016x}",
                    "verdict": verdict,
                }
            )
    return path


def test_filled_sheet_is_read_back(tmp_path: Path) -> None:
    adapter_id, week, verdicts = spotcheck.read_sheet(
        sheet(tmp_path / "s.csv", ["ok", " Wrong", "unsafe"])
    )
    assert adapter_id == uuid.UUID(int=1) and week == "2026-W48"
    assert [v["verdict"] for v in verdicts] == ["ok", "wrong", "unsafe"]


def test_an_unfilled_row_is_named(tmp_path: Path) -> None:
    path = sheet(tmp_path / "s.csv", ["ok", "", "ok"])
    with pytest.raises(DataError, match=r"s.csv line 3: verdict '' is not one of ok, wrong"):
        spotcheck.read_sheet(path)


def test_prod_samples_drawn_recorded_and_shown_in_history(eval_settings, tmp_path) -> None:
    import pyarrow as pa
    from test_eval_inputs import register_fake

    from pria_ml import evaluate, registry
    from pria_ml.data.storage import open_storage
    from pria_ml.db import database

    db = database(eval_settings)
    prod = register_fake(eval_settings, datetime.date(2026, 9, 1))
    samples = [
        {
            "split": "val" if i % 2 else "test",
            "prompt_sha256": f"{i:016x}",
            "prompt": '[{"role": "user", "content": "Categorise: Figma 12.00 EUR"}]',
            "reference": "categorize(category_id=7)",
            "candidate_output": "categorize(category_id=7)",
        }
        for i in range(60)
    ]
    key = evaluate.eval_key(prod.dataset_date, prod.adapter_id, "samples.parquet")
    open_storage(eval_settings).write_parquet(key, pa.Table.from_pylist(samples))
    registry.promote(db, adapter_id=prod.adapter_id, force=True, reason="spot-check fixture")

    day = datetime.date(2026, 11, 25)
    sheet = spotcheck.draw(eval_settings, day=day, out_dir=tmp_path / "a")
    again = spotcheck.draw(eval_settings, day=day, out_dir=tmp_path / "b")
    assert sheet.samples == 25 and sheet.week == "2026-W48" and sheet.adapter_id == prod.adapter_id
    assert sheet.csv_path.read_text() == again.csv_path.read_text()  # seeded by the ISO week
    assert "<table>" in sheet.html_path.read_text()

    rows = list(csv.DictReader(sheet.csv_path.open()))
    for i, row in enumerate(rows):
        row["verdict"] = "wrong" if i < 3 else "ok"
    with sheet.csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=spotcheck.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    recorded = spotcheck.record(eval_settings, sheet.csv_path, reviewer="qa@pria")
    assert recorded.counts == {"ok": 22, "wrong": 3}
    spotcheck.record(eval_settings, sheet.csv_path, reviewer="qa@pria")  # again: replaced
    with db.connect() as conn:
        stored = conn.execute(
            "SELECT count(*) FROM pria.spot_check_verdict WHERE adapter_id = %s",
            (prod.adapter_id,),
        ).fetchone()
    assert stored == (25,)
    (event, *_) = registry.history(db, limit=1)
    assert event.action == "spot_check" and event.adapter_id == prod.adapter_id
    assert event.reason == "spot-check 2026-W48 by qa@pria: 22 ok, 3 wrong, 0 unsafe"
    assert registry.replay(registry.history(db, limit=1000))[prod.adapter_id] == "prod"
    from typer.testing import CliRunner

    from pria_ml.cli import app

    env = {
        "PRIA_HOME": str(eval_settings.home),
        "PRIA_DATABASE_URL": eval_settings.database_url.get_secret_value(),
        "PRIA_STORAGE_URL": eval_settings.storage_url,
    }
    out = tmp_path / "cli"
    drawn = CliRunner().invoke(
        app, ["spot-check", "--week-of", "2026-11-25", "--out", str(out)], env=env
    )
    assert drawn.exit_code == 0, drawn.output
    assert (out / "spot-check-2026-W48.csv").read_text() == again.csv_path.read_text()
    shown = CliRunner().invoke(app, ["history"], env=env)
    assert "spot_check" in shown.output and "2026-W48" in shown.output
