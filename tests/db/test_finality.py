"""The finality tracker's database side: which pending rows a pass asks about, and how its
decisions land (DESIGN section 5). The chain side is in tests/e2e."""

from __future__ import annotations

import psycopg

from indexer import finality
from tests.db.test_schema import make_agent, make_user, signature


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
