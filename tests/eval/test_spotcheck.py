"""Spot-check sampling is reproducible per ISO week; a badly filled sheet names its row."""

from __future__ import annotations

import csv
import datetime
import uuid
from pathlib import Path

import pytest

from pria_ml import spotcheck
from pria_ml.errors import DataError

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
