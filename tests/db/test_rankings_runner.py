"""The rankings runner: one per cluster, refreshes soon after the database signals a
change (debounced), and a standby takes over when the active runner goes away."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import psycopg
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from indexer.metrics import Metrics
from indexer.rankings import LOCK_KEY, run_scheduler
from tests.db.test_schema import make_agent

REFRESHES = "amoca_indexer_rankings_refresh_seconds_count"


async def wait_until(condition: Callable[[], Any], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not met before the deadline"
        await asyncio.sleep(0.05)


def refreshes(registry: CollectorRegistry) -> float:
    return registry.get_sample_value(REFRESHES) or 0.0


async def test_one_runner_refreshes_on_change_and_a_standby_takes_over(db_url: str,
                                                                      conn: psycopg.Connection) -> None:
    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(db_url, autocommit=True)

    async def refreshed_by(registry: CollectorRegistry, at_least: float) -> bool:
        return refreshes(registry) >= at_least

    async def on_board(slug: str) -> bool:
        row = conn.execute("SELECT count(*) FROM leaderboard_rankings lr JOIN agents a ON a.id = lr.agent_id"
                           " WHERE a.agent_id = %s AND lr.domain_id = 5", (slug,)).fetchone()
        return row == (4,)  # one row per period on the Design board

    first_registry, second_registry = CollectorRegistry(), CollectorRegistry()
    # interval of an hour: any refresh after the first one is the change signal's doing
    options: dict[str, Any] = {"interval": 3600.0, "quiet": 0.2, "max_delay": 1.0, "standby_retry": 0.1}
    first = asyncio.create_task(run_scheduler(connect, Metrics(first_registry), **options))
    second: asyncio.Task[None] | None = None
    try:
        await wait_until(lambda: refreshed_by(first_registry, 1))  # the refresh on taking the lock
        second = asyncio.create_task(run_scheduler(connect, Metrics(second_registry), **options))
        # A burst of writes: an agent, then its domain, then its stats (several statements).
        agent = make_agent(conn, 7)
        conn.execute("INSERT INTO agent_domains (agent_id, domain_id) VALUES (%s, 5)", (agent,))
        conn.execute("INSERT INTO reviews (agent_id, rating) VALUES (%s, 5)", (agent,))
        await wait_until(lambda: on_board("agent-7"))
        holders = conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
                               " AND database = (SELECT oid FROM pg_database"
                               "                 WHERE datname = current_database())"
                               " AND ((classid::bigint << 32) | objid::bigint) = %s", (LOCK_KEY,)).fetchone()
        assert holders == (1,)
        assert refreshes(second_registry) == 0  # the standby never ran while the lock was held
        # The active runner goes away; the standby takes the lock and refreshes at once.
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first
        await wait_until(lambda: refreshed_by(second_registry, 1))
        # ... and it, too, follows changes.
        conn.execute("DELETE FROM agent_domains WHERE agent_id = %s", (agent,))

        async def left_board() -> bool:
            return not await on_board("agent-7") and conn.execute(
                "SELECT count(*) FROM leaderboard_rankings WHERE domain_id = 5").fetchone() == (0,)

        await wait_until(left_board)
        assert first_registry.get_sample_value("amoca_indexer_rankings_last_success_timestamp_seconds")
    finally:
        for task in (first, second):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def test_runner_survives_a_failing_refresh_and_recovers(db_url: str, conn: psycopg.Connection) -> None:
    """A refresh that errors (here: the function is briefly broken) is logged and retried."""
    registry = CollectorRegistry()

    async def connect() -> psycopg.AsyncConnection[Any]:
        return await psycopg.AsyncConnection.connect(db_url, autocommit=True)

    conn.execute("ALTER FUNCTION update_leaderboard_rankings(text) RENAME TO update_leaderboard_rankings_off")
    with capture_logs() as logs:
        task = asyncio.create_task(run_scheduler(connect, Metrics(registry), interval=3600.0, quiet=0.1,
                                                 max_delay=0.5, standby_retry=0.1))
        try:
            async def failed_twice() -> bool:  # retried, not given up
                return sum(e["event"] == "rankings_refresh_failed" for e in logs) >= 2

            await wait_until(failed_twice)
            assert refreshes(registry) == 0
            conn.execute("ALTER FUNCTION update_leaderboard_rankings_off(text)"
                         " RENAME TO update_leaderboard_rankings")

            async def refreshed() -> bool:
                return refreshes(registry) >= 1

            await wait_until(refreshed)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    failure = next(e for e in logs if e["event"] == "rankings_refresh_failed")
    assert "update_leaderboard_rankings" in failure["error"]


async def test_the_runner_vacuums_the_board_it_rewrote(db_url: str, conn: psycopg.Connection) -> None:
    """A refresh rewrites most of the board; the runner vacuums it after each refresh when
    its role may (here: the owner), so dead rows do not pile up between autovacuum visits."""
    make_agent(conn, 1)
    conn.commit()
    registry = CollectorRegistry()
    task = asyncio.create_task(run_scheduler(
        lambda: psycopg.AsyncConnection.connect(db_url), Metrics(registry), interval=3600.0))

    async def vacuumed() -> bool:
        row = conn.execute("SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables"
                           " WHERE relname = 'leaderboard_rankings'").fetchone()
        conn.rollback()  # a fresh statistics snapshot next time
        return bool(row and row[0])

    try:
        with capture_logs() as logs:
            # The runner logs the refresh after its VACUUM: wait for both, or the statistics
            # can show the vacuum before the log line exists (seen on a slow machine).
            async def refreshed_and_vacuumed() -> bool:
                return any(e["event"] == "rankings_refreshed" for e in logs) and await vacuumed()

            await wait_until(refreshed_and_vacuumed)
        refreshed = [e for e in logs if e["event"] == "rankings_refreshed"]
        assert refreshed[0]["vacuum_seconds"] is not None
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
