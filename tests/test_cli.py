"""The CLI as an operator meets it: a real ``pria-ml`` process, real exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from pria_ml.db import Database
from pria_ml.settings import Settings


def pria_ml(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    import os

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    # Wide enough that rich never wraps a table cell across lines in what we assert on.
    full_env["COLUMNS"] = "250"
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "pria_ml", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=120,
    )


def test_version_and_help() -> None:
    assert pria_ml("--version").stdout.strip().startswith("pria-ml ")
    result = pria_ml("--help")
    assert result.returncode == 0
    for command in ("status", "db"):
        assert command in result.stdout


def test_help_texts_keep_every_path_they_name() -> None:
    # rich drops an angle-bracketed word such as "<home>" from help text as if it were markup
    for args, path in [
        (("demo", "--help"), "PRIA_HOME/demo"),
        (("demo", "--help"), "PRIA_HOME/reports"),
        (("model", "build-tiny", "--help"), "PRIA_HOME/models"),
        (("report", "--help"), "PRIA_HOME/reports/report-TIME.html"),
    ]:
        assert path in pria_ml(*args).stdout, args


def test_migrate_then_status_on_embedded_defaults(tmp_path: Path, settings: Settings) -> None:
    env = {
        "PRIA_HOME": str(settings.home),
        "PRIA_DATABASE_URL": settings.database_url.get_secret_value(),
    }
    first = pria_ml("db", "migrate", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "applied" in first.stdout
    again = pria_ml("db", "migrate", env=env, cwd=tmp_path)
    assert again.returncode == 0 and "0 new" in again.stdout
    status = pria_ml("status", env=env, cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "schema current" in status.stdout
    assert "storage" in status.stdout


def test_status_with_unreachable_database_names_the_setting(tmp_path: Path) -> None:
    env = {
        "PRIA_HOME": str(tmp_path),
        "PRIA_DATABASE_URL": "postgresql://pria:s3cret@127.0.0.1:1/pria",
        "PRIA_MODE": "local",  # a TCP database is production otherwise: test_production_mode
    }
    result = pria_ml("status", env=env, cwd=tmp_path)
    assert result.returncode == 3
    assert "PRIA_DATABASE_URL" in result.stderr
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stdout + result.stderr


def test_invalid_setting_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = pria_ml("status", env={"PRIA_NIGHTLY_BUDGET_USD": "-5"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "PRIA_NIGHTLY_BUDGET_USD" in result.stderr
    assert "Traceback" not in result.stderr


def test_edited_migration_fails_migrate_with_exit_4(fresh_db: Database, tmp_path: Path) -> None:
    from pria_ml.db.migrate import migrate

    migrate(fresh_db)
    with fresh_db.connect() as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    result = pria_ml("db", "migrate", env={"PRIA_DATABASE_URL": fresh_db.url}, cwd=tmp_path)
    assert result.returncode == 4
    assert "edited after it was applied" in result.stderr


@pytest.mark.parametrize("args", [["nonsense"], ["status", "--bogus"]])
def test_usage_errors_exit_2(args: list[str], tmp_path: Path) -> None:
    assert pria_ml(*args, cwd=tmp_path).returncode == 2
