"""The nightly leaves its metrics where Prometheus collects a batch job's: node exporter's
textfile collector directory and a Pushgateway (a real HTTP server on 127.0.0.1 here)."""

import datetime as dt
import uuid

from evalrecords import eval_record
from prometheus_client.parser import text_string_to_metric_families

from pria_ml.operations import monitoring
from pria_ml.operations.night import (
    DONE,
    SKIPPED,
    STAGES,
    GateOutcome,
    NightlyReport,
    StageReport,
)
from pria_ml.quality import record
from pria_ml.quality.rule import promote_if
from pria_ml.registry import Adapter
from pria_ml.settings import Settings
from pria_ml.training.cost import NightSpend, SpendReport


def evaluated_candidate(day: dt.date, *, accuracy: float) -> Adapter:
    """A candidate row as the registry holds it after `pria-ml eval`: its evaluation record."""
    adapter_id = uuid.uuid4()
    measured = eval_record(
        adapter_id, day, accuracy=accuracy, samples=5000, safety_flag_pct=0.02, latency_delta=0.031
    )
    return Adapter(
        adapter_id=adapter_id,
        created_at=dt.datetime(2026, 11, 25, 1, 40, tzinfo=dt.UTC),
        metrics_json={"eval": measured.as_json()},
        safety_flags=measured.val.candidate.safety_flags,
        status="candidate",
        dataset_date=day,
        artifact_uri=f"file:///adapters/{day}.safetensors",
        artifact_sha256="0" * 64,
        base_model="tiny",
        promoted_at=None,
        superseded_at=None,
        archived_at=None,
        gate_passed=None,
        gate_reason=None,
        gate_decided_at=None,
    )


def finished_night(passed: bool = True) -> NightlyReport:
    stages = [StageReport(s, DONE, seconds=1.5 * n) for n, s in enumerate(STAGES)]
    stages[0].status = SKIPPED
    started = dt.datetime(2026, 11, 25, 1, 15, tzinfo=dt.UTC)
    report = NightlyReport(dt.date(2026, 11, 24), stages, started, started + dt.timedelta(hours=1))
    report.adapter = evaluated_candidate(report.date, accuracy=0.9 if passed else 0.6)
    decision = promote_if(record.of_adapter(report.adapter).gate_inputs())
    report.gate = GateOutcome(report.adapter.adapter_id, decision.reason, decision.as_record())
    return report


def samples(text: str) -> dict[tuple, float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def spend() -> SpendReport:
    night = NightSpend(dt.date(2026, 11, 24), 1, 1.6, 0.75, "A10G")
    return SpendReport(dt.date(2026, 11, 24), [night], 41.5, 312.25, 150.0, 200.0)


def test_run_metrics_carry_cost_stages_gate_and_latency() -> None:
    from prometheus_client import generate_latest

    registry = monitoring.run_metrics(finished_night(), spend(), None)
    found = samples(generate_latest(registry).decode())
    assert found[("gpu_train_cost_usd_total", ())] == 312.25
    assert found[("pria_ml_train_cost_usd_30d", ())] == 41.5
    assert found[
        ("pria_ml_nightly_stage_duration_seconds", (("part", "train"), ("stage", "train")))
    ] == (3.0)
    extract = samples(generate_latest(monitoring.run_metrics(finished_night(), spend(), None,
                                                             "extract")).decode())  # fmt: skip
    assert extract[
        ("pria_ml_nightly_stage_status", (("part", "extract"), ("stage", "extract"),
                                          ("status", "skipped")))
    ]  # fmt: skip
    assert ("gpu_train_cost_usd_total", ()) not in extract  # cost is the train part's
    assert found[("pria_ml_gate_passed", ())] == 1
    assert found[("pria_ml_safety_flag_pct", ())] == 0.02
    assert found[("pria_ml_safety_flags", ())] == 1
    assert found[("pria_ml_latency_p95_delta_ratio", ())] == 0.031
    assert found[("pria_ml_nightly_exit_code", (("part", "train"),))] == 0


def test_textfile_keeps_the_last_success_through_a_failed_night(
    tmp_path, registry_settings
) -> None:
    directory = tmp_path / "textfile"
    configured = registry_settings.model_copy(update={"metrics_textfile_dir": directory})
    good = finished_night()
    assert len(monitoring.publish(configured, good)) == 4  # run + success, each part
    blocked = finished_night(passed=False)
    blocked.finished_at = good.finished_at + dt.timedelta(days=1)
    assert monitoring.publish(configured, blocked) == [
        str(directory / monitoring.run_file("extract")),
        str(directory / monitoring.success_file("extract")),
        str(directory / monitoring.run_file("train")),
    ]
    run = samples((directory / monitoring.run_file("train")).read_text())
    success = samples((directory / monitoring.success_file("train")).read_text())
    assert run[("pria_ml_nightly_exit_code", (("part", "train"),))] == 11
    assert run[("pria_ml_gate_passed", ())] == 0
    assert success[("pria_ml_nightly_last_success_timestamp_seconds", (("part", "train"),))] == (
        good.finished_at.timestamp()
    )
    assert run[("gpu_train_cost_usd_total", ())] == 0  # the registry has recorded no run yet


def test_pushgateway_receives_an_additive_push(settings, http_server) -> None:
    url, received = http_server
    configured = settings.model_copy(update={"pushgateway_url": url})
    assert len(monitoring.publish(configured, finished_night())) == 4
    methods = {(method, path) for method, path, _ in received.requests}
    assert methods == {
        ("POST", f"/metrics/job/{monitoring.JOB}/part/extract"),
        ("POST", f"/metrics/job/{monitoring.JOB}/part/train"),
    }
    bodies = b"".join(body for _, _, body in received.requests).decode()
    assert "pria_ml_nightly_last_success_timestamp_seconds" in bodies
    assert "pria_ml_nightly_stage_duration_seconds" in bodies


def test_an_unreachable_gateway_does_not_fail_the_night(settings, http_server, caplog) -> None:
    url, received = http_server
    received.statuses = [500, 500, 500, 500]
    configured = settings.model_copy(update={"pushgateway_url": url})
    assert monitoring.publish(configured, finished_night()) == []
    assert "cannot push" in caplog.text


def test_nothing_is_published_without_a_destination(tmp_path) -> None:
    assert monitoring.publish(Settings(home=tmp_path), finished_night()) == []
