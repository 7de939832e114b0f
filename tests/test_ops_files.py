"""The Dockerfile and the GitHub workflows are code too: linted, and only calling commands
that exist."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pria_ml.cli import app

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.fail(f"{name} is not installed: it comes with the dev extra (python3 dev.py test)")
    return path


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [_tool("hadolint"), "--config", str(ROOT / ".hadolint.yaml"), str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint() -> None:
    assert {path.name for path in WORKFLOWS} >= {
        "extract_dataset.yml",
        "train_adapters.yml",
        "spot_check.yml",
    }
    result = subprocess.run(
        [_tool("actionlint"), *map(str, WORKFLOWS)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _cli_commands() -> set[str]:
    import typer.main

    return set(typer.main.get_command(app).commands)


def test_workflows_only_call_existing_commands() -> None:
    called = set()
    for path in WORKFLOWS:
        called |= set(re.findall(r"pria-ml ([a-z][a-z-]+)", path.read_text()))
        # the trainer image is run as `<image> -- <command> ...` (its entrypoint is pria-ml)
        called |= set(re.findall(r"^\s+-- ([a-z][a-z-]+)", path.read_text(), re.MULTILINE))
    assert called, "the workflows run pria-ml commands"
    assert called <= _cli_commands(), f"unknown commands: {called - _cli_commands()}"


def test_docker_image_carries_what_the_package_reads_at_run_time() -> None:
    copied = set(re.findall(r"^COPY (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE))
    assert {"pria_ml", "sql", "requirements.lock"} <= copied


def _workflow_command_lines() -> list[list[str]]:
    """Every pria-ml command line a workflow runs, as argv: `run:` lines starting with pria-ml,
    and the Fly machine's command (fly.toml, as deploy/fly/machine.py builds it; the image's
    entrypoint is pria-ml)."""
    import shlex

    from repo_scripts import machine

    commands = []
    for path in WORKFLOWS:
        text = path.read_text()
        for line in re.findall(r"^\s+(?:run: )?pria-ml (.+)$", text, re.MULTILINE):
            commands.append(shlex.split(line.replace('"$DATE"', "2026-11-24")))
    commands.append(machine.command(machine.load(), "2026-11-24"))
    return commands


def test_workflows_call_pria_ml_commands_with_options_that_exist() -> None:
    import click
    import typer.main

    group = typer.main.get_command(app)
    commands = _workflow_command_lines()
    assert ["nightly", "--date", "2026-11-24", "--until", "build-features"] in commands
    assert ["nightly", "--from", "train", "--date", "2026-11-24"] in commands
    for argv in commands:
        command = group.commands.get(argv[0])
        assert command is not None, f"workflow runs unknown command {argv}"
        try:
            command.make_context(argv[0], list(argv[1:]))
        except click.UsageError as exc:
            pytest.fail(f"workflow runs `pria-ml {' '.join(argv)}`: {exc.format_message()}")


def test_train_workflow_waits_for_the_machine_and_exits_with_its_code() -> None:
    text = (ROOT / ".github" / "workflows" / "train_adapters.yml").read_text()
    assert "deploy/fly/machine.py config" in text  # restart policy "no": tests/test_deploy.py
    assert "state=stopped" in text
    assert 'exit "$code"' in text
