"""The alert rules Prometheus loads are valid and behave as the runbook says: each rule is
unit-tested by promtool against series shaped like the nightly's metrics."""

import subprocess
from pathlib import Path

import yaml

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def test_rules_file_is_valid(promtool: Path) -> None:
    result = subprocess.run(
        [str(promtool), "check", "rules", "pria-ml.rules.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_when_it_should(promtool: Path) -> None:
    result = subprocess.run(
        [str(promtool), "test", "rules", "pria-ml.rules.test.yml"],
        cwd=RULES,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_unit_test_and_a_runbook_section() -> None:
    rules = yaml.safe_load((RULES / "pria-ml.rules.yml").read_text())
    tests = yaml.safe_load((RULES / "pria-ml.rules.test.yml").read_text())
    alerts = {rule["alert"] for group in rules["groups"] for rule in group["rules"]}
    tested = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert alerts == tested
    runbook = (RULES.parents[1] / "docs" / "RUNBOOK.md").read_text()
    anchors = {"cost-alert", "training-fail", "safety-flag-surge", "latency-regression"}
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["runbook"].split("#")[1] in anchors
            assert rule["alert"] in runbook
