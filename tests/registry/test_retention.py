"""Retention on stored files, with the clock moved (time-machine): a dataset, an evaluation's
samples, a spot-check sheet and a never-prod adapter go once their data is past 90 days (the
strictest window of the sources they hold); a former prod's adapter and the aggregate files
stay; every deletion is recorded first; --dry-run deletes nothing."""

from __future__ import annotations

import datetime as dt
import hashlib

import time_machine

from pria_ml import registry
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.operations import retention
from pria_ml.settings import Settings

D = dt.date(2026, 3, 2)
KEYS = {
    "datasets/2026-03-02/raw.parquet": True,
    "datasets/2026-03-02/features/train.parquet": True,
    "datasets/2026-03-02/manifest.json": False,  # counts and checksums only
    "evals/2026-03-02/a1/samples.parquet": True,
    "evals/2026-03-02/a1/report.json": False,
    "spot-checks/2026-W10/sheet.csv": True,  # week 10 of 2026 ends on 2026-03-08
    "adapters/2026-03-02.safetensors": True,  # never prod
    "adapters/2026-03-03.safetensors": False,  # prod: kept
    "adapters/2026-03-03.config.json": False,
}


def test_files_past_their_window_are_deleted_and_recorded(registry_settings: Settings) -> None:
    storage = open_storage(registry_settings)
    for key in KEYS:
        storage.write_bytes(key, key.encode())
    db = database(registry_settings)
    prod = registry.register_candidate(
        db,
        dataset_date=D + dt.timedelta(days=1),
        artifact_uri=storage.uri("adapters/2026-03-03.safetensors"),
        artifact_sha256=hashlib.sha256(b"x").hexdigest(),
        base_model="tiny",
        metrics={},
    )
    registry.promote(db, adapter_id=prod, force=True, reason="retention test")

    with time_machine.travel(dt.datetime(2026, 5, 31, 12, tzinfo=dt.UTC), tick=False):
        assert retention.run(registry_settings).due == []  # 90 days: still inside the window
    with time_machine.travel(dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC), tick=False):
        planned = retention.run(registry_settings, dry_run=True)
        assert all(storage.exists(key) for key in KEYS), "--dry-run deletes nothing"
        assert {item.key for item in planned.due} == {
            k for k, gone in KEYS.items() if gone and not k.startswith("spot-checks/")
        }
        done = retention.run(registry_settings)
    assert done.deleted
    for key, gone in KEYS.items():
        if not key.startswith("spot-checks/"):
            assert storage.exists(key) != gone, key
    recorded = {d.uri: d for d in registry.retention_deletions(db)}
    assert set(recorded) == {item.uri for item in done.due}
    assert all(d.window_days == 90 and "past 90 days" in d.reason for d in recorded.values())
    with time_machine.travel(dt.datetime(2026, 6, 7, 12, tzinfo=dt.UTC), tick=False):
        later = retention.run(registry_settings)
    assert [item.key for item in later.due] == ["spot-checks/2026-W10/sheet.csv"]
    assert later.kept_former_prods == 2  # the prod adapter's weights and config
    assert not storage.exists("spot-checks/2026-W10/sheet.csv")
    assert storage.exists("adapters/2026-03-03.safetensors")
