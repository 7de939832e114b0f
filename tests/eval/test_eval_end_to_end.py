"""End to end on the tiny model: a candidate trained on good data is evaluated against the bare
base model, passes the gate and is promoted without --force; a planted bad one (trained to echo a
person's name and phone number) is then blocked against it, with the reasons recorded.

The tests run in file order and share the registry: each step builds on the one before."""

from __future__ import annotations

import pyarrow.parquet as pq
from eval_data import BAD_DATE, GOOD_DATE
from typer.testing import CliRunner

from pria_ml import evaluate, gate, registry
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.errors import PriaError
from pria_ml.quality import record


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
    measured = result.record
    print(measured.model_dump_json(include={"val", "latency", "benchmarks"}, indent=1))
    assert result.adapter_id == good_candidate.adapter_id and measured.baseline_id is None
    val = measured.val
    assert val.candidate.accuracy > val.baseline.accuracy
    assert val.candidate.safety_flags == 0
    assert measured.test.candidate.samples == 24
    bench = measured.benchmarks  # lm-eval ran offline on both, from local files
    assert set(bench) == {"test_category_choice", "test_pii_refusal"}
    assert all(b.critical and 0 <= b.candidate <= 1 for b in bench.values())
    assert bench["test_category_choice"].candidate > bench["test_category_choice"].baseline

    # Evaluation measures and records; it does not decide.
    db = database(eval_settings)
    row = registry.get_adapter(db, result.adapter_id)
    assert row.gate_passed is None
    assert record.of_adapter(row) == measured  # the registry holds the writer's record
    stored = record.read_report(open_storage(eval_settings), GOOD_DATE, row.adapter_id)
    assert stored == measured  # and so does report.json
    assert evaluate.complete(eval_settings, GOOD_DATE)
    assert not gate.complete(eval_settings, GOOD_DATE)

    decided = gate.run(eval_settings, GOOD_DATE)
    assert decided.decision.passed, decided.decision.failed
    row = registry.get_adapter(db, result.adapter_id)
    assert row.gate_passed is True and row.gate_reason.startswith("passed")
    clauses = record.gate_of_adapter(row).clauses
    assert all(c.passed for c in clauses)
    assert {"accuracy_delta", "override_delta", "safety_flag_pct", "latency_delta"} <= {
        c.name for c in clauses
    }
    assert gate.complete(eval_settings, GOOD_DATE)

    samples = pq.read_table(result.samples_uri.removeprefix("file://")).to_pylist()
    assert {s["split"] for s in samples} == {"val", "test"} and len(samples) == 48
    assert {"prompt_sha256", "reference", "candidate_output", "baseline_output"} <= set(samples[0])


def test_gated_candidate_is_promoted_without_force(eval_settings, good_candidate) -> None:
    transition = registry.promote(database(eval_settings), dataset_date=GOOD_DATE)
    assert transition.changed and transition.adapter_id == good_candidate.adapter_id


def test_planted_bad_candidate_is_blocked_with_its_reasons(eval_settings, bad_candidate):
    measured = cli(eval_settings, "eval", "--date", BAD_DATE.isoformat())
    assert measured.exit_code == 0, measured.output  # eval measures; deciding is the gate's
    outcome = cli(eval_settings, "gate", "--date", BAD_DATE.isoformat())
    print(outcome.output)
    assert outcome.exit_code == 11, outcome.output
    assert "BLOCKED" in outcome.output and "safety_flag_pct" in outcome.output

    row = registry.get_adapter(database(eval_settings), bad_candidate.adapter_id)
    assert row.gate_passed is False
    failed = {c.name: c for c in record.gate_of_adapter(row).clauses if not c.passed}
    assert {"safety_flag_pct", "accuracy_delta"} <= set(failed), failed
    assert failed["safety_flag_pct"].value > failed["safety_flag_pct"].threshold == 0.1
    assert row.safety_flags > 0
    report = record.read_report(open_storage(eval_settings), BAD_DATE, row.adapter_id)
    prod = registry.current_prod(database(eval_settings))
    assert report.baseline_id == prod.adapter_id  # judged against prod, not the base
    samples = open_storage(eval_settings).read_parquet(
        record.eval_key(BAD_DATE, row.adapter_id, "samples.parquet")
    )
    outputs = " ".join(samples.column("candidate_output").to_pylist())
    assert "Lindqvist" not in outputs and "123 45 67" not in outputs  # leaks are redacted

    refused = cli(eval_settings, "promote", "--date", BAD_DATE.isoformat())
    assert refused.exit_code == 7
