"""build-features on bad input, on S3 and through the CLI: clear errors, nothing half-written."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pyarrow.compute as pc
import pytest
from features_raw import FIRST_DAY, raw_row, raw_table, split_key, synthetic_rows, write_raw

from pria_ml import cli, features
from pria_ml.data.examples import EMPTY_COMPLETION, EMPTY_PROMPT, OVER_LENGTH
from pria_ml.data.splits import SPLITS
from pria_ml.data.storage import open_storage
from pria_ml.errors import DataError

DATE = dt.date(2026, 11, 24)
FEATURES = f"datasets/{DATE}/features"


def nothing_written(settings) -> bool:
    return open_storage(settings).list(FEATURES) == []


def test_missing_raw_file_is_a_data_error(spark, feature_settings):
    with pytest.raises(DataError, match="does not exist; run `pria-ml extract"):
        features.build(feature_settings, DATE, spark=spark)
    assert nothing_written(feature_settings)


def test_wrong_schema_names_the_column_and_writes_nothing(spark, feature_settings):
    table = raw_table(synthetic_rows(days=3, traces_per_day=3))
    write_raw(feature_settings, DATE, table.drop_columns(["corrected_output"]))
    with pytest.raises(DataError, match="missing column 'corrected_output'"):
        features.build(feature_settings, DATE, spark=spark)
    assert nothing_written(feature_settings)


def test_a_single_date_cannot_be_split(spark, feature_settings):
    rows = [r for r in synthetic_rows(days=1, traces_per_day=20) if r["record_date"] == FIRST_DAY]
    write_raw(feature_settings, DATE, rows)
    with pytest.raises(DataError, match=r"1 date\(s\) with usable rows \(2026-10-01\)"):
        features.build(feature_settings, DATE, spark=spark)
    assert nothing_written(feature_settings)


def test_all_one_reward_class_is_a_data_error(spark, feature_settings):
    write_raw(feature_settings, DATE, synthetic_rows(days=5, traces_per_day=4, override_rate=0))
    with pytest.raises(DataError, match="every usable example has override_flag=false"):
        features.build(feature_settings, DATE, spark=spark)
    assert nothing_written(feature_settings)


def test_empty_text_and_over_length_rows_are_dropped_and_counted(spark, feature_settings):
    rows = synthetic_rows(days=6, traces_per_day=6, override_rate=0.3)
    day = FIRST_DAY
    rows += [
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
    write_raw(feature_settings, DATE, rows)
    result = features.build(feature_settings, DATE, max_tokens=300, spark=spark)
    drops = result.manifest["drops"]
    assert (drops[EMPTY_PROMPT], drops[EMPTY_COMPLETION], drops[OVER_LENGTH]) == (1, 2, 1)
    storage = open_storage(feature_settings)
    for name in SPLITS:
        table = storage.read_parquet(split_key(storage, DATE, name))
        assert not {"bad-1", "bad-2", "bad-3", "bad-4"} & set(table["trace_id"].to_pylist())
        totals = pc.add(table["prompt_tokens"], table["completion_tokens"])
        assert pc.max(totals).as_py() <= 300


def test_a_failed_rebuild_leaves_the_previous_set_whole(spark, feature_settings):
    write_raw(feature_settings, DATE, synthetic_rows(days=5, traces_per_day=6, override_rate=0.3))
    features.build(feature_settings, DATE, spark=spark)
    storage = open_storage(feature_settings)
    before = {key: storage.read_bytes(key) for key in storage.list(FEATURES)}
    assert len(before) == 4
    write_raw(feature_settings, DATE, synthetic_rows(days=1, traces_per_day=3)[:2])
    with pytest.raises(DataError):
        features.build(feature_settings, DATE, spark=spark)
    assert {key: storage.read_bytes(key) for key in storage.list(FEATURES)} == before


def test_build_reads_and_writes_s3(spark, feature_settings, on_s3):
    settings = on_s3(feature_settings)
    write_raw(settings, DATE, synthetic_rows(days=5, traces_per_day=6, override_rate=0.3))
    result = features.build(settings, DATE, spark=spark)
    assert result.manifest_uri == f"{settings.storage_url}/{FEATURES}/manifest.json"
    storage = open_storage(settings)
    manifest = json.loads(storage.read_bytes(f"{FEATURES}/manifest.json"))
    for name in SPLITS:
        body = storage.read_bytes(split_key(storage, DATE, name))
        assert hashlib.sha256(body).hexdigest() == manifest["splits"][name]["sha256"]


def test_cli_builds_features_and_reports_bad_input_in_one_line(
    spark, feature_settings, monkeypatch, capsys
):
    monkeypatch.setenv("PRIA_HOME", str(feature_settings.home))
    monkeypatch.setenv("PRIA_STORAGE_URL", feature_settings.storage_url)
    with pytest.raises(SystemExit) as missing:
        cli.main(["build-features", "--date", DATE.isoformat()])
    assert missing.value.code == DataError.exit_code
    assert "run `pria-ml extract --date 2026-" in capsys.readouterr().err

    write_raw(feature_settings, DATE, synthetic_rows(days=5, traces_per_day=6, override_rate=0.3))
    with pytest.raises(SystemExit) as done:
        cli.main(["build-features", "--date", DATE.isoformat(), "--seed", "1"])
    assert done.value.code in (0, None)
    out = capsys.readouterr().out
    assert "train" in out and "manifest.json" in out
    assert open_storage(feature_settings).exists(f"{FEATURES}/manifest.json")
    # The command used the test's session and left it running.
    assert spark.range(1).count() == 1


def test_repeated_events_are_a_data_error(spark, feature_settings):
    rows = synthetic_rows(days=5, traces_per_day=6, override_rate=0.3)
    write_raw(feature_settings, DATE, [*rows, rows[3]])
    with pytest.raises(DataError, match=r"repeats \(trace_id, event_id\): 1 rows repeat"):
        features.build(feature_settings, DATE, spark=spark)
    assert nothing_written(feature_settings)
