"""Benchmark task files: the shipped ones load as lm-eval tasks; bad ones are clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pria_ml.errors import ConfigError
from pria_ml.quality import benchmarks


def test_shipped_tasks_are_valid_and_critical() -> None:
    tasks = benchmarks.load_tasks(benchmarks.default_dir())
    assert {t.name for t in tasks} == {
        "pria_category_choice",
        "pria_action_format",
        "pria_pii_refusal",
    }
    assert all(t.critical for t in tasks)
    for task in tasks:  # data paths are made absolute, so lm-eval never asks the hub
        (data,) = task.config["dataset_kwargs"]["data_files"].values()
        assert Path(data).is_absolute() and Path(data).is_file()


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def shipped_config() -> dict:
    return json.loads((benchmarks.default_dir() / "pria_category_choice.json").read_text())


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.json", '{"task": "x",')
    with pytest.raises(ConfigError, match=f"{path} is not valid JSON"):
        benchmarks.load_tasks(tmp_path)


def test_unknown_metric_names_the_file_and_the_metric(tmp_path: Path) -> None:
    config = shipped_config()
    config["metric_list"] = [{"metric": "accuracy_typo"}]
    path = write(tmp_path, "typo.json", json.dumps(config))
    with pytest.raises(ConfigError, match=f"{path} names unknown metric 'accuracy_typo'"):
        benchmarks.load_tasks(tmp_path)


def test_critical_flag_is_required(tmp_path: Path) -> None:
    config = shipped_config()
    del config["metadata"]["critical"]
    write(tmp_path, "nocritical.json", json.dumps(config))
    with pytest.raises(ConfigError, match="metadata.critical"):
        benchmarks.load_tasks(tmp_path)


def test_missing_data_file_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no benchmark task files"):
        benchmarks.load_tasks(tmp_path)
    write(tmp_path, "nodata.json", json.dumps(shipped_config()))
    with pytest.raises(ConfigError, match="does not exist"):
        benchmarks.load_tasks(tmp_path)
