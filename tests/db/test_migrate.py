"""The migration runner against a real server: order, idempotence, lock, checksums."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest

from indexer.db import migrations
from indexer.errors import MigrationError


def _write(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text(body, encoding="utf-8")


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "sql"
    folder.mkdir()
    _write(folder, "0001_first.sql", "CREATE TABLE first (id int PRIMARY KEY);\n"
                                     "INSERT INTO first VALUES (1);\n")
    _write(folder, "0002_second.sql", "CREATE TABLE second (id int PRIMARY KEY);\n"
                                      "SELECT pg_sleep(0.2);\n")
    return folder


def test_applies_in_order_then_nothing(empty_db_url: str, sql_dir: Path) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        first = migrations.migrate(conn, sql_dir)
        again = migrations.migrate(conn, sql_dir)
        versions = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [m.filename for m in first.pending] == ["0001_first.sql", "0002_second.sql"]
    assert again.pending == ()
    assert [v for (v,) in versions] == [1, 2]


def test_dry_run_changes_nothing(empty_db_url: str, sql_dir: Path) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        result = migrations.migrate(conn, sql_dir, dry_run=True)
        table = conn.execute("SELECT to_regclass('first')").fetchone()
    assert [m.version for m in result.pending] == [1, 2]
    assert table == (None,)


def test_changed_file_is_refused(empty_db_url: str, sql_dir: Path) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrations.migrate(conn, sql_dir)
        _write(sql_dir, "0001_first.sql", "CREATE TABLE first (id bigint PRIMARY KEY);\n")
        with pytest.raises(MigrationError, match=r"0001_first\.sql changed after it was applied"):
            migrations.migrate(conn, sql_dir)


def test_failed_migration_rolls_back_and_names_file(empty_db_url: str, sql_dir: Path) -> None:
    _write(sql_dir, "0003_broken.sql", "CREATE TABLE third (id int);\nSELECT * FROM missing;\n")
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        with pytest.raises(MigrationError, match=r"0003_broken\.sql failed"):
            migrations.migrate(conn, sql_dir)
        assert conn.execute("SELECT to_regclass('third')").fetchone() == (None,)
        applied = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    assert applied == (2,)


def test_misnamed_file_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "1_first.sql", "SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_snake_name"):
        migrations.discover(tmp_path)


def test_concurrent_runs_apply_each_migration_once(empty_db_url: str, sql_dir: Path) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def run() -> None:
        try:
            with psycopg.connect(empty_db_url, autocommit=True) as conn:
                start.wait(timeout=30)
                migrations.migrate(conn, sql_dir)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    with psycopg.connect(empty_db_url) as conn:
        rows = conn.execute("SELECT version, count(*) FROM schema_migrations GROUP BY version").fetchall()
    assert sorted(rows) == [(1, 1), (2, 1)]


def test_project_migrations_apply_to_an_empty_database(empty_db_url: str) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        result = migrations.migrate(conn)
        count = conn.execute("SELECT count(*) FROM schema_migrations").fetchone()
    assert result.pending, "sql/ holds no migrations"
    assert count == (len(result.pending),)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "indexer", *args], capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_cli_migrate_then_dry_run(empty_db_url: str, sql_dir: Path) -> None:
    applied = _cli("migrate", "--database-url", empty_db_url, "--sql-dir", str(sql_dir))
    assert applied.returncode == 0, applied.stderr
    assert "2 migration(s) applied" in applied.stdout
    shutil.copy(sql_dir / "0001_first.sql", sql_dir / "0003_third.sql")
    dry = _cli("migrate", "--database-url", empty_db_url, "--sql-dir", str(sql_dir), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "pending  0003_third.sql" in dry.stdout


def test_cli_unreachable_database_is_one_line_exit_2() -> None:
    result = _cli("migrate", "--database-url", "postgresql://amoca:s3cret-pw@127.0.0.1:1/amoca")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "database unavailable" in result.stderr
    assert "s3cret-pw" not in result.stderr
    assert "Traceback" not in result.stderr


def test_a_lock_timeout_is_retried_until_the_lock_is_free(empty_db_url: str, sql_dir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A migration that sets lock_timeout gives up instead of queueing readers behind it;
    the runner retries it, and it applies once the long transaction is gone."""
    sleeps: list[float] = []
    with psycopg.connect(empty_db_url) as holder, psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrations.migrate(conn, sql_dir)
        _write(sql_dir, "0003_alter.sql", "SET LOCAL lock_timeout = '200ms';\n"
                                          "ALTER TABLE first ADD COLUMN note text;\n")
        holder.execute("SELECT * FROM first")  # ACCESS SHARE until the holder's transaction ends

        def sleep_then_release(seconds: float) -> None:
            sleeps.append(seconds)
            holder.rollback()  # the long transaction ends while the runner backs off

        monkeypatch.setattr(migrations, "_sleep", sleep_then_release)
        applied = migrations.migrate(conn, sql_dir)
        columns = conn.execute("SELECT count(*) FROM information_schema.columns"
                               " WHERE table_name = 'first' AND column_name = 'note'").fetchone()
    assert [m.filename for m in applied.pending] == ["0003_alter.sql"]
    assert sleeps == [0.5]
    assert columns == (1,)

def test_a_lock_never_freed_fails_after_the_retries(empty_db_url: str, sql_dir: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with psycopg.connect(empty_db_url, autocommit=True) as conn:
        migrations.migrate(conn, sql_dir)
    _write(sql_dir, "0003_alter.sql", "SET LOCAL lock_timeout = '100ms';\n"
                                      "ALTER TABLE first ADD COLUMN note text;\n")
    monkeypatch.setattr(migrations, "LOCK_RETRIES", 2)
    monkeypatch.setattr(migrations, "_sleep", lambda seconds: None)
    with psycopg.connect(empty_db_url) as holder, psycopg.connect(empty_db_url, autocommit=True) as conn:
        holder.execute("SELECT * FROM first")
        with pytest.raises(MigrationError, match=r"0003_alter\.sql failed: .*lock timeout.*\(3 attempts\)"):
            migrations.migrate(conn, sql_dir)
