"""The alert rules judged on what a real night writes: `pria-ml nightly` runs (the part a GPU
machine runs, from the gate on a registered, evaluated candidate; nothing trains), its textfile
metrics are read back, and promtool evaluates the rules on exactly those series - their names
and labels as written, their values as written - for the latency regression, the missing
night (per part) and the 30-day cost of gpu_train_cost_usd_total."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from pathlib import Path

import yaml
from evalrecords import evaluate_and_gate
from nightly_kit import pria_ml
from prometheus_client.parser import text_string_to_metric_families

from pria_ml import registry
from pria_ml.db import database
from pria_ml.settings import Settings

DAY = dt.date(2026, 11, 23)
RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
COST, MISSING = "PriaMlTrainingCost30dHigh", "PriaMlNightlyMissing"
RATE = 1_000_000.0  # $/GPU-hour: any machine second costs more than the $200 alert


def series(text: str) -> dict[str, tuple[dict[str, str], float]]:
    return {
        sample.name: (dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def selector(name: str, labels: dict[str, str]) -> str:
    inner = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def test_the_rules_fire_on_the_series_a_real_night_writes(
    tmp_path: Path, install_tiny_model, promtool: Path
) -> None:
    home = tmp_path / "home"
    textfile = tmp_path / "textfile"
    install_tiny_model(home)
    db = database(Settings(home=home))
    adapter_id = registry.register_candidate(
        db,
        dataset_date=DAY,
        artifact_uri=f"file:///elsewhere/{DAY}.safetensors",
        artifact_sha256="a" * 64,
        base_model="tiny-mistral",
        metrics={},
    )
    # +6 % p95 against the adapter it replaces: its interval's low end passes the gate, the
    # point estimate is over the spec's +5 % objective once it serves.
    evaluate_and_gate(db, adapter_id, DAY, latency_delta=0.06, safety_flag_pct=0.0)
    db.close()
    tiers = {"pilot": {"gpu_type": "A10G", "usd_per_gpu_hour": RATE}}
    night = pria_ml(
        home, "nightly", "--date", DAY.isoformat(), "--from", "gate",
        PRIA_METRICS_TEXTFILE_DIR=str(textfile), PRIA_GPU_MACHINE="1",
        PRIA_GPU_TIERS=json.dumps(tiers),
    )  # fmt: skip
    assert f"gate: passed for adapter {adapter_id}" in night.stdout

    assert sorted(p.name for p in textfile.iterdir()) == [
        "pria_ml_nightly_train.prom",
        "pria_ml_nightly_train_success.prom",
    ], "the GPU machine's part reports alone; the extract part is not refreshed by it"
    run = series((textfile / "pria_ml_nightly_train.prom").read_text())
    success = series((textfile / "pria_ml_nightly_train_success.prom").read_text())

    # The cost is the machine's time from boot to exit, recorded in the registry.
    db = database(Settings(home=home))
    (spent,) = registry.spend_by_night(db)
    db.close()
    assert spent.source == "machine boot to exit" and spent.date == DAY
    assert spent.gpu_hours > 0 and spent.hardware == "A10G"
    cost_labels, cost = run["gpu_train_cost_usd_total"]
    assert cost == spent.usd
    assert abs(cost - spent.gpu_hours * RATE) < 1e-6 * cost

    latency_labels, latency = run["pria_ml_prod_latency_p95_delta_ratio"]
    assert latency == 0.06
    success_labels, finished = success["pria_ml_nightly_last_success_timestamp_seconds"]
    assert success_labels == {"part": "train"} and finished > 0

    def fired(summary: str, anchor: str, **labels: str) -> list[dict]:
        return [
            {
                "exp_labels": {"team": "ml-ops", **labels},
                "exp_annotations": {"summary": summary, "runbook": f"docs/RUNBOOK.md#{anchor}"},
            }
        ]

    tests = {
        "rule_files": ["pria-ml.rules.yml"],
        "evaluation_interval": "1h",
        "tests": [
            {
                "interval": "1d",
                "input_series": [
                    {
                        "series": selector("gpu_train_cost_usd_total", cost_labels),
                        "values": f"{cost}x30 {2 * cost}",
                    },
                    {
                        "series": selector("pria_ml_prod_latency_p95_delta_ratio", latency_labels),
                        "values": f"{latency}x40",
                    },
                    # the success the night wrote, placed at promtool's time 0
                    {
                        "series": selector(
                            "pria_ml_nightly_last_success_timestamp_seconds", success_labels
                        ),
                        "values": "0x40",
                    },
                ],
                "alert_rule_test": [
                    {"eval_time": "30d", "alertname": COST, "exp_alerts": []},
                    {
                        "eval_time": "31d",
                        "alertname": COST,
                        "exp_alerts": fired(
                            f"Training GPU spend of the last 30 nights is ${cost:.2f} (> $200)",
                            "cost-alert",
                            severity="warning",
                        ),
                    },
                    {
                        "eval_time": "1d",
                        "alertname": "PriaMlLatencyRegression",
                        "exp_alerts": fired(
                            "The prod adapter's p95 latency is 6% above the adapter before it",
                            "latency-regression",
                            severity="critical",
                        ),
                    },
                    {"eval_time": "1d", "alertname": MISSING, "exp_alerts": []},
                    {
                        "eval_time": "2d",
                        "alertname": MISSING,
                        "exp_alerts": fired(
                            "No successful pria-ml nightly (train part) for 2d 0h 0m 0s",
                            "training-fail",
                            severity="critical",
                            part="train",
                        ),
                    },
                ],
            }
        ],
    }
    (tmp_path / "pria-ml.rules.yml").write_text((RULES / "pria-ml.rules.yml").read_text())
    (tmp_path / "night.test.yml").write_text(yaml.safe_dump(tests))
    result = subprocess.run(
        [str(promtool), "test", "rules", "night.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
