"""End to end on the tiny model: a candidate trained on good data passes the gate against the
bare base model and is promoted without --force; a planted bad one (trained to echo a person's
name and phone number) is then blocked against it, with the reasons recorded.

The tests run in file order and share the registry: each step builds on the one before."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from eval_data import BAD_DATE, GOOD_DATE
from typer.testing import CliRunner

from pria_ml import evaluate, registry
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import PriaError


def cli(settings, *args: str):
    from pria_ml.cli import app

    env = {
        "PRIA_HOME": str(settings.home),
        "PRIA_DATABASE_URL": settings.database_url.get_secret_value(),
        "PRIA_STORAGE_URL": settings.storage_url,
        "PRIA_BENCHMARKS_DIR": str(settings.benchmarks_dir),
        "PRIA_EVAL_MAX_SAMPLES": str(settings.eval_max_samples),
        "PRIA_EVAL_LATENCY_PROMPTS": str(settings.eval_latency_prompts),
        "PRIA_EVAL_LATENCY_REPEATS": str(settings.eval_latency_repeats),
    }
    outcome = CliRunner().invoke(app, list(args), env=env)
    if isinstance(outcome.exception, PriaError):  # cli.main turns these into exit codes
        outcome.exit_code = outcome.exception.exit_code
    elif outcome.exception is not None and not isinstance(outcome.exception, SystemExit):
        raise outcome.exception
    return outcome


def test_good_candidate_passes_against_the_bare_base(eval_settings, good_candidate) -> None:
    result = evaluate.run(eval_settings, GOOD_DATE)
    print(json.dumps({k: result.metrics[k] for k in ("val", "latency", "benchmarks")}, indent=1))
    assert result.adapter_id == good_candidate.adapter_id and result.baseline_id is None
    assert result.decision.passed, result.decision.failed
    val = result.metrics["val"]
    assert val["candidate"]["accuracy"] > val["baseline"]["accuracy"]
    assert val["candidate"]["safety_flags"] == 0
    assert "test" in result.metrics and result.metrics["test"]["candidate"]["samples"] == 24
    bench = result.metrics["benchmarks"]  # lm-eval ran offline on both, from local files
    assert set(bench) == {"test_category_choice", "test_pii_refusal"}
    assert all(b["critical"] and 0 <= b["candidate"] <= 1 for b in bench.values())
    assert bench["test_category_choice"]["candidate"] > bench["test_category_choice"]["baseline"]

    row = registry.get_adapter(database(eval_settings), result.adapter_id)
    assert row.gate_passed is True and row.gate_reason.startswith("passed")
    assert row.metrics_json["eval"]["gate"]["passed"] is True
    assert evaluate.complete(eval_settings, GOOD_DATE)

    samples = pq.read_table(result.samples_uri.removeprefix("file://")).to_pylist()
    assert {s["split"] for s in samples} == {"val", "test"} and len(samples) == 48
    assert {"prompt_sha256", "reference", "candidate_output", "baseline_output"} <= set(samples[0])


def test_gated_candidate_is_promoted_without_force(eval_settings, good_candidate) -> None:
    transition = registry.promote(database(eval_settings), dataset_date=GOOD_DATE)
    assert transition.changed and transition.adapter_id == good_candidate.adapter_id


def test_planted_bad_candidate_is_blocked_with_its_reasons(eval_settings, bad_candidate):
    outcome = cli(eval_settings, "eval", "--date", BAD_DATE.isoformat())
    print(outcome.output)
    assert outcome.exit_code == 11, outcome.output
    assert "BLOCKED" in outcome.output and "safety_flag_pct" in outcome.output

    row = registry.get_adapter(database(eval_settings), bad_candidate.adapter_id)
    assert row.gate_passed is False
    failed = row.metrics_json["eval"]["gate"]["failed"]
    assert any(f.startswith("safety_flag_pct") for f in failed), failed
    assert any(f.startswith("accuracy_delta") for f in failed), failed
    assert row.safety_flags > 0
    report = json.loads(
        open_storage(eval_settings).read_bytes(
            evaluate.eval_key(BAD_DATE, row.adapter_id, "report.json")
        )
    )
    prod = registry.current_prod(database(eval_settings))
    assert report["baseline_id"] == str(prod.adapter_id)  # judged against prod, not the base
    samples = open_storage(eval_settings).read_parquet(
        evaluate.eval_key(BAD_DATE, row.adapter_id, "samples.parquet")
    )
    outputs = " ".join(samples.column("candidate_output").to_pylist())
    assert "Lindqvist" not in outputs and "123 45 67" not in outputs  # leaks are redacted

    refused = cli(eval_settings, "promote", "--date", BAD_DATE.isoformat())
    assert refused.exit_code == 7
