"""``indexer_server_life()`` (sql/0019): one token while nothing acknowledged can have been
lost, a new one once crash recovery or a failover has emptied its unlogged table. (The
end-to-end failover tests crash and copy real servers; here the emptying is done by hand.)"""

from __future__ import annotations

import threading
import time

import psycopg


def _life(conn: psycopg.Connection) -> object:
    row = conn.execute("SELECT indexer_server_life()").fetchone()
    assert row is not None
    assert row[0] is not None
    return row[0]


def test_one_life_for_every_session_until_the_table_is_emptied(conn: psycopg.Connection,
                                                               db_url: str) -> None:
    first = _life(conn)
    with psycopg.connect(db_url, autocommit=True) as other:
        assert _life(other) == first == _life(conn)
    persistence = conn.execute("SELECT relpersistence FROM pg_class WHERE relname = 'indexer_server_life'")
    assert persistence.fetchone() == ("u",)  # unlogged: crash recovery and standbys start empty
    conn.execute("DELETE FROM indexer_server_life")  # as crash recovery leaves it
    second = _life(conn)
    assert second != first
    assert _life(conn) == second


def test_the_indexer_role_may_ask(conn: psycopg.Connection) -> None:
    conn.execute("SET ROLE amoca_indexer")
    try:
        assert _life(conn) is not None
    finally:
        conn.execute("RESET ROLE")


def test_sessions_asking_first_at_once_agree_on_one_life(conn: psycopg.Connection, db_url: str) -> None:
    """The first asker's row is not committed yet when a second asks: the second waits for
    it on the key and then reads it, rather than drawing a life of its own."""
    answers: list[object] = []
    with psycopg.connect(db_url) as first:  # a transaction left open
        drawn = _life(first)
        pid = first.info.backend_pid

        def ask() -> None:
            with psycopg.connect(db_url, autocommit=True) as second:
                answers.append(_life(second))

        asking = threading.Thread(target=ask)
        asking.start()
        deadline = time.monotonic() + 10
        while not conn.execute("SELECT 1 FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                               (pid,)).fetchone():
            assert time.monotonic() < deadline, "the second session never waited for the first"
            time.sleep(0.01)
        first.commit()
        asking.join(timeout=10)
    assert answers == [drawn]
