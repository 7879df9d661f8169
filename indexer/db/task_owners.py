"""Task owners: task id -> the wallet of the agent it belongs to, as the decoder's task
check asks (a memo naming another agent's task is no payment; DESIGN 3).

One query for the daemon and the backfill alike, retried like the sink's writes: while
the database is away a lookup waits (back-pressure) instead of failing its unit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from indexer.db.connection import pooled
from indexer.pipeline import TaskLookup

_OWNERS = """
SELECT t.id, a.wallet_address FROM tasks t JOIN agents a ON a.id = t.agent_id WHERE t.id = ANY(%s)
"""

_AGENTS_TASKS = """
SELECT t.id, a.wallet_address FROM tasks t JOIN agents a ON a.id = t.agent_id
WHERE a.wallet_address = ANY(%s) LIMIT %s
"""


def task_owner_lookup(pool: AsyncConnectionPool[Any], *, give_up_after: float | None = None) -> TaskLookup:
    """The owners of the tasks asked for (a task not there is left out); transient failures
    retried until ``give_up_after`` seconds (None: for as long as the outage lasts)."""
    async def lookup(task_ids: Sequence[UUID]) -> dict[UUID, str]:
        return await _read(pool, _OWNERS, (list(task_ids),), give_up_after)
    return lookup


async def agents_tasks(pool: AsyncConnectionPool[Any], wallets: Sequence[str], limit: int, *,
                       give_up_after: float | None = None) -> dict[UUID, str]:
    """Up to ``limit`` tasks of the agents with these wallets, with their owner: a backfill
    knows them before its first batch, which would otherwise wait for a lookup."""
    return await _read(pool, _AGENTS_TASKS, (list(wallets), limit), give_up_after)


async def _read(pool: AsyncConnectionPool[Any], query: str, params: tuple[Any, ...],
                give_up_after: float | None) -> dict[UUID, str]:
    async def work(conn: psycopg.AsyncConnection[Any]) -> dict[UUID, str]:
        cur = await conn.execute(query, params)
        return dict(await cur.fetchall())

    return await pooled(pool, work, what="task_owners", give_up_after=give_up_after)
