"""Production fails closed: a production database without every other production setting stops
every command before it does anything, naming all that is missing; `pria-ml status` says the
mode and what is missing; the laptop, the demo and the tests keep their embedded defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer.main
from pydantic import SecretStr

from pria_ml import db
from pria_ml.cli import app
from pria_ml.errors import ConfigError
from pria_ml.settings import PRODUCTION_REQUIRED, Settings
from pria_ml.simulation.demo import demo_settings

PRODUCTION_DB = "postgresql://pria:s3cret@127.0.0.1:1/pria"  # nothing listens: never reached
ALL_MISSING = [f"PRIA_{name.upper()}" for name in PRODUCTION_REQUIRED]
# Commands that report instead of refusing (status) or never touch production (demo).
NOT_REFUSED = {"status", "demo"}


def _pria_ml(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    return subprocess.run(
        [sys.executable, "-m", "pria_ml", *args],
        env={**clean, "PRIA_HOME": str(cwd / "home"), "COLUMNS": "250", **env},
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _argv_of_every_command() -> list[list[str]]:
    """One valid command line per command: required options and arguments filled in."""
    lines = []

    def walk(command, prefix: list[str]) -> None:
        if hasattr(command, "commands"):  # a group (typer may carry its own click)
            if getattr(command, "invoke_without_command", False):
                lines.append(prefix)
            for name, sub in command.commands.items():
                walk(sub, [*prefix, name])
            return
        argv = list(prefix)
        for param in command.params:
            if param.required:
                value = "2026-11-24" if "date" in param.name else "x"
                option = param.param_type_name == "option"
                argv += [param.opts[0], value] if option else [value]
        lines.append(argv)

    walk(typer.main.get_command(app), [])
    return [argv for argv in lines if argv and argv[0] not in NOT_REFUSED]


def test_every_command_refuses_before_any_work(tmp_path: Path) -> None:
    """In-process, every command of the CLI: exit 2, every missing setting named; the database
    URL points at a closed port, so a command that reached for it first would exit 3."""
    from pria_ml.cli import main

    env = {"PRIA_DATABASE_URL": PRODUCTION_DB, "PRIA_HOME": str(tmp_path / "home")}
    commands = _argv_of_every_command()
    assert {"train", "nightly", "extract", "rollback", "promote"} <= {a[0] for a in commands}
    for argv in commands:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            with pytest.raises(SystemExit) as exited:
                main(argv)
        assert exited.value.code == ConfigError.exit_code, argv
    assert not (tmp_path / "home").exists(), "nothing may be created before the check"


def test_the_refusal_names_every_missing_setting(tmp_path: Path) -> None:
    result = _pria_ml("history", cwd=tmp_path, PRIA_DATABASE_URL=PRODUCTION_DB)
    assert result.returncode == 2, result.stderr
    for name in ALL_MISSING[1:]:  # the database URL is set
        assert name in result.stderr
    assert "PRIA_DATABASE_URL" not in result.stderr.split("needs")[1].split(":")[0]
    assert "s3cret" not in result.stderr


def test_status_says_the_mode_and_what_is_missing(tmp_path: Path) -> None:
    result = _pria_ml("status", cwd=tmp_path, PRIA_MODE="production", PRIA_PII_KEY="k")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "production" in result.stdout
    for name in ALL_MISSING:
        if name != "PRIA_PII_KEY":
            assert name in result.stdout
    # No embedded server was started to stand in for the missing database.
    assert not (tmp_path / "home" / "pg").exists()


def test_local_mode_keeps_the_embedded_defaults() -> None:
    assert Settings().deployment == "local"
    assert Settings().missing_for_production() == []
    # The embedded server (and the test suite's) is reached through a local socket.
    socket_url = SecretStr("postgresql://postgres:@/pria?host=/tmp/pria-pg")
    assert Settings(database_url=socket_url).deployment == "local"
    # Any server reached over TCP is production, a tunnel on loopback included...
    assert Settings(database_url=SecretStr(PRODUCTION_DB)).deployment == "production"
    # ...unless local mode is asked for explicitly.
    assert Settings(mode="local", database_url=SecretStr(PRODUCTION_DB)).deployment == "local"


def test_an_explicit_local_storage_url_counts_and_the_default_does_not() -> None:
    settings = Settings(mode="production", storage_url="file:///data/pria/storage")
    assert "PRIA_STORAGE_URL" not in settings.missing_for_production()
    assert "PRIA_STORAGE_URL" in Settings(mode="production").missing_for_production()


def test_production_never_falls_back_to_an_embedded_database(tmp_path: Path) -> None:
    settings = Settings(mode="production", home=tmp_path, database_url=SecretStr(PRODUCTION_DB))
    with pytest.raises(ConfigError, match="PRIA_SOURCE_DATABASE_URL is not set"):
        db.database(settings, "source")
    assert not (tmp_path / "pg").exists()


def test_the_demo_runs_locally_whatever_mode_its_caller_is_in(tmp_path: Path) -> None:
    caller = Settings(mode="production", home=tmp_path, database_url=SecretStr(PRODUCTION_DB))
    demo = demo_settings(caller, str(tmp_path / "tiny"))
    assert demo.deployment == "local" and demo.missing_for_production() == []
