import threading
from pathlib import Path

import pytest

from pria_ml.db import Database
from pria_ml.db.migrate import discover, ensure_current, migrate, pending
from pria_ml.errors import MigrationError


def _write(directory: Path, name: str, sql: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(sql)
    return path


def _tables(db: Database) -> set[str]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {row[0] for row in rows}


def test_migrations_apply_once_and_are_idempotent(fresh_db: Database, tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    _write(migrations, "0001_first.sql", "CREATE TABLE a (id int);")
    _write(migrations, "0002_second.sql", "CREATE TABLE b (id int); INSERT INTO b VALUES (1);")

    applied = migrate(fresh_db, migrations)
    assert [m.name for m in applied] == ["first", "second"]
    assert migrate(fresh_db, migrations) == []
    assert {"a", "b", "schema_migrations"} <= _tables(fresh_db)
    with fresh_db.connect() as conn:
        assert conn.execute("SELECT count(*) FROM b").fetchone() == (1,)
        history = conn.execute(
            "SELECT version, checksum FROM schema_migrations ORDER BY 1"
        ).fetchall()
    assert [(v, c) for v, c in history] == [(m.version, m.checksum) for m in discover(migrations)]


def test_edited_applied_migration_is_an_error(fresh_db: Database, tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    path = _write(migrations, "0001_first.sql", "CREATE TABLE a (id int);")
    migrate(fresh_db, migrations)
    path.write_text("CREATE TABLE a (id bigint);")
    with pytest.raises(MigrationError, match="0001_first.sql was edited after it was applied"):
        migrate(fresh_db, migrations)
    with pytest.raises(MigrationError, match="edited"):
        pending(fresh_db, migrations)


def test_deleted_applied_migration_is_an_error(fresh_db: Database, tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    path = _write(migrations, "0001_first.sql", "CREATE TABLE a (id int);")
    migrate(fresh_db, migrations)
    path.unlink()
    _write(migrations, "0002_second.sql", "CREATE TABLE b (id int);")
    with pytest.raises(MigrationError, match="0001_first.sql was applied but is missing"):
        migrate(fresh_db, migrations)


def test_failing_migration_is_rolled_back_whole(fresh_db: Database, tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    _write(migrations, "0001_ok.sql", "CREATE TABLE a (id int);")
    _write(migrations, "0002_broken.sql", "CREATE TABLE half (id int); SELECT * FROM nowhere;")
    with pytest.raises(MigrationError, match="0002_broken.sql failed and was rolled back"):
        migrate(fresh_db, migrations)
    assert "half" not in _tables(fresh_db)
    assert [m.name for m in pending(fresh_db, migrations)] == ["broken"]


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path / "m", "add_users.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lower_snake_name.sql"):
        discover(tmp_path / "m")


def test_concurrent_migrators_apply_each_file_once(fresh_db: Database, tmp_path: Path) -> None:
    migrations = tmp_path / "m"
    # Not idempotent on purpose: a second application would fail on the duplicate table.
    _write(migrations, "0001_first.sql", "CREATE TABLE a (id int); SELECT pg_sleep(0.2);")
    results: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            results.append(len(migrate(fresh_db, migrations)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [0, 0, 0, 1]


def test_project_migrations_apply_cleanly(fresh_db: Database) -> None:
    assert len(migrate(fresh_db)) == len(discover()) > 0
    assert pending(fresh_db) == []


def test_configured_database_with_pending_migrations_names_the_fix(fresh_db: Database) -> None:
    with pytest.raises(MigrationError, match="run `pria-ml db migrate`"):
        ensure_current(fresh_db)


def test_shipped_migrations_match_their_recorded_checksums() -> None:
    """A migration that reached any database is never edited: its bytes are pinned in
    sql/migrations.sha256 (one `sha256sum` line per file, added with the migration)."""
    from pria_ml.db.sqlfiles import sql_dir

    recorded = dict(
        reversed(line.split(maxsplit=1))
        for line in (sql_dir() / "migrations.sha256").read_text().splitlines()
        if line.strip()
    )
    shipped = {m.path.name: m.checksum for m in discover()}
    assert sorted(shipped) == sorted(recorded), "add new migrations to sql/migrations.sha256"
    edited = [name for name, checksum in shipped.items() if recorded[name] != checksum]
    assert not edited, f"applied migrations were edited: {edited}"
