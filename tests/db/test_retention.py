"""Data retention: tasks finished more than 2 years ago and messages older than 1 year go;
transactions and reviews stay forever (their task reference becomes NULL); open tasks stay."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from prometheus_client import CollectorRegistry

from indexer import retention
from indexer.metrics import Metrics
from tests.db.test_schema import make_agent, make_user, signature


def ago(what: str) -> str:
    return f"timezone('utc', now()) - interval '{what}'"


def add_task(conn: psycopg.Connection, agent: Any, user: Any, status: str, *, started: str = "NULL",
             completed: str = "NULL", updated: str | None = None) -> Any:
    """A task's id; its times are SQL expressions (``ago(...)``)."""
    row = conn.execute("INSERT INTO tasks (agent_id, user_id, title, description, status, started_at,"
                       f" completed_at) VALUES (%s, %s, 't', 'd', %s, {started}, {completed}) RETURNING id",
                       (agent, user, status)).fetchone()
    assert row is not None
    if updated is not None:  # the updated_at trigger sets now(); backdate without it
        conn.execute("ALTER TABLE tasks DISABLE TRIGGER tasks_updated_at")
        conn.execute(f"UPDATE tasks SET updated_at = {updated} WHERE id = %s", (row[0],))
        conn.execute("ALTER TABLE tasks ENABLE TRIGGER tasks_updated_at")
    return row[0]


@pytest.fixture
def old_and_new(conn: psycopg.Connection) -> dict[str, Any]:
    agent, user = make_agent(conn, 1), make_user(conn, 1)

    def task(status: str, completed: str = "NULL", updated: str | None = None) -> Any:
        return add_task(conn, agent, user, status, completed=completed, updated=updated)

    tasks = {
        "old_completed": task("completed", ago("2 years 1 day"), ago("2 years 1 day")),
        "old_failed": task("failed", ago("3 years"), ago("3 years")),
        "old_cancelled": task("cancelled", updated=ago("2 years 2 days")),  # no completed_at
        "recent_completed": task("completed", ago("700 days"), ago("700 days")),
        "old_but_touched": task("completed", updated=ago("1 day")),  # last activity recent
        "old_open": task("in_progress", updated=ago("5 years")),      # open tasks never expire
        "old_pending": task("pending", updated=ago("5 years")),
    }
    conn.execute("INSERT INTO reviews (agent_id, user_id, task_id, rating, created_at)"
                 f" VALUES (%s, %s, %s, 5, {ago('3 years')})", (agent, user, tasks["old_completed"]))
    conn.execute("INSERT INTO transactions (agent_id, user_id, transaction_signature, amount,"
                 " transaction_type, status, created_at, task_id) VALUES (%s, %s, %s, 2, 'payment',"
                 f" 'confirmed', {ago('3 years')}, %s)", (agent, user, signature(1), tasks["old_completed"]))
    for i, age in enumerate(("1 year 1 day", "2 years", "364 days", "1 hour")):
        conn.execute("INSERT INTO messages (sender_user_id, recipient_agent_id, task_id, message_text,"
                     f" created_at) VALUES (%s, %s, %s, %s, {ago(age)})",
                     (user, agent, tasks["old_failed"] if i == 1 else None, f"m{i}"))
    return {"agent": agent, "tasks": tasks}


def remaining_tasks(conn: psycopg.Connection, tasks: dict[str, Any]) -> set[str]:
    ids = {row[0] for row in conn.execute("SELECT id FROM tasks").fetchall()}
    return {name for name, task_id in tasks.items() if task_id in ids}


async def run_prune(url: str, **kwargs: Any) -> dict[str, int] | None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
        return await retention.prune(aconn, **kwargs)


def test_prune_deletes_only_what_expired(db_url: str, conn: psycopg.Connection,
                                         old_and_new: dict[str, Any]) -> None:
    tasks = old_and_new["tasks"]
    registry = CollectorRegistry()
    deleted = asyncio.run(run_prune(db_url, batch_size=2, metrics=Metrics(registry)))  # several batches
    assert deleted == {"messages": 2, "tasks": 3}
    assert remaining_tasks(conn, tasks) == {"recent_completed", "old_but_touched", "old_open", "old_pending"}
    messages = [r[0] for r in conn.execute("SELECT message_text FROM messages ORDER BY 1").fetchall()]
    assert messages == ["m2", "m3"]
    # Kept forever, with the pruned task's reference cleared; the stats still count them.
    assert conn.execute("SELECT task_id, rating FROM reviews").fetchall() == [(None, 5)]
    assert conn.execute("SELECT task_id, amount FROM transactions").fetchall() == [(None, Decimal("2"))]
    stats = conn.execute("SELECT total_earnings, review_count, tasks_completed FROM agent_stats").fetchone()
    assert stats == (Decimal("2"), 1, 3)  # the pruned completed task still counts (task_history)
    assert conn.execute("SELECT recompute_agent_stats()").fetchone() == (0,)
    assert registry.get_sample_value("amoca_indexer_retention_deleted_rows_total", {"table": "tasks"}) == 3
    assert registry.get_sample_value("amoca_indexer_retention_last_success_timestamp_seconds")
    # Nothing left to do the second time.
    assert asyncio.run(run_prune(db_url)) == {"messages": 0, "tasks": 0}


TASK_STATS = ("SELECT tasks_completed, tasks_failed, success_rate, avg_response_time_minutes, hire_count"
              " FROM agent_stats WHERE agent_id = %s")
BOARD = ("SELECT period, rank, score, total_agents_in_domain FROM leaderboard_rankings"
         " WHERE agent_id = %s AND domain_id IS NULL ORDER BY period")


def test_pruned_tasks_still_count_in_the_lifetime_stats_and_the_all_time_board(
        conn: psycopg.Connection) -> None:
    """Retention deletes the tasks; what they contributed stays in task_history, so the
    agent's lifetime figures and its all-time rank do not move. A task the marketplace
    deletes itself is gone from the stats, as before."""
    agent, rival, user = make_agent(conn, 1), make_agent(conn, 2), make_user(conn, 1)
    old, recent = ago("3 years"), ago("1 hour")
    # pruned: responses of 30 and 45 minutes, one failure, one cancellation; kept: 60 minutes
    add_task(conn, agent, user, "completed", started=ago("3 years 30 minutes"), completed=old, updated=old)
    add_task(conn, agent, user, "completed", started=ago("3 years 45 minutes"), completed=old, updated=old)
    add_task(conn, agent, user, "failed", completed=old, updated=old)
    add_task(conn, agent, user, "cancelled", updated=old)
    add_task(conn, agent, user, "completed", started=ago("2 hours"), completed=recent, updated=recent)
    for _ in range(2):
        add_task(conn, rival, user, "completed", completed=recent, updated=recent)
    before = conn.execute(TASK_STATS, (agent,)).fetchone()
    assert before == (3, 1, Decimal("75.00"), 45, 4)  # (30 + 45 + 60) / 3 minutes
    conn.execute("SELECT update_leaderboard_rankings()")
    board = conn.execute(BOARD, (agent,)).fetchall()
    assert [r[1] for r in board if r[0] == "all_time"] == [1]  # 3 completed against the rival's 2

    assert conn.execute("SELECT prune_expired_rows('tasks', 100)").fetchone() == (4,)
    assert conn.execute("SELECT count(*) FROM tasks WHERE agent_id = %s", (agent,)).fetchone() == (1,)
    assert conn.execute(TASK_STATS, (agent,)).fetchone() == before
    history = conn.execute("SELECT tasks_completed, tasks_failed, hires, response_minutes, responses,"
                           " tasks_pruned FROM task_history WHERE agent_id = %s", (agent,)).fetchone()
    assert history == (2, 1, 3, 75, 2, 4)
    assert conn.execute("SELECT recompute_agent_stats()").fetchone() == (0,)
    conn.execute("SELECT update_leaderboard_rankings()")
    assert conn.execute(BOARD, (agent,)).fetchall() == board

    conn.execute("DELETE FROM tasks WHERE agent_id = %s", (agent,))  # the marketplace's own delete
    assert conn.execute(TASK_STATS, (agent,)).fetchone() == (2, 1, Decimal("66.67"), 38, 3)
    assert conn.execute("SELECT recompute_agent_stats()").fetchone() == (0,)


def test_dry_run_counts_and_deletes_nothing(db_url: str, conn: psycopg.Connection,
                                            old_and_new: dict[str, Any]) -> None:
    done = subprocess.run([sys.executable, "-m", "indexer", "prune", "--dry-run", "--database-url", db_url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "messages  2 rows older than" in done.stdout
    assert "tasks     3 rows older than" in done.stdout
    assert "dry run: nothing deleted" in done.stdout
    assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (7,)
    assert conn.execute("SELECT count(*) FROM messages").fetchone() == (4,)
    done = subprocess.run([sys.executable, "-m", "indexer", "prune", "--database-url", db_url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "deleted 2 messages, 3 tasks" in done.stdout
    assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (4,)


def test_one_pruner_at_a_time(db_url: str, conn: psycopg.Connection, old_and_new: dict[str, Any]) -> None:
    with psycopg.connect(db_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (retention.LOCK_KEY,))
        assert asyncio.run(run_prune(db_url)) is None
        done = subprocess.run([sys.executable, "-m", "indexer", "prune", "--database-url", db_url],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 1
        assert done.stderr.strip().splitlines()[-1] == (
            "amoca-indexer: another prune is running (retention lock held); nothing deleted")
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (7,)
    assert asyncio.run(run_prune(db_url)) == {"messages": 2, "tasks": 3}


def test_the_indexer_role_prunes_only_through_the_functions(conn: psycopg.Connection,
                                                            old_and_new: dict[str, Any]) -> None:
    conn.execute("SET ROLE amoca_indexer")
    try:
        counts = conn.execute("SELECT table_name, expired FROM expired_row_counts()").fetchall()
        assert conn.execute("SELECT prune_expired_rows('tasks', 100)").fetchone() == (3,)
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="no retention rule"):
            conn.execute("SELECT prune_expired_rows('transactions', 100)")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM messages")
    finally:
        conn.execute("RESET ROLE")
    assert counts == [("messages", 2), ("tasks", 3)]


def test_bad_batch_size_is_a_usage_error(db_url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "indexer", "prune", "--batch-size", "0",
                           "--database-url", db_url], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "Invalid value for '--batch-size'" in done.stderr
    assert "Traceback" not in done.stderr
