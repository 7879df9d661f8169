"""Data retention (seed: tasks 2 years, messages 1 year; transactions and reviews forever).

The rules live in SQL (sql/0006: ``retention_cutoffs()``, ``expired_row_counts()``,
``prune_expired_rows()``), so the daemon running as the least-privileged role can apply
them and nobody can point them at a table the seed keeps. This module drives them: in
batches of ``batch_size`` rows, one transaction each (a backlog of millions never holds
locks or a snapshot for long), messages before tasks, under a session advisory lock so
only one pruner works at a time (the daemon's daily run on every replica, or
`amoca-indexer prune`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import structlog

from indexer.db.connection import translate
from indexer.errors import IndexerError
from indexer.metrics import Metrics

LOCK_KEY = int.from_bytes(hashlib.sha256(b"amoca-indexer:retention").digest()[:8], "big", signed=True)
TABLES = ("messages", "tasks")  # messages first: they may reference expiring tasks
DAY = 86_400.0
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Expired:
    table: str
    cutoff: datetime  # UTC: rows older than this expire
    rows: int


async def expired(conn: psycopg.AsyncConnection[Any]) -> list[Expired]:
    """What a prune would delete now, per table (the dry run)."""
    try:
        cur = await conn.execute("SELECT table_name, cutoff, expired FROM expired_row_counts()")
        return [Expired(str(t), c, int(n)) for t, c, n in await cur.fetchall()]
    except psycopg.Error as exc:
        raise translate(exc) from exc


async def prune(conn: psycopg.AsyncConnection[Any], *, batch_size: int = 5000,
                metrics: Metrics | None = None) -> dict[str, int] | None:
    """Delete every expired row; rows deleted per table, or None when another pruner runs.

    ``conn`` must be in autocommit mode: each batch commits on its own.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    try:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (LOCK_KEY,))
        row = await cur.fetchone()
        if not (row and row[0]):
            return None
        try:
            deleted = {}
            for table in TABLES:
                deleted[table] = 0
                while True:
                    cur = await conn.execute("SELECT prune_expired_rows(%s, %s)", (table, batch_size))
                    row = await cur.fetchone()
                    count = int(row[0]) if row else 0
                    deleted[table] += count
                    if metrics is not None and count:
                        metrics.retention_deleted.labels(table).inc(count)
                    if count < batch_size:
                        break
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
    except psycopg.Error as exc:
        raise translate(exc) from exc
    if metrics is not None:
        metrics.retention_last_success.set(time.time())
    return deleted


async def run_retention(
    connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
    metrics: Metrics | None = None,
    *,
    interval: float = DAY,
    batch_size: int = 5000,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Prune now and then every ``interval`` seconds; forever. Failures wait for the next round."""
    while True:
        try:
            conn = await connect()
            try:
                deleted = await prune(conn, batch_size=batch_size, metrics=metrics)
            finally:
                await conn.close()
            if deleted is None:
                log.info("retention_skipped", reason="another pruner holds the lock")
            else:
                log.info("retention_pruned", **{f"{table}_deleted": n for table, n in deleted.items()})
        except (IndexerError, psycopg.Error, OSError) as exc:
            log.warning("retention_failed", error=str(exc))
        await sleep(interval)
