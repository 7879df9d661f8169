"""Task owners read from a real PostgreSQL: the one lookup the daemon and the backfill
share, and its retry when the connection it was given has died under it."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool
from structlog.testing import capture_logs

from indexer.db.task_owners import agents_tasks, task_owner_lookup
from tests.db.test_sink_write import AGENT, TASK, UNKNOWN_TASK, _register


def _pool(url: str) -> AsyncConnectionPool[Any]:
    return AsyncConnectionPool(url, min_size=1, max_size=1, open=False, kwargs={"autocommit": True})


async def test_owners_of_the_tasks_there_and_none_for_the_others(conn: psycopg.Connection,
                                                                  db_url: str) -> None:
    _register(conn)
    async with _pool(db_url) as pool:
        lookup = task_owner_lookup(pool)
        assert await lookup([TASK, UNKNOWN_TASK]) == {TASK: AGENT}
        assert await lookup([UNKNOWN_TASK]) == {}


async def test_an_agents_tasks_up_to_the_limit(conn: psycopg.Connection, db_url: str) -> None:
    _register(conn)
    more = [uuid.UUID(int=n) for n in range(10, 13)]
    conn.cursor().executemany("""
        INSERT INTO tasks (id, user_id, agent_id, title, description, status, budget)
        SELECT %s, user_id, agent_id, 'Task', 'Description', 'pending', 1 FROM tasks WHERE id = %s""",
                              [(task, TASK) for task in more])
    async with _pool(db_url) as pool:
        assert await agents_tasks(pool, [AGENT], 100) == dict.fromkeys([TASK, *more], AGENT)
        assert len(await agents_tasks(pool, [AGENT], 2)) == 2
        assert await agents_tasks(pool, ["Unknown1111111111111111111111111111111111"], 100) == {}


async def test_a_lookup_on_a_dead_connection_is_retried_on_a_new_one(conn: psycopg.Connection,
                                                                      db_url: str) -> None:
    _register(conn)
    async with _pool(db_url) as pool:
        async with pool.connection() as pooled:
            pid = pooled.info.backend_pid
        # The server ends the pooled session (a restart, a failover, an idle timeout): the
        # pool hands the dead connection out once more, and the lookup meets the error.
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with capture_logs() as logs:
            assert await task_owner_lookup(pool, give_up_after=30.0)([TASK]) == {TASK: AGENT}
    assert [(entry["event"], entry["what"]) for entry in logs] == [("db_retry", "task_owners")]
