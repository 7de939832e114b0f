"""Versioned SQL migrations: ``sql/migrations/NNNN_name.sql``, applied once each, in order.

Each file runs in its own transaction together with its row in ``schema_migrations`` (version,
name, sha256 of the file), so a failed migration leaves nothing behind. A session-level advisory
lock serialises concurrent migrators. Editing a file after it was applied is an error: write a
new migration instead.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from pria_ml.db import Database, connection_failed
from pria_ml.db.sqlfiles import sql_dir
from pria_ml.errors import MigrationError

_FILENAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant works; it only has to be the same for every pria-ml process.
_LOCK_KEY = 0x5052_4941  # "PRIA"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def discover(directory: Path | None = None) -> list[Migration]:
    """The migration files in version order; a malformed or duplicated name is an error."""
    directory = directory or sql_dir() / "migrations"
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILENAME.match(path.name)
        if not match:
            raise MigrationError(
                f"{path} is not named NNNN_lower_snake_name.sql; rename it so its order is explicit"
            )
        version = int(match.group(1))
        if version in found:
            raise MigrationError(
                f"{path.name} and {found[version].path.name} share version {version:04d}"
            )
        found[version] = Migration(version, match.group(2), path)
    return [found[v] for v in sorted(found)]


_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def migrate(db: Database, directory: Path | None = None) -> list[Migration]:
    """Apply every pending migration to ``db``; return the ones applied (empty when current).

    Raises MigrationError when an applied file changed or disappeared, or a migration fails
    (that migration is rolled back; earlier ones stay applied). A lost connection is retried
    from the start (``Database.retry``): each migration commits with its history row, so a
    rerun skips what was applied, also when the answer to a COMMIT was lost.
    """
    migrations = discover(directory)
    return db.retry(lambda: _apply(db, migrations), what="migrating", idempotent=True)


def _apply(db: Database, migrations: list[Migration]) -> list[Migration]:
    import psycopg

    applied: list[Migration] = []
    with db.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_CREATE_HISTORY)
            history = _check_history(conn, migrations)
            for migration in migrations:
                if migration.version in history:
                    continue
                try:
                    with conn.transaction():
                        conn.execute(migration.path.read_text(encoding="utf-8"))
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum)"
                            " VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    if connection_failed(exc):
                        raise  # retried by migrate()
                    raise MigrationError(
                        f"migration {migration.path.name} failed and was rolled back: {exc}"
                    ) from exc
                applied.append(migration)
        finally:
            if not conn.broken:  # a lost session released its lock with it
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied


def pending(db: Database, directory: Path | None = None) -> list[Migration]:
    """Migrations not yet applied to ``db`` (after checking the applied ones are unchanged)."""
    migrations = discover(directory)

    def read(conn) -> list[Migration]:
        exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if exists is None or exists[0] is None:
            return migrations
        history = _check_history(conn, migrations)
        return [m for m in migrations if m.version not in history]

    return db.transaction(read, what="reading the migration history", idempotent=True)


def _check_history(conn, migrations: list[Migration]) -> dict[int, str]:
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    by_version = {m.version: m for m in migrations}
    history = {}
    for version, name, checksum in rows:
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version:04d}_{name}.sql was applied but is missing from "
                f"{sql_dir() / 'migrations'}; restore the file (migrations are never deleted)"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.path.name} was edited after it was applied (sha256 {checksum[:12]} "
                f"in the database, {migration.checksum[:12]} on disk); revert the edit and put "
                "the change in a new migration"
            )
        history[version] = checksum
    return history


def ensure_current(db: Database) -> None:
    """Make sure ``db`` has every migration: applied automatically on the embedded server,
    an error naming the fix on a configured one (production migrates as a deliberate step)."""
    if db.embedded:
        migrate(db)
        return
    missing = pending(db)
    if missing:
        names = ", ".join(m.path.name for m in missing)
        raise MigrationError(f"{db.describe()} lacks migrations {names}: run `pria-ml db migrate`")
