"""The rankings job: `update_leaderboard_rankings()` on a schedule and soon after stats
change, one runner cluster-wide.

Every replica runs :func:`run_scheduler`; only the one holding the PostgreSQL advisory
lock (session-level, on a connection kept for that purpose) refreshes. When that replica
dies its connection closes, the lock is released, and another replica's next attempt
(every ``standby_retry`` seconds) takes it over.

The runner LISTENs on ``amoca_stats_changed`` on that same connection: the database
signals it after every statement that changes tasks, reviews, transactions, agents or
domain memberships (sql/0006). When the refresh is due is decided by the pure
:mod:`indexer.debounce`. Signals that arrive during a refresh wait in the connection's
backlog and schedule the next one, so no change is missed.

``refresh_now`` is what `amoca-indexer rank` and the runner call.

A refresh rewrites most of the board (one payment shifts percentiles and ranks across
whole boards), and a rank change is never a HOT update: every refresh leaves ~one board of
dead rows and index entries. Autovacuum comes about once a minute; refreshes can come
every ~20 s, and each one is slower on a bloated board (1.6 s on a clean board, 2.0-2.2 s
after a few refreshes, at 10,000 agents). So the runner vacuums the board after each
refresh (``vacuum_board``) when its role may: the table's owner or a superuser, or on
PostgreSQL 17+ a role granted MAINTAIN (sql/0014 grants it to amoca_indexer). Otherwise
autovacuum alone keeps it.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import structlog

from indexer.db.connection import translate
from indexer.debounce import RefreshPolicy, RefreshState, due_at
from indexer.errors import DatabaseUnavailable, IndexerError
from indexer.metrics import Metrics

LOCK_KEY = int.from_bytes(hashlib.sha256(b"amoca-indexer:rankings").digest()[:8], "big", signed=True)
CHANNEL = "amoca_stats_changed"
PERIODS = ("daily", "weekly", "monthly", "all_time")
log = structlog.get_logger(__name__)


async def refresh_now(conn: psycopg.AsyncConnection[Any], metrics: Metrics | None = None,
                      period: str | None = None) -> float:
    """Run one refresh (every period, or one); returns its duration in seconds."""
    if period is not None and period not in PERIODS:
        raise ValueError(f"unknown leaderboard period {period!r}")
    started = time.monotonic()
    try:
        await conn.execute("SELECT update_leaderboard_rankings(%s)", (period,))
        if not conn.autocommit:
            await conn.commit()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    elapsed = time.monotonic() - started
    if metrics is not None:
        metrics.rankings_seconds.observe(elapsed)
        metrics.rankings_last_success.set(time.time())
    return elapsed


MAY_VACUUM_BOARD = """
SELECT r.rolsuper OR pg_has_role(current_user, c.relowner, 'USAGE')
       OR CASE WHEN current_setting('server_version_num')::int >= 170000
               THEN has_table_privilege('leaderboard_rankings', 'MAINTAIN') ELSE false END
FROM pg_class c, pg_roles r
WHERE c.oid = 'leaderboard_rankings'::regclass AND r.rolname = current_user
"""
# SKIP_LOCKED: a vacuum already running (autovacuum) is left to finish it.
VACUUM_BOARD = "VACUUM (SKIP_LOCKED) leaderboard_rankings"


async def may_vacuum_board(conn: psycopg.AsyncConnection[Any]) -> bool:
    """Whether this session may VACUUM leaderboard_rankings (without it, VACUUM only warns)."""
    try:
        row = await (await conn.execute(MAY_VACUUM_BOARD)).fetchone()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return bool(row and row[0])


async def vacuum_board(conn: psycopg.AsyncConnection[Any]) -> float:
    """VACUUM leaderboard_rankings on ``conn`` (autocommit); returns its duration in seconds."""
    started = time.monotonic()
    try:
        await conn.execute(VACUUM_BOARD)
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return time.monotonic() - started


async def run_scheduler(
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    metrics: Metrics,
    *,
    interval: float = 60.0,
    quiet: float = 2.0,
    max_delay: float = 30.0,
    max_share: float = 0.1,
    standby_retry: float | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Refresh while holding the cluster-wide lock, as :mod:`indexer.debounce` decides; forever.

    ``standby_retry`` (default: ``interval``) is how often a replica without the lock
    tries to take it. ``max_share`` (0..1] of one database backend's time is the most the
    refreshes may take.
    """
    policy = RefreshPolicy(interval=interval, quiet=min(quiet, max_delay), max_delay=max_delay,
                           idle_ratio=(1 - max_share) / max_share)
    retry = interval if standby_retry is None else standby_retry
    while True:
        try:
            conn = await connect()
        except (DatabaseUnavailable, psycopg.OperationalError, OSError) as exc:
            log.warning("rankings_connect_failed", error=str(exc))
            await sleep(retry)
            continue
        try:
            await conn.set_autocommit(True)
            while not await _try_lock(conn):
                await sleep(retry)
            log.info("rankings_runner_active")
            await conn.execute(f"LISTEN {CHANNEL}")
            await _run_active(conn, metrics, policy, clock)
        except IndexerError as exc:  # a failed refresh must not stop the daemon; retry later
            log.warning("rankings_refresh_failed", error=str(exc))
            await sleep(min(retry, 5.0))
        except psycopg.Error as exc:
            log.warning("rankings_connection_lost", error=str(exc))
            await sleep(min(retry, 5.0))
        finally:
            await conn.close()  # releases the lock: a standby takes over


async def _try_lock(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
    row = await cur.fetchone()
    return bool(row and row[0])


async def _run_active(conn: psycopg.AsyncConnection[Any], metrics: Metrics, policy: RefreshPolicy,
                      clock: Callable[[], float]) -> None:
    state = RefreshState()
    vacuums = await may_vacuum_board(conn)
    if not vacuums:
        log.info("rankings_board_vacuum_left_to_autovacuum",
                 reason="this role may not VACUUM leaderboard_rankings")
    while True:
        now = clock()
        due = due_at(policy, state)
        if now >= due:
            reason = "start" if state.last_refresh is None else (
                "changed" if state.last_change is not None else "schedule")
            elapsed = await refresh_now(conn, metrics)
            vacuumed = await vacuum_board(conn) if vacuums else None
            # The vacuum counts as the refresh's cost: the idle ratio spaces both.
            state = state.refreshed(now, elapsed + (vacuumed or 0.0))
            log.info("rankings_refreshed", seconds=round(elapsed, 3), reason=reason,
                     vacuum_seconds=None if vacuumed is None else round(vacuumed, 3))
            continue
        # Wait for a change signal, at most until the refresh is due.
        async for _ in conn.notifies(timeout=due - now, stop_after=1):
            state = state.changed(clock())
