"""The finality tracker's database side: which pending rows a pass asks about, and how its
decisions land (DESIGN section 5). The chain side is in tests/e2e."""

from __future__ import annotations

import psycopg

from indexer import finality
from tests.db.test_schema import add_agents_and_users, make_agent, make_user, signature, wallet
from tests.support.scans import rows_scanned_during


def _pending(conn: psycopg.Connection, seed: int, slot: int | None, agents: list[object],
             user: object) -> str:
    sig = signature(seed)
    for agent in agents:
        conn.execute("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
                     " transaction_type, status, slot) VALUES (%s, %s, %s, 1, 'payment', 'pending', %s)",
                     (user, agent, sig, slot))
    return sig


async def test_a_pass_asks_about_rows_that_can_be_final_oldest_first(conn: psycopg.Connection,
                                                                      db_url: str) -> None:
    user, one, two = make_user(conn, 1), make_agent(conn, 1), make_agent(conn, 2)
    both = _pending(conn, 1, 120, [one, two], user)  # one transfer to two agents: two rows
    old = _pending(conn, 2, 100, [one], user)
    unknown_slot = _pending(conn, 3, None, [one], user)  # written by someone else
    _pending(conn, 4, 250, [one], user)  # past the finalized slot: cannot be final yet
    conn.commit()
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        rows, full = await finality.pending_rows(aconn, 200, limit=10)
        assert [(r.signature, r.slot) for r in rows] == [(old, 100), (both, 120), (unknown_slot, 0)]
        assert not full
        rows, full = await finality.pending_rows(aconn, 200, limit=2)
        assert [r.signature for r in rows] == [old, both]
        assert full
        await aconn.commit()
        confirmed, failed = await finality.apply(aconn, finality.Decisions(
            confirm=((both, 121),), fail=((old, "dropped"),)))
    assert (confirmed, failed) == (2, 1)
    stored = conn.execute("SELECT status, slot, metadata->>'failure' FROM transactions"
                          " ORDER BY status, slot NULLS FIRST").fetchall()
    assert stored == [("confirmed", 121, None), ("confirmed", 121, None), ("failed", 100, "dropped"),
                      ("pending", None, None), ("pending", 250, None)]


async def test_a_pass_reaches_its_rows_by_signature_whatever_the_statistics_say(
        conn: psycopg.Connection, db_url: str) -> None:
    """Statistics taken while no row was pending, then many pending rows (a finality
    backlog): the confirm and fail statements still go by signature, never through the
    pending rows' partial index -- joined by a nested loop, it unnested the whole list
    again for every pending row. Rows no longer pending are left alone."""
    user, agent = make_user(conn, 1), make_agent(conn, 1)
    insert = ("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
              " transaction_type, status, slot)"
              " SELECT %s, %s, %s || lpad(translate(i::text, '0', 'z'), 60, 'A'), 1, 'payment', %s, i"
              " FROM generate_series(1, %s) i")
    conn.execute(insert, (user, agent, "C", "confirmed", 500))
    conn.execute("ANALYZE transactions")
    conn.execute(insert, (user, agent, "P", "pending", 400))
    pending = [r[0] for r in conn.execute("SELECT transaction_signature FROM transactions"
                                          " WHERE status = 'pending' ORDER BY slot").fetchall()]
    confirmed_already = conn.execute("SELECT transaction_signature FROM transactions"
                                     " WHERE status = 'confirmed' LIMIT 1").fetchone()
    assert confirmed_already is not None
    confirm = [*pending[:200], confirmed_already[0]]
    for statement, params in (
            (finality._CONFIRM, {"signature": confirm, "slot": list(range(len(confirm)))}),
            (finality._FAIL, {"signature": pending[200:300], "reason": ["dropped"] * 100})):
        plan = conn.execute("EXPLAIN (FORMAT JSON) " + statement, params).fetchone()
        assert plan is not None
        assert "idx_transactions_pending" not in str(plan[0])
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        moved = await finality.apply(aconn, finality.Decisions(
            confirm=tuple((s, n) for n, s in enumerate(confirm)),
            fail=tuple((s, "dropped") for s in pending[200:300])))
    assert moved == (200, 100)
    counts = dict(conn.execute("SELECT status, count(*) FROM transactions GROUP BY status").fetchall())
    assert counts == {"confirmed": 700, "failed": 100, "pending": 100}


async def test_a_sessions_large_first_pass_leaves_later_passes_going_by_key(
        conn: psycopg.Connection, db_url: str) -> None:
    """PL/pgSQL keeps a statement's plan for the session. The stats trigger's statements
    that join its rows to agent_stats, users and transactions had plans made for the
    session's first pass: after a large one, every later pass read agent_stats whole.
    Now a small pass after a large one reads none of the three by sequential scan (tables
    large enough for an index to be the cheaper way), and still moves the totals and marks
    a refunded payment."""
    agents = [wallet(20_000 + i) for i in range(10_000)]
    users = [wallet(40_000 + i) for i in range(10_000)]
    add_agents_and_users(conn, agents, users)
    conn.execute("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
                 " transaction_type, status, slot)"
                 " SELECT (SELECT id FROM users LIMIT 1), (SELECT id FROM agents LIMIT 1),"
                 " 'F' || lpad(translate(i::text, '0', 'z'), 60, 'A'), 1, 'payment', 'confirmed', 1"
                 " FROM generate_series(1, 20000) i")
    insert = ("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
              " transaction_type, status, slot, refund_of)"
              " SELECT u.id, a.id, %s, %s, %s, %s, 1, %s FROM agents a, users u"
              " WHERE a.wallet_address = %s AND u.wallet_address = %s")
    backlog = [(signature(10_000 + n), agents[-n - 1], users[-n - 1]) for n in range(2000)]
    with conn.cursor() as cur:
        cur.executemany(insert, [(sig, 1, "payment", "pending", None, agent, user)
                                 for sig, agent, user in backlog])
    paid, refund, later = signature(1), signature(2), signature(3)
    conn.execute(insert, (paid, 5, "payment", "confirmed", None, agents[7], users[7]))
    conn.execute(insert, (refund, 2, "refund", "pending", paid, agents[7], users[7]))
    conn.execute(insert, (later, 3, "payment", "pending", None, agents[8], users[8]))
    conn.execute("ANALYZE agents, agent_stats, users, transactions")
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        assert await finality.apply(aconn, finality.Decisions(
            confirm=tuple((s, 2) for s, _, _ in backlog))) == (2000, 0)
        tables = ["agent_stats", "users", "transactions"]
        async with rows_scanned_during(aconn, tables) as scanned:
            assert await finality.apply(aconn, finality.Decisions(
                confirm=((refund, 3), (later, 3)))) == (2, 0)
    assert scanned == dict.fromkeys(tables, 0)
    assert conn.execute("SELECT status FROM transactions WHERE transaction_signature = %s",
                        (paid,)).fetchone() == ("refunded",)
    earnings = dict(conn.execute("SELECT a.wallet_address, s.total_earnings FROM agent_stats s"
                                 " JOIN agents a ON a.id = s.agent_id WHERE a.wallet_address = ANY(%s)",
                                 ([agents[7], agents[8], agents[-1]],)).fetchall())
    assert earnings == {agents[7]: 3, agents[8]: 3, agents[-1]: 1}
    for drift in ("SELECT count(*) FROM expected_user_totals() e JOIN users u ON u.id = e.user_id"
                  " WHERE u.total_spent <> e.total_spent",
                  "SELECT count(*) FROM expected_agent_stats() e JOIN agent_stats s USING (agent_id)"
                  " WHERE s.total_earnings <> e.total_earnings"):
        assert conn.execute(drift).fetchone() == (0,)
