"""The production rehearsal: the night's Fly machine, run on this machine.

The container command and environment are read from fly.toml through deploy/fly/machine.py,
the code train_adapters.yml builds the machine with, so the test breaks when the two diverge.
Only three things differ from the machine, each for a reason named below: where the volume is,
which model the pinned hub id is (the tiny one, from the volume's Hugging Face cache, offline)
and the sizes (a few training steps, a few evaluation samples). Every other part is production's
code path: PostgreSQL reached by URL (the session's embedded server, migrated with
`pria-ml db migrate` as the release step does), a real S3 API over HTTP (moto's server), the
secrets named as docs/deploy.md sets them. The night is killed with SIGKILL in the middle of
training, started again, resumes from the checkpoint on the "volume" and ends with the gate's
exit code."""

from __future__ import annotations

import datetime as dt
import http.server
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import ClassVar

import boto3
import pytest
from hub_cache import REPO_ID, install_snapshot
from repo_scripts import ROOT, machine
from train.train_task import write_features

from pria_ml import registry
from pria_ml.data.contract import adapter_keys
from pria_ml.data.storage import open_storage
from pria_ml.quality.record import gate_of_adapter
from pria_ml.settings import Settings

DATE = dt.date(2026, 11, 24)
SAVE_STEPS = 2
# Test sizes, appended to the machine's command: the production profile trains 128 examples a
# step for an epoch; here a few steps with a checkpoint every SAVE_STEPS.
TRAIN_SIZE = ["--profile", "demo", "--max-steps", "4", "--save-steps", str(SAVE_STEPS),
              "--logging-steps", "1"]  # fmt: skip
EVAL_SIZE = {
    "PRIA_EVAL_MAX_SAMPLES": "4",
    "PRIA_EVAL_LATENCY_PROMPTS": "4",
    "PRIA_EVAL_LATENCY_REPEATS": "1",
    "PRIA_EVAL_BENCHMARK_LIMIT": "1",
}

pytestmark = pytest.mark.slow


class _Rotation(http.server.BaseHTTPRequestHandler):
    """The endpoint rotation hook production needs set: answers 200, records the calls."""

    calls: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.calls.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def rotation_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Rotation)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/rotate"
    server.shutdown()
    server.server_close()


def _deploy_doc_secrets() -> set[str]:
    text = (ROOT / "docs" / "deploy.md").read_text()
    (block,) = re.findall(r"flyctl secrets set [^\n]*\\\n((?:.+\\\n)*.+)", text)
    return set(re.findall(r"(\w+)=", block))


def test_the_night_on_fly_survives_a_kill_and_ends_with_the_gates_code(
    new_database, s3_endpoint: str, tiny_model_dir: Path, rotation_url: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    fly = machine.load()
    env = machine.environment(fly)
    command = [sys.executable, "-m", "pria_ml", *machine.command(fly, DATE.isoformat())]

    # The volume: every path fly.toml puts under the mount moves to the test's directory.
    (mount,) = fly["mounts"]
    volume = tmp_path / "volume"
    on_volume = {
        name: str(volume / Path(value).relative_to(mount["destination"]))
        for name, value in env.items()
        if Path(value).is_absolute() and Path(value).is_relative_to(mount["destination"])
    }
    assert set(on_volume) == {"PRIA_HOME", "HF_HOME"}

    # The base model: fly.toml pins a hub id to a commit; here the pinned repository is the
    # tiny model, already in the volume's Hugging Face cache (as after the first night's
    # download), and the hub is unreachable.
    snapshot, commit = install_snapshot(Path(on_volume["HF_HOME"]) / "hub", tiny_model_dir)
    model = {"PRIA_BASE_MODEL": REPO_ID, "PRIA_BASE_MODEL_REVISION": commit}
    assert set(model) <= set(env), "fly.toml pins the base model and its revision"
    offline = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

    # The secrets, named as docs/deploy.md sets them on the Fly app.
    bucket = f"rehearsal-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal",
    ).create_bucket(Bucket=bucket)  # fmt: skip
    with new_database("empty", "rehearsal") as registry_db:
        secrets = {
            "PRIA_DATABASE_URL": registry_db.url,
            "PRIA_STORAGE_URL": f"s3://{bucket}/pria",
            "PRIA_S3_ENDPOINT_URL": s3_endpoint,
            "PRIA_S3_REGION": "us-east-1",
            "PRIA_S3_ACCESS_KEY_ID": "rehearsal",
            "PRIA_S3_SECRET_ACCESS_KEY": "rehearsal",
            "PRIA_PII_KEY": "rehearsal-pii-key",
            "PRIA_ENDPOINT_ROTATION_URL": rotation_url,
            "PRIA_ENDPOINT_ROTATION_SECRET": "rehearsal-rotation-secret",
        }
        assert set(secrets) <= _deploy_doc_secrets()
        outside = {
            k: v for k, v in os.environ.items()
            if not k.startswith(("PRIA_", "HF_", "TRANSFORMERS_", "AWS_"))
        }  # fmt: skip
        night_env = {**outside, **env, **on_volume, **model, **offline, **secrets, **EVAL_SIZE}
        settings = Settings(
            **{k.removeprefix("PRIA_").lower(): v for k, v in night_env.items()
               if k.startswith("PRIA_") and k != "PRIA_HOME"},
            home=Path(night_env["PRIA_HOME"]),
        )  # fmt: skip
        assert settings.deployment == "production" and settings.missing_for_production() == []

        # The release step, then the extract half's output (features for D in the bucket).
        release = subprocess.run(
            [sys.executable, "-m", "pria_ml", "db", "migrate"], env=night_env, cwd=tmp_path,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert release.returncode == 0, release.stderr
        storage = open_storage(settings)
        write_features(storage, DATE, train=48, val=8)

        # First machine: killed once a checkpoint of the middle of training is on the volume.
        run_dir = Path(night_env["PRIA_HOME"]) / "runs" / f"train-{DATE.isoformat()}"
        marker = run_dir / f"checkpoint-{SAVE_STEPS}" / "trainer_state.json"
        first = subprocess.Popen(
            [*command, *TRAIN_SIZE], env=night_env, cwd=tmp_path, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 420
        while not marker.exists():
            if first.poll() is not None:
                pytest.fail(f"the night ended before it could be killed:\n{first.stderr.read()}")
            if time.monotonic() > deadline:
                os.killpg(first.pid, signal.SIGKILL)
                pytest.fail("no checkpoint on the volume within 420 s")
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        assert first.wait() == -signal.SIGKILL
        first.stderr.close()
        weights_key, _ = adapter_keys(DATE)
        assert not storage.exists(weights_key)
        assert registry.adapter_of_date(registry_db, DATE) is None

        # Second machine, same volume: resumes, evaluates, and ends with the gate's code.
        second = subprocess.run(
            [*command, *TRAIN_SIZE], env=night_env, cwd=tmp_path, capture_output=True,
            text=True, timeout=900,
        )  # fmt: skip
        adapter = registry.adapter_of_date(registry_db, DATE)
        assert adapter is not None, second.stdout + second.stderr
        assert adapter.metrics_json["resumed_from_step"] == SAVE_STEPS
        assert adapter.artifact_uri == f"s3://{bucket}/pria/{weights_key}"
        assert adapter.base_model == str(snapshot)  # the pinned commit, from the volume
        gate = gate_of_adapter(adapter)
        assert gate is not None, second.stdout + second.stderr
        assert second.returncode == (0 if gate.passed else 11), second.stdout + second.stderr
        assert bool(_Rotation.calls) == gate.passed  # prod changed only when the gate passed
        # The weights were verified once, on the volume, and never fetched.
        assert (snapshot.parent.parent / f"pria-verified-{commit}.json").is_file()
    print(f"rehearsal: {time.monotonic() - started:.0f} s, exit {second.returncode}")
