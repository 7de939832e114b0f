"""`pria-ml seed` and `pria-ml extract` as an operator runs them: real processes, embedded
defaults and S3 storage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from extract_samples import DAY

from pria_ml.data.storage import open_storage
from pria_ml.db import Database
from pria_ml.settings import Settings


def pria_ml(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    return subprocess.run(
        [sys.executable, "-m", "pria_ml", *args],
        capture_output=True,
        text=True,
        env=clean | env,
        timeout=300,
    )


def test_seed_and_extract_on_embedded_defaults(tmp_path: Path) -> None:
    env = {"PRIA_HOME": str(tmp_path / "home")}
    seeded = pria_ml("seed", "--rows", "150", "--end-date", str(DAY), "--days", "60", env=env)
    assert seeded.returncode == 0, seeded.stderr
    assert "seeded 150 expenses" in seeded.stdout

    keyless = pria_ml("extract", "--date", str(DAY), env=env)
    assert keyless.returncode == 2
    assert "PRIA_PII_KEY" in keyless.stderr and "Traceback" not in keyless.stderr

    env["PRIA_PII_KEY"] = "cli-test-key"
    first = pria_ml("extract", "--date", str(DAY), env=env)
    assert first.returncode == 0, first.stderr
    assert "raw 150 rows from 150 events" in " ".join(first.stdout.split())
    folder = tmp_path / "home" / "storage" / "datasets" / str(DAY)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "quarantine.parquet",
        "raw.parquet",
    ]
    assert pq.read_table(folder / "raw.parquet").num_rows == 150
    manifest = (folder / "manifest.json").read_bytes()

    again = pria_ml("extract", "--date", str(DAY), env=env)
    assert again.returncode == 0 and "already extracted" in again.stdout
    assert (folder / "manifest.json").read_bytes() == manifest
    forced = pria_ml("extract", "--date", str(DAY), "--force", env=env)
    assert forced.returncode == 0 and "wrote" in forced.stdout


def test_seed_and_extract_to_s3(s3_settings: Settings, source_db: Database) -> None:
    env = {
        "PRIA_HOME": str(s3_settings.home),
        "PRIA_DATABASE_URL": s3_settings.database_url.get_secret_value(),
        "PRIA_SOURCE_DATABASE_URL": source_db.url,
        "PRIA_STORAGE_URL": s3_settings.storage_url,
        "PRIA_S3_ENDPOINT_URL": s3_settings.s3_endpoint_url,
        "PRIA_S3_ACCESS_KEY_ID": "testing",
        "PRIA_S3_SECRET_ACCESS_KEY": "testing",
        "PRIA_PII_KEY": "cli-test-key",
    }
    seeded = pria_ml("seed", "--rows", "120", "--end-date", str(DAY), "--days", "60", env=env)
    assert seeded.returncode == 0, seeded.stderr
    extracted = pria_ml("extract", "--date", str(DAY), env=env)
    assert extracted.returncode == 0, extracted.stderr
    assert "s3://" in extracted.stdout

    storage = open_storage(s3_settings)
    assert storage.list(f"datasets/{DAY}/") == [
        f"datasets/{DAY}/manifest.json",
        f"datasets/{DAY}/quarantine.parquet",
        f"datasets/{DAY}/raw.parquet",
    ]
    manifest = json.loads(storage.read_bytes(f"datasets/{DAY}/manifest.json"))
    raw = storage.read_parquet(f"datasets/{DAY}/raw.parquet")
    assert raw.num_rows == manifest["rows"]["raw"] == 120


def test_unreachable_source_is_one_red_line_and_exit_3(tmp_path: Path) -> None:
    env = {
        "PRIA_HOME": str(tmp_path / "home"),
        "PRIA_SOURCE_DATABASE_URL": "postgresql://pria@127.0.0.1:1/nowhere",
        "PRIA_DB_RETRY_DEADLINE_S": "1",
        "PRIA_PII_KEY": "k",
    }
    result = pria_ml("extract", "--date", str(DAY), env=env)
    assert result.returncode == 3
    assert "PRIA_SOURCE_DATABASE_URL" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "home" / "storage" / "datasets").exists()
