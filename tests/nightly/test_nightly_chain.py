"""`pria-ml nightly` on embedded defaults, through the real command in a subprocess: a night
killed with SIGKILL in build-features and again in train resumes at that stage and ends as an
uninterrupted night would; a second run skips every stage; two runs of one date never overlap;
a blocked gate stops promotion with exit 11 and tells #ml-ops."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from evalrecords import evaluate_and_gate
from nightly_kit import Received, cli_env, pria_ml, serve

from pria_ml import registry
from pria_ml.db import database
from pria_ml.operations.nightly import night_lock
from pria_ml.settings import Settings

DATE = dt.date(2026, 11, 24)
DAY = DATE.isoformat()
TRAIN = ["--profile", "demo", "--max-steps", "4", "--save-steps", "2"]

# The night trains and evaluates for real: minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


def start(home: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pria_ml", "nightly", "--date", DAY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
    )


def kill_when(process: subprocess.Popen, ready, what: str, timeout: float = 900) -> str:
    """SIGKILL ``process`` as soon as ``ready(output so far)`` holds; return its output."""
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if ready("".join(output)):
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            reader.join(30)
            return "".join(output)
        time.sleep(0.1)
    process.kill()
    reader.join(30)
    pytest.fail(f"never reached {what}; output:\n{''.join(output)}")


def stage_lines(output: str) -> dict[str, str]:
    """``{stage: status}`` from the end table."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│") if c.strip()]
        if len(cells) >= 2 and cells[0] in (
            "extract", "build-features", "train", "eval", "gate", "promote", "archive"
        ):  # fmt: skip
            rows[cells[0]] = cells[1]
    return rows


RUNBOOK = Path(__file__).resolve().parents[2] / "docs" / "RUNBOOK.md"
RUNBOOK_RUN: set[str] = set()  # runbook commands a test of this module has already run


def runbook_commands() -> list[str]:
    """Every `pria-ml` line of the runbook's sh blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK.read_text(), re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, install_tiny_model) -> Path:
    home = tmp_path_factory.mktemp("nightly") / "home"
    install_tiny_model(home)  # what the first night's train would build (tests/conftest.py)
    pria_ml(home, "seed", "--rows", "400", "--seed", "3", "--end-date", DAY, "--days", "40")
    return home


@pytest.fixture(scope="module")
def resumed(home: Path) -> dict:
    """The night run up to train, SIGKILLed in build-features, then in train, then resumed."""
    checkpoint = home / "runs" / f"train-{DAY}" / "checkpoint-2" / "trainer_state.json"
    in_features = kill_when(
        start(home, "--until", "train", *TRAIN),
        lambda out: "stage build-features: started" in out,
        "build-features",
    )
    time.sleep(2)  # let Spark get going, so the kill lands in the middle of the stage
    in_train = kill_when(
        start(home, "--until", "train", *TRAIN),
        lambda out: checkpoint.exists(),
        "a training checkpoint",
    )
    finished = pria_ml(home, "nightly", "--date", DAY, "--until", "train", *TRAIN)
    again = pria_ml(home, "nightly", "--date", DAY, "--until", "train", *TRAIN)
    return {"features": in_features, "train": in_train, "finished": finished, "again": again}


def adapter_of(home: Path, date: dt.date = DATE) -> registry.Adapter:
    (adapter,) = [
        a for a in registry.adapters(database(Settings(home=home))) if a.dataset_date == date
    ]
    return adapter


def test_a_killed_night_resumes_at_the_stage_it_was_killed_in(home: Path, resumed: dict) -> None:
    assert "stage extract: started" in resumed["features"]
    assert "stage extract: complete, skipped" in resumed["train"]
    assert "stage build-features: started" in resumed["train"]
    finished = stage_lines(resumed["finished"].stdout)
    assert finished == {
        "extract": "skipped",
        "build-features": "skipped",
        "train": "done",
        "eval": "not run",
        "gate": "not run",
        "promote": "not run",
        "archive": "not run",
    }
    adapter = adapter_of(home)
    assert adapter.metrics_json["resumed_from_step"] == 2
    assert adapter.metrics_json["steps"] == 4


def test_the_resumed_night_has_the_result_of_an_uninterrupted_one(
    home: Path, resumed: dict
) -> None:
    manifest = home / "storage" / "datasets" / DAY / "features" / "manifest.json"
    before = json.loads(manifest.read_text())
    (command,) = [c for c in runbook_commands() if "--from build-features" in c]
    rebuilt = pria_ml(home, *shlex.split(command.replace('"$DATE"', DAY))[1:])
    RUNBOOK_RUN.add(command)
    assert stage_lines(rebuilt.stdout)["build-features"] == "done"
    after = json.loads(manifest.read_text())
    assert after["generation"] != before["generation"]
    assert {n: f["sha256"] for n, f in after["files"].items()} == {
        n: f["sha256"] for n, f in before["files"].items()
    }
    assert (
        adapter_of(home).metrics_json["dataset"]["train_sha256"]
        == (after["files"]["train.parquet"]["sha256"])
    )


def test_a_second_run_skips_every_stage(resumed: dict) -> None:
    assert set(stage_lines(resumed["again"].stdout).values()) == {"skipped", "not run"}
    assert "train" in stage_lines(resumed["again"].stdout)


def test_a_second_run_of_the_same_date_is_refused_and_names_the_holder(
    home: Path, resumed: dict
) -> None:
    db = database(Settings(home=home))
    with night_lock(db, DATE):
        result = pria_ml(home, "nightly", "--date", DAY, "--until", "extract", expect=12)
    assert "already running: pria-ml nightly 2026-11-24" in result.stderr
    assert f":{os.getpid()}" in result.stderr
    pria_ml(home, "nightly", "--date", DAY, "--until", "extract")  # released with the lock


# Evaluation kept small for a 2-core machine; production keeps the settings' defaults.
EVAL = {
    "PRIA_EVAL_MAX_SAMPLES": "8",
    "PRIA_EVAL_LATENCY_PROMPTS": "4",
    "PRIA_EVAL_LATENCY_REPEATS": "1",
    "PRIA_EVAL_BENCHMARK_LIMIT": "2",
}


@pytest.fixture(scope="module")
def evaluated(home: Path, resumed: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The whole night on top of the resumed one: eval and gate run for real. Four training
    steps teach the tiny model nothing, so the gate blocks the candidate (accuracy_delta)."""
    received = Received()
    textfile = tmp_path_factory.mktemp("textfile")
    with serve(received) as url:
        night = pria_ml(
            home, "nightly", "--date", DAY, *TRAIN, expect=11,
            PRIA_SLACK_WEBHOOK_URL=url, PRIA_METRICS_TEXTFILE_DIR=str(textfile), **EVAL,
        )  # fmt: skip
    again = pria_ml(home, "nightly", "--date", DAY, expect=11, **EVAL)
    return {"night": night, "again": again, "slack": received, "textfile": textfile}


def test_eval_and_gate_run_and_a_blocked_gate_stops_promotion(evaluated: dict, home) -> None:
    night = evaluated["night"]
    assert stage_lines(night.stdout) == {
        "extract": "skipped",
        "build-features": "skipped",
        "train": "skipped",
        "eval": "done",
        "gate": "blocked",
        "promote": "blocked",
        "archive": "skipped",
    }
    assert "failed: accuracy_delta" in night.stdout
    assert "the gate blocked the candidate of 2026-11-24" in night.stderr
    assert adapter_of(home).status == "candidate" and adapter_of(home).gate_passed is False


def test_a_blocked_night_tells_ml_ops_and_leaves_metrics(evaluated: dict, home) -> None:
    (message,) = [json.loads(body)["text"] for _, _, body in evaluated["slack"].requests]
    assert "gate blocked candidate" in message and str(adapter_of(home).adapter_id) in message
    metrics = (evaluated["textfile"] / "pria_ml_nightly_train.prom").read_text()
    assert "pria_ml_gate_passed 0.0" in metrics
    assert "pria_ml_latency_p95_delta_ratio" in metrics  # read from the evaluation record
    assert 'pria_ml_nightly_stage_status{part="train",stage="eval",status="done"} 1.0' in metrics
    assert not (evaluated["textfile"] / "pria_ml_nightly_train_success.prom").exists()
    assert (evaluated["textfile"] / "pria_ml_nightly_extract_success.prom").exists()


def test_the_finished_night_run_again_skips_every_stage_and_keeps_its_result(
    evaluated: dict,
) -> None:
    again = stage_lines(evaluated["again"].stdout)
    assert again["eval"] == "skipped" and again["train"] == "skipped"
    assert again["gate"] == "blocked" and again["promote"] == "blocked"


def register_gated(home: Path, day: dt.date, **figures) -> object:
    """A candidate of ``day`` with an evaluation record of ``figures`` and the gate's decision
    on it (its weights are not needed by the stages after the gate)."""
    db = database(Settings(home=home))
    adapter_id = registry.register_candidate(
        db,
        dataset_date=day,
        artifact_uri=f"file:///elsewhere/{day}.safetensors",
        artifact_sha256=f"{day.day:064x}",
        base_model="tiny-mistral",
        metrics={"cost_usd": 1.25},
    )
    evaluate_and_gate(db, adapter_id, day, **figures)
    return adapter_id


def test_a_passed_gate_promotes_and_a_rerun_changes_nothing(home: Path, evaluated: dict) -> None:
    day = DATE - dt.timedelta(days=1)
    adapter_id = register_gated(home, day, latency_delta=0.01, safety_flag_pct=0.0)
    night = pria_ml(home, "nightly", "--date", day.isoformat(), "--from", "gate")
    assert stage_lines(night.stdout) == {
        "extract": "not run",
        "build-features": "not run",
        "train": "not run",
        "eval": "not run",
        "gate": "skipped",
        "promote": "done",
        "archive": "skipped",
    }
    assert f"gate: passed for adapter {adapter_id}" in night.stdout
    assert adapter_of(home, day).status == "prod"
    again = pria_ml(home, "nightly", "--date", day.isoformat(), "--from", "gate")
    assert stage_lines(again.stdout)["promote"] == "skipped"


def test_every_runbook_command_runs_as_written(home: Path, evaluated: dict) -> None:
    """Each command of docs/RUNBOOK.md, run for real in the runbook's order on this night
    (DATE, whose candidate the gate blocked; ADAPTER_ID, that candidate). A nightly that
    reaches the gate repeats the block with exit 11; everything else exits 0."""
    commands = runbook_commands()
    assert len(commands) >= 12 and all(c.startswith("pria-ml ") for c in commands)
    blocked = adapter_of(home)
    variables = {"$DATE": DAY, "$ADAPTER_ID": str(blocked.adapter_id)}
    assert RUNBOOK_RUN, "the features rebuild of the runbook ran in the test above"
    for command in (c for c in commands if c not in RUNBOOK_RUN):
        argv = [variables.get(arg, arg) for arg in shlex.split(command)[1:]]
        gated = (argv[0] == "nightly" and "--until" not in argv) or "gate" in argv[-2:]
        result = pria_ml(home, *argv, expect=11 if gated else 0, **EVAL)
        assert result.stdout.strip(), command
    history = registry.history(database(Settings(home=home)), limit=5)
    assert [event.action for event in history[:2]] == ["rollback", "promote"]
    assert adapter_of(home).state == "superseded"  # forced to prod, then rolled back
