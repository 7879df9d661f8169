"""The migration runner: plain SQL files in `sql/`, applied in order, once.

Why hand-written: the migration libraries that take plain SQL files (yoyo, dbmate,
sqitch...) either bring a second database driver, keep no checksums, or need a binary
from outside PyPI. What we need is small: files named `NNNN_name.sql`, each applied in
its own transaction, recorded with a SHA-256 checksum, under a PostgreSQL advisory
lock so two concurrent runs are safe, refusing to continue when an applied file changed.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from indexer.errors import MigrationError

# pg_advisory_lock key: the first 8 bytes of sha256("amoca-indexer:migrations").
LOCK_KEY = int.from_bytes(hashlib.sha256(b"amoca-indexer:migrations").digest()[:8], "big", signed=True)
_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    checksum    CHAR(64) NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms INTEGER NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def filename(self) -> str:
        return self.path.name

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Plan:
    applied: tuple[Migration, ...]
    pending: tuple[Migration, ...]


def default_sql_dir() -> Path:
    """`sql/` beside the package (a checkout or editable install), or AMOCA_SQL_DIR."""
    override = os.environ.get("AMOCA_SQL_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "sql"


def discover(sql_dir: Path) -> tuple[Migration, ...]:
    """Every migration file, ordered; a misnamed or duplicated version is an error."""
    if not sql_dir.is_dir():
        raise MigrationError(f"migrations folder not found: {sql_dir}")
    found: dict[int, Migration] = {}
    for path in sorted(sql_dir.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"{path.name}: migration files are named NNNN_snake_name.sql")
        version = int(match["version"])
        if version in found:
            raise MigrationError(f"{path.name}: version {version} also used by {found[version].filename}")
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        found[version] = Migration(version, match["name"], path, checksum)
    return tuple(found[v] for v in sorted(found))


def _applied(conn: psycopg.Connection) -> dict[int, str]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(version): str(checksum).strip() for version, checksum in rows}


def plan(conn: psycopg.Connection, migrations: tuple[Migration, ...]) -> Plan:
    """Split into applied and pending; refuse when an applied file changed or vanished."""
    applied = _applied(conn)
    by_version = {m.version: m for m in migrations}
    for version, checksum in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(f"migration {version:04d} is applied but its file is missing")
        if migration.checksum != checksum:
            raise MigrationError(
                f"{migration.filename} changed after it was applied "
                f"(checksum {checksum[:12]} in the database, {migration.checksum[:12]} on disk); "
                "add a new migration instead of editing an applied one"
            )
    pending = tuple(m for m in migrations if m.version not in applied)
    if pending and applied and min(m.version for m in pending) < max(applied):
        late = min(pending, key=lambda m: m.version)
        raise MigrationError(f"{late.filename} is older than the newest applied migration")
    return Plan(applied=tuple(m for m in migrations if m.version in applied), pending=pending)


def migrate(conn: psycopg.Connection, sql_dir: Path | None = None, *, dry_run: bool = False) -> Plan:
    """Apply every pending migration (or, with ``dry_run``, only say which would be).

    ``conn`` must be in autocommit mode: each migration gets its own transaction, and
    the advisory lock is held for the whole run.
    """
    if not conn.autocommit:
        raise MigrationError("migrate() needs an autocommit connection")
    migrations = discover(sql_dir or default_sql_dir())
    if dry_run:
        return plan(conn, migrations)
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    try:
        conn.execute(_CREATE_TABLE)
        current = plan(conn, migrations)  # re-read under the lock: another run may have won
        for migration in current.pending:
            _apply(conn, migration)
        return current
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


# A migration that sets lock_timeout gives up rather than queue every reader behind the
# ACCESS EXCLUSIVE lock it waits for (a long transaction holds the table); it is retried,
# whole, a few times before the run fails.
LOCK_RETRIES = 5
_sleep = time.sleep  # tests replace it


def _apply(conn: psycopg.Connection, migration: Migration) -> None:
    for attempt in range(LOCK_RETRIES + 1):
        started = time.monotonic()
        try:
            with conn.transaction():
                conn.execute(migration.sql().encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum, duration_ms)"
                    " VALUES (%s, %s, %s, %s)",
                    (migration.version, migration.name, migration.checksum,
                     int((time.monotonic() - started) * 1000)),
                )
            return
        except psycopg.errors.LockNotAvailable as exc:
            if attempt == LOCK_RETRIES:
                raise MigrationError(f"{migration.filename} failed: {str(exc).strip()} "
                                     f"({LOCK_RETRIES + 1} attempts)") from None
            _sleep(min(8.0, 0.5 * 2 ** attempt))
        except psycopg.Error as exc:
            raise MigrationError(f"{migration.filename} failed: {str(exc).strip()}") from None
