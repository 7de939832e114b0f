"""The stages fit together: seed -> extract -> build-features -> train -> registry, through the
real ``pria-ml`` command on embedded defaults (its own PostgreSQL, local storage, tiny model),
the way the nightly job and an engineer on a laptop run them. The trained adapter then loads
back through the path the evaluator will use. Last, eval and report run on the same home: no
stage prints a library's lines."""

import datetime as dt
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pria_ml import registry
from pria_ml.db import database
from pria_ml.settings import Settings

DATE = dt.date(2026, 11, 24)


def pria_ml(
    home: Path, *args: str, env: dict[str, str] | None = None, codes: tuple[int, ...] = (0,)
) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env = {**base, "PRIA_HOME": str(home), "PRIA_PII_KEY": "e2e-pii-key", **(env or {})}
    env["PRIA_TINY_PRETRAIN_STEPS"] = "0"  # a random-init base is enough to see stages fit
    result = subprocess.run(
        [sys.executable, "-m", "pria_ml", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=home.parent,
        timeout=600,
    )
    assert result.returncode in codes, (
        f"pria-ml {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
    )
    return result


STAGES: dict[str, subprocess.CompletedProcess] = {}
# What a library may not print to a user: warnings, its own progress bars, Trainer's log dicts.
LIBRARY_NOISE = re.compile(
    r"Warning:|WARNING: Using incubator|it/s\]|\{'loss'|\{'train_runtime'|Using default tokenizer"
)
# What eval and report printed before they were filtered: bitsandbytes on a CPU with AVX512-BF16
# and no hub for its optional kernel, matplotlib building its font cache in a cold MPLCONFIGDIR.
EVAL_REPORT_LINES = ("Failed to load CPU gemm_4bit_forward", "generated new fontManager")
# Notes which logger every printed record came from, and makes bitsandbytes warn as it does on
# such a CPU (tests/log_spy/sitecustomize.py).
LOG_SPY = Path(__file__).parent / "log_spy"
# Evaluation cut to what still runs every step: one sample per split (and so one timed prompt),
# the test benchmark tasks on one document each.
SMALL_EVAL = {
    "PRIA_EVAL_MAX_SAMPLES": "1",
    "PRIA_EVAL_LATENCY_PROMPTS": "4",
    "PRIA_EVAL_LATENCY_REPEATS": "1",
    "PRIA_EVAL_BENCHMARK_LIMIT": "1",
    "PRIA_BENCHMARKS_DIR": str(Path(__file__).parent / "eval" / "benchmarks"),
}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("e2e") / "home"
    day = DATE.isoformat()
    steps = {
        "seed": ("--rows", "800", "--seed", "7", "--end-date", day, "--days", "60"),
        "extract": ("--date", day),
        "build-features": ("--date", day),
        "train": ("--date", day, "--profile", "demo", "--max-steps", "3"),
    }
    for command, args in steps.items():
        STAGES[command] = pria_ml(home, command, *args)
    return home


def test_no_library_noise_reaches_the_user(home: Path) -> None:
    for command, result in STAGES.items():
        noise = LIBRARY_NOISE.findall(result.stdout + result.stderr)
        assert not noise, f"pria-ml {command} printed library noise {noise}:\n{result.stderr}"


def test_each_stage_leaves_its_artifacts(home: Path) -> None:
    dataset = home / "storage" / "datasets" / DATE.isoformat()
    raw_rows = pq.read_metadata(dataset / "raw.parquet").num_rows
    assert raw_rows > 0 and (dataset / "manifest.json").is_file()
    card = json.loads((dataset / "features" / "manifest.json").read_text())
    splits = {
        name: pq.read_table(home / "storage" / card["files"][f"{name}.parquet"]["key"])
        for name in ("train", "val", "test")
    }
    assert all(table.num_rows > 0 for table in splits.values())
    originals = sum((table["upsample_copy"].to_numpy() == 0).sum() for table in splits.values())
    assert originals <= raw_rows  # up-sampled copies aside, no example appears from nowhere
    assert (dataset / "features" / "manifest.json").is_file()


def test_trained_adapter_is_a_registered_candidate_with_a_true_checksum(home: Path) -> None:
    db = database(Settings(home=home))
    (candidate,) = [a for a in registry.adapters(db) if a.dataset_date == DATE]
    assert candidate.status == "candidate"
    assert candidate.gate_passed is None  # evaluation has not judged it: promote must refuse
    artifact = home / "storage" / "adapters" / f"{DATE.isoformat()}.safetensors"
    assert candidate.artifact_uri == artifact.as_uri()
    assert candidate.artifact_sha256 == hashlib.sha256(artifact.read_bytes()).hexdigest()
    assert candidate.metrics_json["steps"] == 3
    assert candidate.metrics_json["dataset"]["manifest"]["uri"].endswith("features/manifest.json")
    assert DATE.isoformat() in pria_ml(home, "history").stdout


def test_registered_adapter_loads_verified_and_generates_the_same_batched(home: Path) -> None:
    from pria_ml.model import generation, loading

    settings = Settings(home=home)
    (candidate,) = [a for a in registry.adapters(database(settings)) if a.dataset_date == DATE]
    loaded = loading.load_for_inference(settings, candidate.adapter_id)
    assert loaded.adapter is not None and loaded.adapter.adapter_id == candidate.adapter_id
    prompts = [
        [{"role": "user", "content": text}]
        for text in ("Categorise: Lufthansa flight to Berlin, 312 EUR", "Uber 12.00", "IKEA desk")
    ]
    batched = generation.generate(loaded.model, loaded.tokenizer, prompts, max_new_tokens=8)
    alone = [
        generation.generate(loaded.model, loaded.tokenizer, [p], max_new_tokens=8)[0]
        for p in prompts
    ]
    assert batched == alone  # left padding and batching change nothing under greedy decoding


def test_tampered_adapter_is_refused_before_use(home: Path, tmp_path: Path) -> None:
    from pria_ml.errors import ArtifactMismatch
    from pria_ml.model import loading

    settings = Settings(home=home)
    (candidate,) = [a for a in registry.adapters(database(settings)) if a.dataset_date == DATE]
    artifact = home / "storage" / "adapters" / f"{DATE.isoformat()}.safetensors"
    original = artifact.read_bytes()
    try:
        artifact.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(ArtifactMismatch, match="registered with"):
            loading.fetch_registered(settings, candidate.adapter_id, tmp_path / "adapter")
    finally:
        artifact.write_bytes(original)
    elsewhere = settings.model_copy(update={"storage_url": (tmp_path / "other").as_uri()})
    with pytest.raises(ArtifactMismatch, match="PRIA_STORAGE_URL"):
        loading.fetch_registered(elsewhere, candidate.adapter_id, tmp_path / "adapter2")


def test_no_library_noise_reaches_the_user_on_eval_and_report(home: Path, tmp_path: Path) -> None:
    """``eval`` and ``report`` as a user runs them, each with a cold matplotlib font cache.

    Last in the file: evaluation records a measurement on the candidate the tests above read."""
    runs = {
        "eval": (("--date", DATE.isoformat()), (0,)),  # eval measures; it never decides
        "report": (("--output", str(tmp_path / "report.html")), (0,)),
    }
    for command, (args, codes) in runs.items():
        records, cold = tmp_path / f"{command}.records", tmp_path / f"{command}-mplconfig"
        cold.mkdir()
        spy = {
            "MPLCONFIGDIR": str(cold),
            "PRIA_TEST_LOG_RECORDS": str(records),
            "PYTHONPATH": os.pathsep.join(
                filter(None, (str(LOG_SPY), os.environ.get("PYTHONPATH")))
            ),
        }
        result = pria_ml(home, command, *args, env={**SMALL_EVAL, **spy}, codes=codes)
        printed = result.stdout + result.stderr
        lines = [line for line in EVAL_REPORT_LINES if line in printed]
        assert not lines, f"pria-ml {command} printed {lines}:\n{result.stderr}"
        noise = LIBRARY_NOISE.findall(printed)
        assert not noise, f"pria-ml {command} printed library noise {noise}:\n{result.stderr}"
        shown = records.read_text().splitlines() if records.exists() else []
        from_libraries = [r for r in shown if not r.startswith(("pria_ml", "spy\t"))]
        assert not from_libraries, f"pria-ml {command} printed library log records:\n{shown}"
        if command == "eval":  # the test's bitsandbytes warning was really raised
            assert "spy\tbitsandbytes warned" in shown, shown
        else:  # the font cache was really cold, and built in this run
            assert list(cold.glob("fontlist-*.json")), "matplotlib did not build its font cache"
