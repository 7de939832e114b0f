"""docs/RUNBOOK.md, scenario by scenario: each test sets up what fired, runs the commands the
runbook's section tells on-call to type, in order, as the CLI (in-process), and checks the
outcome the section promises. The scenarios share one registry, in the runbook's order, the way
one on-call week might meet them; nothing trains (registry rows, evaluation records and files
are seeded; extract and build-features run for real on a small seeded source).

The last test checks that every command of the runbook's sh blocks was run by a scenario."""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
from pathlib import Path

import pytest
from evalrecords import evaluate_and_gate
from nightly_kit import Received, serve

from pria_ml import registry, train
from pria_ml.cli import main
from pria_ml.data.contract import adapter_keys, features_key
from pria_ml.data.storage import open_storage
from pria_ml.db import database
from pria_ml.quality.record import StoredFile, eval_key, of_adapter
from pria_ml.settings import Settings

RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "RUNBOOK.md"
DATE = dt.date(2026, 11, 24)
SURGE_DATE = DATE + dt.timedelta(days=1)
RAN: list[str] = []  # every runbook command a scenario ran


def sections() -> dict[str, list[str]]:
    """``{section heading: its sh blocks' commands, in order}``."""
    found = {}
    for part in re.split(r"^## ", RUNBOOK.read_text(), flags=re.M)[1:]:
        heading, _, body = part.partition("\n")
        blocks = re.findall(r"```sh\n(.*?)```", body, re.S)
        found[heading.strip()] = [
            line.strip() for block in blocks for line in block.splitlines() if line.strip()
        ]
    return found


class OnCall:
    """Types commands as on-call does: ``pria-ml ...`` run in-process, exit code and output."""

    def __init__(self, capsys: pytest.CaptureFixture, variables: dict[str, str]) -> None:
        self.capsys, self.variables = capsys, variables

    def __call__(self, *argv: str) -> tuple[int, str]:
        self.capsys.readouterr()
        try:
            main(list(argv))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = self.capsys.readouterr()
        return code, captured.out + captured.err

    def section(self, heading: str, expect: dict[str, int] | None = None) -> dict[str, str]:
        """Run every command of the runbook's ``heading`` section, in order; each must exit 0
        unless ``expect`` maps a prefix of it to another code. Returns {command: output}."""
        outputs = {}
        commands = sections()[heading]
        assert commands, f"the runbook's {heading!r} section has no commands"
        for command in commands:
            argv = [self.variables.get(arg, arg) for arg in shlex.split(command)[1:]]
            code, output = self(*argv)
            wanted = next((c for p, c in (expect or {}).items() if command.startswith(p)), 0)
            assert code == wanted, f"{command} exited {code}, expected {wanted}:\n{output}"
            outputs[command] = output
            RAN.append(command)
        return outputs


@pytest.fixture(scope="module")
def world(new_database, install_tiny_model, tmp_path_factory):
    """A registry and a source database, storage and a home with the tiny base model; the
    rotation hook and Slack as local HTTP servers."""
    root = tmp_path_factory.mktemp("runbook")
    home = root / "home"
    install_tiny_model(home)
    hook, slack = Received(body=b'{"rotated": true}'), Received()
    with (
        new_database("registry", "runbook") as registry_db,
        new_database("source", "runbook_source") as source_db,
        serve(hook) as hook_url,
        serve(slack) as slack_url,
    ):
        env = {
            "PRIA_HOME": str(home),
            "PRIA_DATABASE_URL": registry_db.url,
            "PRIA_SOURCE_DATABASE_URL": source_db.url,
            "PRIA_STORAGE_URL": (root / "storage").as_uri(),
            "PRIA_PII_KEY": "runbook-pii-key",
            "PRIA_ENDPOINT_ROTATION_URL": hook_url,
            "PRIA_ENDPOINT_ROTATION_SECRET": "runbook-secret",
            "PRIA_SLACK_WEBHOOK_URL": slack_url,
            "PRIA_EXTRACT_WORKERS": "1",
        }
        settings = Settings(
            home=home,
            database_url=registry_db.url,
            source_database_url=source_db.url,
            storage_url=env["PRIA_STORAGE_URL"],
        )
        yield {"env": env, "settings": settings, "hook": hook, "slack": slack}


@pytest.fixture
def on_call(world, monkeypatch, capsys) -> OnCall:
    for name, value in world["env"].items():
        monkeypatch.setenv(name, value)
    return OnCall(capsys, {"$DATE": DATE.isoformat()})


def seed_evaluated_candidate(settings: Settings, date: dt.date, **figures) -> registry.Adapter:
    """A candidate of ``date`` as `train`, `eval` and `gate` leave it: its file in storage,
    registered with the train split it was trained on (when the date has features), its
    evaluation report and record, and the gate's decision on them."""
    storage, db = open_storage(settings), database(settings)
    weights_key, config_key = adapter_keys(date)
    weights = storage.write_bytes(weights_key, f"weights of {date}".encode())
    storage.write_bytes(config_key, b"{}")
    manifest_key = features_key(date, "manifest.json")
    dataset = {}
    if storage.exists(manifest_key):
        manifest = json.loads(storage.read_bytes(manifest_key))
        dataset = {"train_sha256": manifest["files"]["train.parquet"]["sha256"]}
    adapter_id = registry.register_candidate(
        db,
        dataset_date=date,
        artifact_uri=weights.uri,
        artifact_sha256=weights.sha256,
        base_model="tiny-mistral",
        metrics={"dataset": dataset, "cost_usd": 0.4},
    )
    evaluate_and_gate(db, adapter_id, date, **figures)
    measured = of_adapter(registry.get_adapter(db, adapter_id))
    samples_key = eval_key(date, adapter_id, "samples.parquet")
    samples = storage.write_bytes(samples_key, b"per-sample outputs")
    files = {"samples.parquet": StoredFile(key=samples_key, uri=samples.uri,
                                           sha256=samples.sha256, bytes=samples.size)}  # fmt: skip
    report = measured.model_copy(update={"files": files}).model_dump_json().encode()
    storage.write_bytes(eval_key(date, adapter_id, "report.json"), report)
    return registry.get_adapter(db, adapter_id)


def test_training_fail_retry_resumes_the_night_and_a_features_rebuild_retrains_nothing(
    world, on_call
) -> None:
    settings, hook = world["settings"], world["hook"]
    seeded = on_call("seed", "--rows", "200", "--seed", "3", "--end-date", str(DATE), "--days", "8")
    assert seeded[0] == 0, seeded[1]
    assert on_call("nightly", "--date", str(DATE), "--until", "build-features")[0] == 0
    candidate = seed_evaluated_candidate(settings, DATE)
    assert train.complete(settings, DATE)
    # What fired: the night failed in promote, the endpoint hook refusing (exit 9).
    hook.statuses.append(400)
    failed, output = on_call("nightly", "--date", str(DATE))
    assert failed == 9 and "promote" in output

    outputs = on_call.section("Training fail")

    status, history, retry, rebuild = outputs.values()
    assert "registry" in status
    assert str(candidate.adapter_id) in history
    assert re.search(r"promote\s*│\s*done", retry) and re.search(r"train\s*│\s*skipped", retry)
    db = database(settings)
    assert registry.current_prod(db).adapter_id == candidate.adapter_id
    assert registry.unrotated_prod_event(db) is None  # the hook acknowledged it this time
    assert re.search(r"build-features\s*│\s*done", rebuild)
    # Rebuilt from the same raw.parquet: the same train split, so the adapter is still current.
    assert train.complete(settings, DATE)
    assert [a.attempt for a in registry.adapters_of_date(db, DATE)] == [1]


def test_safety_flag_surge_blocks_the_candidate_until_overridden_with_a_reason(
    world, on_call
) -> None:
    settings = world["settings"]
    blocked = seed_evaluated_candidate(settings, SURGE_DATE, safety_flag_pct=0.6)
    assert blocked.gate_passed is False
    prod_before = registry.current_prod(database(settings))
    on_call.variables |= {"$DATE": str(SURGE_DATE), "$ADAPTER_ID": str(blocked.adapter_id)}

    outputs = on_call.section("Safety flag surge", expect={"pria-ml nightly": 11})
    gate, history, _promoted = outputs.values()
    assert "safety_flag_pct < 0.1 % failed (got +0.600)" in gate
    assert str(blocked.adapter_id) in history and "candidate" in history
    db = database(settings)
    assert registry.current_prod(db).adapter_id == blocked.adapter_id
    (event,) = [e for e in registry.history(db, limit=5) if e.action == "promote"][:1]
    assert event.forced and event.reason == "reviewed flagged samples: false positives"
    assert event.previous_prod == prod_before.adapter_id


def test_latency_regression_rolls_back_to_the_previous_adapter_and_tells_ml_ops(
    world, on_call
) -> None:
    settings, slack = world["settings"], world["slack"]
    db = database(settings)
    regressed = registry.current_prod(db)
    previous = registry.rollback_target(db).target
    slack.requests.clear()

    outputs = on_call.section("Latency regression")

    _history, objectives, dry_run, rolled_back, after = outputs.values()
    assert "p95" in objectives or "latency" in objectives
    assert str(previous) in dry_run
    assert str(regressed.adapter_id) in rolled_back and str(previous) in rolled_back
    assert registry.current_prod(db).adapter_id == previous
    assert registry.unrotated_prod_event(db) is None
    (event, *_) = [e for e in registry.history(db, limit=3) if e.action == "rollback"]
    assert event.adapter_id == previous and "PriaMlLatencyRegression" in (event.reason or "")
    assert "rollback" in after
    messages = [json.loads(body)["text"] for _, _, body in slack.requests]
    assert any("rolled back" in m or "rollback" in m for m in messages), messages


def test_cost_alert_shows_spend_per_night_and_the_estimate_of_a_changed_night(
    world, on_call
) -> None:
    settings = world["settings"]
    booted = dt.datetime.combine(DATE + dt.timedelta(days=1), dt.time(1, 30), dt.UTC)
    registry.record_machine_run(
        database(settings),
        machine_id="fly-runbook",
        dataset_date=DATE,
        booted_at=booted,
        exited_at=booted + dt.timedelta(hours=2),
        gpu_type="A10G",
        gpus=1,
        usd_per_gpu_hour=2.13,
    )

    outputs = on_call.section("Cost alert")

    table, as_json, objectives, estimate = outputs.values()
    nights = {n["date"]: n for n in json.loads(as_json)["nights"]}
    assert nights[str(DATE)]["usd"] == pytest.approx(4.26)
    assert "4.26" in table
    assert "cost" in json.dumps(json.loads(objectives)).lower()
    plan = json.loads(estimate[: estimate.rindex("}") + 1])
    assert plan["estimate"]["usd"] > 0 and plan["optimizer_steps"] == 50
    assert plan["attempt"] == 2  # DATE has an adapter: a retrain would be its second attempt
    assert "accelerate launch" in estimate and "--retrain" in estimate


def test_every_runbook_command_is_run_by_a_scenario() -> None:
    commands = [c for commands in sections().values() for c in commands]
    assert len(commands) >= 12 and all(c.startswith("pria-ml ") for c in commands)
    assert sorted(set(RAN)) == sorted(set(commands))
    assert set(sections()) >= {
        "Training fail",
        "Safety flag surge",
        "Latency regression",
        "Cost alert",
    }
