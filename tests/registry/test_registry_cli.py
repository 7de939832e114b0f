"""`pria-ml promote / rollback / history / archive` as the on-call engineer runs them."""

from __future__ import annotations

import os
import subprocess
import sys

from hookkit import SECRET, Hook

from pria_ml.db import Database
from pria_ml.registry import current_prod, history

HEAVY = ("torch", "transformers", "pyspark", "pandas", "peft", "lm_eval", "pyarrow")


def pria_ml(db: Database, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env.update(extra)
    env["PRIA_DATABASE_URL"] = db.url
    env["PRIA_DB_RETRY_DEADLINE_S"] = "1"  # a database that is down in a test stays down
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "pria_ml", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def hook_env(hook: Hook) -> dict[str, str]:
    return {
        "PRIA_ENDPOINT_ROTATION_URL": hook.url,
        "PRIA_ENDPOINT_ROTATION_SECRET": SECRET.decode(),
    }


def test_promote_twice_then_rollback_restores_previous_adapter(
    registry_db: Database, candidate, hook_server: Hook
) -> None:
    first, second = candidate(), candidate()
    for adapter in (first, second):
        result = pria_ml(registry_db, "promote", str(adapter))
        assert result.returncode == 0, result.stderr
        assert f"{adapter} is prod" in result.stdout
    assert current_prod(registry_db).adapter_id == second

    refused = pria_ml(registry_db, "rollback", "--reason", "3 a.m. page")
    assert refused.returncode == 2 and "PRIA_ENDPOINT_ROTATION_URL" in refused.stderr
    assert current_prod(registry_db).adapter_id == second  # a real database: nothing changed

    planned = pria_ml(registry_db, "rollback", "--dry-run", **hook_env(hook_server))
    assert planned.returncode == 0, planned.stderr
    assert (
        f"would roll back to {first}" in planned.stdout and "nothing was changed" in planned.stdout
    )
    assert current_prod(registry_db).adapter_id == second

    result = pria_ml(registry_db, "rollback", "--reason", "3 a.m. page", **hook_env(hook_server))
    assert result.returncode == 0, result.stderr
    assert f"{first} is prod (rollback" in result.stdout
    assert "MODEL_ENDPOINT rotated: acknowledged" in result.stdout
    assert current_prod(registry_db).adapter_id == first
    (rolled,) = [e for e in history(registry_db) if e.action == "rollback"]
    assert rolled.reason == "3 a.m. page"

    again = pria_ml(registry_db, "promote", str(first))
    assert again.returncode == 0 and "already prod; nothing changed" in again.stdout

    shown = pria_ml(registry_db, "history")
    assert shown.returncode == 0, shown.stderr
    assert f"prod: {first}" in shown.stdout
    assert "superseded" in shown.stdout and "rollback" in shown.stdout


def test_refusals_exit_7_with_one_red_line(
    registry_db: Database, candidate, hook_server: Hook
) -> None:
    failed = candidate(gate=False)
    result = pria_ml(registry_db, "promote", str(failed))
    assert result.returncode == 7
    assert "failed the gate" in result.stderr and "Traceback" not in result.stderr
    assert pria_ml(registry_db, "rollback", **hook_env(hook_server)).returncode == 7
    forced = pria_ml(registry_db, "promote", str(failed), "--force", "--reason", "approved")
    assert forced.returncode == 0, forced.stderr
    assert history(registry_db)[0].forced


def test_promote_by_date_and_archive(registry_db: Database, candidate) -> None:
    import datetime

    a = candidate(datetime.date(2026, 11, 1))
    b = candidate(datetime.date(2026, 11, 2))
    assert pria_ml(registry_db, "promote", "--date", "2026-11-01").returncode == 0
    assert pria_ml(registry_db, "promote", "--date", "2026-11-02").returncode == 0
    kept = pria_ml(registry_db, "archive")
    assert kept.returncode == 0 and "0 adapters archived" in kept.stdout
    archived = pria_ml(registry_db, "archive", "--older-than-days", "0")
    assert archived.returncode == 0 and f"archived {a}" in archived.stdout
    assert current_prod(registry_db).adapter_id == b


def test_database_down_exits_3() -> None:
    down = Database(role="registry", url="postgresql://pria@127.0.0.1:9/pria", embedded=False)
    # local mode: a TCP URL alone would be production, which first asks for its other settings
    result = pria_ml(
        down,
        "rollback",
        PRIA_MODE="local",
        PRIA_ENDPOINT_ROTATION_URL="http://127.0.0.1:9/rotate",
        PRIA_ENDPOINT_ROTATION_SECRET="s",
    )
    assert result.returncode == 3
    assert "cannot connect to the registry database" in result.stderr
    assert "Traceback" not in result.stderr


def test_rollback_imports_nothing_heavy(registry_db: Database) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIA_")}
    env["PRIA_DATABASE_URL"] = registry_db.url
    code = (
        "import sys\n"
        "from pria_ml.cli import main\n"
        "try:\n    main(['rollback'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr
