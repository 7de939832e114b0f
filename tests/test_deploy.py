"""The production deployment, checked without Fly or Docker: fly.toml is the one description of
the night's machine, the image installs exactly requirements.lock, the lock follows
pyproject.toml, the date extract ran for is the date train runs, and the machine is always
deleted. (The night itself, run the way the machine runs it: tests/test_fly_rehearsal.py.)"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from repo_scripts import dev, machine

from pria_ml.settings import DEFAULT_GPU_TIERS, Settings

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def _steps(name: str, job: str) -> list[dict]:
    return _workflow(name)["jobs"][job]["steps"]


def _step(name: str, job: str, step_id: str) -> dict:
    (step,) = [s for s in _steps(name, job) if s.get("id") == step_id]
    return step


# The lock ----------------------------------------------------------------------------------
def _locked() -> dict[str, tuple[str, list[str]]]:
    """{name: (version, hashes)} of requirements.lock."""
    entries = {}
    for block in re.split(r"\n(?=\S)", (ROOT / "requirements.lock").read_text()):
        first = block.splitlines()[0]
        if first.startswith("#"):
            continue
        name, version = first.split(" ")[0].split("==")
        entries[canonicalize_name(name)] = (
            version,
            re.findall(r"--hash=sha256:([0-9a-f]{64})", block),
        )
    return entries


def test_the_lock_follows_pyproject() -> None:
    header = (ROOT / "requirements.lock").read_text().splitlines()[0]
    assert header == f"# inputs sha256: {dev.lock_fingerprint()}", (
        "pyproject.toml's dependencies changed since requirements.lock was written: "
        "run `python3 dev.py lock` and commit the lock"
    )


def test_a_dependency_change_without_relocking_is_caught(tmp_path: Path) -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    changed = tmp_path / "pyproject.toml"
    changed.write_text(pyproject.replace('"transformers>=4.56"', '"transformers>=4.57"'))
    assert changed.read_text() != pyproject
    assert dev.lock_fingerprint(changed) != dev.lock_fingerprint()
    # A change that is not a dependency leaves the lock current.
    changed.write_text(pyproject.replace("line-length = 100", "line-length = 99"))
    assert dev.lock_fingerprint(changed) == dev.lock_fingerprint()


def test_every_requirement_is_pinned_by_hash_in_the_lock() -> None:
    locked = _locked()
    assert all(hashes for _, hashes in locked.values()), "every pin carries its sha256"
    for line in dev.lock_inputs():
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in requirements.lock"
        version = locked[name][0]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside pyproject's {requirement}"
        )
    assert locked["torch"][0] == dev.TORCH.split("==")[1]  # the image trains on dev's torch


# The image, statically ---------------------------------------------------------------------
def _dockerignored(path: str) -> bool:
    from fnmatch import fnmatch

    patterns = [p for p in (ROOT / ".dockerignore").read_text().split() if p]
    return any(fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_every_copy_source_exists_and_reaches_the_build_context() -> None:
    copies = re.findall(r"^COPY (.+) (\S+)$", DOCKERFILE, re.MULTILINE)
    assert copies
    for sources, _target in copies:
        for source in sources.split():
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
            assert not _dockerignored(source), f".dockerignore leaves {source} out of the context"


def test_the_image_installs_only_the_lock() -> None:
    installs = re.findall(r"pip install ([^\n&\\]+)", DOCKERFILE)
    assert "--require-hashes --no-deps -r requirements.lock" in installs[0]
    for command in installs[1:]:  # pria-ml itself: nothing from an index
        assert "--no-index" in command and "--no-deps" in command, command


def test_the_entrypoint_resolves() -> None:
    (entrypoint,) = re.findall(r"^ENTRYPOINT (\[.*\])$", DOCKERFILE, re.MULTILINE)
    tini, separator, script, command = yaml.safe_load(entrypoint)
    assert (tini, separator) == ("tini", "--")
    assert re.search(r"apt-get install[^\n]*\n?[^\n]* tini ", DOCKERFILE)
    copied = dict((t, s) for s, t in re.findall(r"^COPY (\S+) (\S+)$", DOCKERFILE, re.MULTILINE))
    source = ROOT / copied[f"/usr/local/bin/{script}"]
    assert os.access(source, os.X_OK), f"{source} is not executable"
    mode = subprocess.run(
        ["git", "ls-files", "-s", str(source.relative_to(ROOT))],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()[0]  # fmt: skip
    assert mode == "100755", "git must carry the entrypoint's executable bit into the image"
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command in scripts


def test_the_entrypoint_gives_the_volume_to_the_image_user(tmp_path: Path) -> None:
    """Fly mounts the volume root-owned: started as root, the entrypoint hands PRIA_HOME and
    HF_HOME to uid 10001 and runs the command as that user; as anyone else it just runs it."""
    volume = tmp_path / "data"
    (volume / "hf" / "hub").mkdir(parents=True)
    (volume / "hf" / "hub" / "blob").write_text("weights")
    env = {**os.environ, "PRIA_HOME": str(volume / "pria"), "HF_HOME": str(volume / "hf")}
    result = subprocess.run(
        ["sh", str(ROOT / "deploy" / "fly" / "entrypoint.sh"), "id", "-u"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    if os.geteuid() != 0:
        assert result.stdout.strip() == str(os.geteuid())
        return
    assert result.stdout.strip() == "10001"
    for path in (volume / "pria", volume / "hf", volume / "hf" / "hub" / "blob"):
        assert path.stat().st_uid == 10001, path


# fly.toml: the one description of the machine ----------------------------------------------
def test_the_machine_mounts_the_volume_under_every_state_directory() -> None:
    fly = machine.load()
    body = machine.config(fly, date="2026-11-24", image="registry.fly.io/x:sha", volume_id="vol_1")
    config = body["config"]
    (mount,) = config["mounts"]
    assert mount == {"volume": "vol_1", "path": fly["mounts"][0]["destination"]}
    for name in ("PRIA_HOME", "HF_HOME"):
        assert Path(config["env"][name]).is_relative_to(mount["path"]), name
    assert config["restart"] == {"policy": "no"}  # the exit code is the night's
    assert config["init"]["cmd"] == ["nightly", "--from", "train", "--date", "2026-11-24"]
    assert body["region"] == fly["primary_region"]


def test_one_setting_chooses_the_gpu_and_its_cost() -> None:
    fly = machine.load()
    settings = Settings(**{k.removeprefix("PRIA_").lower(): v for k, v in fly["env"].items()
                           if k.startswith("PRIA_") and k != "PRIA_HOME"})  # fmt: skip
    body = machine.config(fly, date="2026-11-24", image="i", volume_id="v")
    assert body["config"]["guest"]["gpu_kind"] == settings.tier.fly_gpu_kind
    # The tier is costed and sized for the GPU Fly gives it, not the spec's AWS A10G.
    assert settings.tier.gpu_type.lower() == settings.tier.fly_gpu_kind
    for name, tier in DEFAULT_GPU_TIERS.items():
        assert tier.fly_gpu_kind, f"tier {name} names no Fly GPU"


def test_production_settings_in_fly_toml_leave_only_the_secrets_missing() -> None:
    """fly.toml carries every non-secret production setting; what is missing is exactly what
    docs/deploy.md tells the operator to set with `flyctl secrets set`."""
    env = machine.environment(machine.load())
    settings = Settings(**{k.removeprefix("PRIA_").lower(): v for k, v in env.items()
                           if k.startswith("PRIA_") and k != "PRIA_HOME"})  # fmt: skip
    assert settings.deployment == "production"
    missing = settings.missing_for_production()
    assert set(missing) == {
        "PRIA_DATABASE_URL", "PRIA_STORAGE_URL", "PRIA_PII_KEY", "PRIA_ENDPOINT_ROTATION_URL",
        "PRIA_ENDPOINT_ROTATION_SECRET",
    }  # fmt: skip
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    (secrets,) = re.findall(r"flyctl secrets set [^\n]*\\\n((?:.+\\\n)*.+)", deploy)
    named = set(re.findall(r"(\w+)=", secrets))
    assert set(missing) <= named, f"docs/deploy.md does not set {set(missing) - named}"


def test_a_date_that_is_not_a_date_never_reaches_the_machine() -> None:
    with pytest.raises(SystemExit, match="YYYY-MM-DD"):
        machine.command(machine.load(), "yesterday")


# The workflows -----------------------------------------------------------------------------
def _run_step(script: str, env: dict[str, str], cwd: Path) -> dict[str, str]:
    """Run a workflow step's bash script as Actions does; return what it wrote to
    $GITHUB_OUTPUT."""
    output = cwd / "github_output"
    output.touch()
    subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        env={**os.environ, **env, "GITHUB_OUTPUT": str(output)}, cwd=cwd, check=True,
        capture_output=True, text=True,
    )  # fmt: skip
    return dict(line.split("=", 1) for line in output.read_text().splitlines())


def test_a_backfill_of_a_date_trains_that_date(tmp_path: Path) -> None:
    """extract_dataset's date step writes the date it chose into the artifact it uploads; the
    train workflow, started by that run, reads the date from the artifact."""
    extract = _step("extract_dataset.yml", "extract", "date")
    runner = tmp_path / "extract"
    runner.mkdir()
    chosen = _run_step(extract["run"], {"INPUT_DATE": "2026-03-09"}, runner)
    assert chosen["date"] == "2026-03-09"
    (upload,) = [s for s in _steps("extract_dataset.yml", "extract")
                 if s.get("uses", "").startswith("actions/upload-artifact")]  # fmt: skip
    artifact = runner / upload["with"]["path"]
    assert artifact.read_text().strip() == "2026-03-09"

    (download,) = [s for s in _steps("train_adapters.yml", "train")
                   if s.get("uses", "").startswith("actions/download-artifact")]  # fmt: skip
    assert download["with"]["name"] == upload["with"]["name"]
    assert download["with"]["run-id"] == "${{ github.event.workflow_run.id }}"
    temp = tmp_path / "runner-temp"
    (temp / "night").mkdir(parents=True)
    (temp / "night" / artifact.name).write_text(artifact.read_text())
    train = _step("train_adapters.yml", "train", "date")
    trained = _run_step(train["run"], {"INPUT_DATE": "", "RUNNER_TEMP": str(temp)}, tmp_path)
    assert trained["date"] == "2026-03-09"
    assert "yesterday" not in (WORKFLOWS / "train_adapters.yml").read_text()


def test_a_dispatch_must_name_its_date() -> None:
    inputs = _workflow("train_adapters.yml")[True]["workflow_dispatch"]["inputs"]  # `on:` is True
    assert inputs["date"]["required"] is True


def test_the_machine_is_deleted_whatever_happened() -> None:
    steps = _steps("train_adapters.yml", "train")
    night = next(i for i, s in enumerate(steps) if s.get("id") == "night")
    cleanup = [s for s in steps[night + 1 :] if "DELETE" in s.get("run", "")]
    assert cleanup and cleanup[0]["if"] == "always()"
    # The machine id is written down before the wait, so a cancelled step still names it.
    night_script = steps[night]["run"]
    assert night_script.index('> "$RUNNER_TEMP/machine-id"') < night_script.index("until ")
    assert '"$RUNNER_TEMP/machine-id"' in cleanup[0]["run"]


def test_the_wait_has_a_bound_of_its_own_under_the_job_timeout() -> None:
    workflow = _workflow("train_adapters.yml")
    bound = int(workflow["env"]["NIGHT_WAIT_MINUTES"])
    assert bound < workflow["jobs"]["train"]["timeout-minutes"]
    script = _step("train_adapters.yml", "train", "night")["run"]
    assert "NIGHT_WAIT_MINUTES * 60" in script
    assert re.search(r"::error::.*did not end within", script)


def test_extract_takes_the_production_settings_from_fly_toml(tmp_path: Path) -> None:
    (step,) = [
        s for s in _steps("extract_dataset.yml", "extract") if "fly.toml" in s.get("name", "")
    ]
    env_file = tmp_path / "github_env"
    script = step["run"].replace('"$GITHUB_ENV"', shlex.quote(str(env_file)))
    subprocess.run(["bash", "-e", "-c", script], cwd=ROOT, check=True)
    exported = dict(line.split("=", 1) for line in env_file.read_text().splitlines())
    fly_env = machine.environment(machine.load())
    assert exported["PRIA_MODE"] == "production"
    assert exported["PRIA_BASE_MODEL_REVISION"] == fly_env["PRIA_BASE_MODEL_REVISION"]
    assert "PRIA_HOME" not in exported  # the volume's path, not the runner's
