"""``indexer_server_life()`` (sql/0019): one token while nothing acknowledged can have been
lost, a new one once crash recovery or a failover has emptied its unlogged table, or the
postmaster started again. (The
end-to-end failover tests crash and copy real servers; here the emptying is done by hand,
but for one crash on a server of the test's own.)"""

from __future__ import annotations

import os
import signal
import threading
import time

import psycopg

from indexer.db import embedded
from tests.support.servers import own_server


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


def test_a_backend_crash_is_a_new_life_though_the_postmaster_lives_on() -> None:
    """One backend killed: the postmaster resets shared memory and recovers, and commits
    made with synchronous_commit off that were still in its WAL buffers are gone -- with
    the same postmaster, started at the same time. The life changes all the same."""
    started = "SELECT indexer_server_life(), pg_postmaster_start_time()"
    with own_server(durable=False) as server, psycopg.connect(server.url, autocommit=True) as conn:
        before = conn.execute(started).fetchone()
        os.kill(conn.info.backend_pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while True:  # until the server has recovered
            try:
                with psycopg.connect(server.url, autocommit=True) as again:
                    after = again.execute(started).fetchone()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "the server did not recover"
                time.sleep(0.05)
    assert before is not None
    assert after is not None
    assert after[1] == before[1]  # the same postmaster
    assert after[0] != before[0]  # a new life


def test_a_clean_restart_is_a_new_life_too() -> None:
    """It loses nothing, but a token alone would not tell a dump restored elsewhere (it
    carries unlogged tables' rows) from the server it was taken from."""
    with own_server(durable=False) as server:
        with psycopg.connect(server.url, autocommit=True) as conn:
            before = _life(conn)
        embedded.stop(server.data_dir, mode="fast")
        embedded.start(server.data_dir, durable=False)
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM indexer_server_life").fetchone() == (1,)  # kept
            assert _life(conn) != before
