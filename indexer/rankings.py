"""The rankings job: `update_leaderboard_rankings()` on a schedule, one runner cluster-wide.

Every replica runs this loop; only the one holding the PostgreSQL advisory lock
(session-level, on a connection kept for that purpose) refreshes. When that replica
dies its connection closes, the lock is released, and another replica's next attempt
takes it over. ``refresh_now`` is what `amoca-indexer rank` calls.
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
from indexer.errors import DatabaseUnavailable
from indexer.metrics import Metrics

LOCK_KEY = int.from_bytes(hashlib.sha256(b"amoca-indexer:rankings").digest()[:8], "big", signed=True)
log = structlog.get_logger(__name__)


async def refresh_now(conn: psycopg.AsyncConnection[Any], metrics: Metrics | None = None) -> float:
    """Run one refresh; returns its duration in seconds."""
    started = time.monotonic()
    try:
        await conn.execute("SELECT update_leaderboard_rankings()")
        if not conn.autocommit:
            await conn.commit()
    except psycopg.Error as exc:
        raise translate(exc) from exc
    elapsed = time.monotonic() - started
    if metrics is not None:
        metrics.rankings_seconds.observe(elapsed)
        metrics.rankings_last_success.set(time.time())
    return elapsed


async def run_scheduler(
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    metrics: Metrics,
    *,
    interval: float = 60.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Refresh every ``interval`` seconds while holding the cluster-wide lock; forever."""
    while True:
        try:
            conn = await connect()
        except (DatabaseUnavailable, psycopg.OperationalError, OSError) as exc:
            log.warning("rankings_connect_failed", error=str(exc))
            await sleep(interval)
            continue
        try:
            await conn.set_autocommit(True)
            held = False  # session-level and re-entrant: take it once per connection
            while True:
                if not held:
                    cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
                    row = await cur.fetchone()
                    held = bool(row and row[0])
                if held:
                    elapsed = await refresh_now(conn, metrics)
                    log.info("rankings_refreshed", seconds=round(elapsed, 3))
                await sleep(interval)
        except (DatabaseUnavailable, psycopg.OperationalError) as exc:
            log.warning("rankings_refresh_failed", error=str(exc))
            await sleep(min(interval, 5.0))
        finally:
            await conn.close()
