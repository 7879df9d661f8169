"""Least privilege: the indexer role writes only what the indexer owns; RLS scopes the API."""

from __future__ import annotations

import psycopg
import pytest
from psycopg import errors

from tests.db.test_schema import make_agent, make_user, signature, wallet


@pytest.fixture
def seeded(conn: psycopg.Connection) -> dict[str, object]:
    user, other = make_user(conn, 1), make_user(conn, 2)
    agent = make_agent(conn, 1)
    conn.execute("INSERT INTO reviews (agent_id, user_id, rating) VALUES (%s, %s, 5)", (agent, user))
    conn.execute("INSERT INTO messages (sender_user_id, recipient_agent_id, message_text)"
                 " VALUES (%s, %s, 'mine'), (%s, %s, 'theirs')", (user, agent, other, agent))
    return {"user": user, "other": other, "agent": agent}


def test_indexer_writes_what_it_owns_and_triggers_still_run(conn: psycopg.Connection,
                                                           seeded: dict[str, object]) -> None:
    conn.execute("SET ROLE amoca_indexer")
    try:
        conn.execute("INSERT INTO users (wallet_address) VALUES (%s) ON CONFLICT DO NOTHING",
                     (wallet(99),))
        payer = conn.execute("SELECT id FROM users WHERE wallet_address = %s", (wallet(99),)).fetchone()
        conn.execute(
            "INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
            " transaction_type, status) VALUES (%s, %s, %s, 3, 'funding', 'pending')",
            (payer[0] if payer else None, seeded["agent"], signature(5)))
        conn.execute("UPDATE transactions SET status = 'confirmed'")
        conn.execute("INSERT INTO indexer_cursors (wallet_address, signature, slot) VALUES (%s, %s, 1)",
                     (wallet(1001), signature(5)))
        conn.execute("INSERT INTO dead_letters (stage, reason) VALUES ('decode', 'not_json')")
        conn.execute("SELECT update_leaderboard_rankings()")
        earnings = conn.execute("SELECT total_earnings FROM agent_stats").fetchone()
    finally:
        conn.execute("RESET ROLE")
    assert earnings is not None
    assert earnings[0] == 3


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE agents SET name = 'pwned'",
        "DELETE FROM reviews",
        "UPDATE agent_stats SET total_earnings = 1000000",
        "INSERT INTO leaderboard_rankings (agent_id, rank, total_agents_in_domain, score, period)"
        " SELECT id, 1, 1, 100, 'daily' FROM agents",
        "SELECT * FROM messages",
        "UPDATE tasks SET status = 'completed'",
        "UPDATE users SET total_spent = 0",
        "SELECT email FROM users",
        "SELECT recompute_agent_stats()",
    ],
)
def test_indexer_cannot_touch_what_it_does_not_own(conn: psycopg.Connection,
                                                   seeded: dict[str, object], statement: str) -> None:
    conn.execute("SET ROLE amoca_indexer")
    try:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)
    finally:
        conn.execute("RESET ROLE")


def test_api_sees_only_its_own_messages(conn: psycopg.Connection, seeded: dict[str, object]) -> None:
    conn.execute("SET ROLE amoca_api")
    try:
        conn.execute("SELECT set_config('amoca.user_id', %s, false)", (str(seeded["user"]),))
        mine = conn.execute("SELECT message_text FROM messages").fetchall()
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("INSERT INTO messages (sender_user_id, recipient_agent_id, message_text)"
                         " VALUES (%s, %s, 'forged')", (seeded["other"], seeded["agent"]))
    finally:
        conn.execute("RESET ROLE")
    assert mine == [("mine",)]


def test_api_cannot_review_as_someone_else(conn: psycopg.Connection, seeded: dict[str, object]) -> None:
    conn.execute("SET ROLE amoca_api")
    try:
        conn.execute("SELECT set_config('amoca.user_id', %s, false)", (str(seeded["other"]),))
        deleted = conn.execute("DELETE FROM reviews").rowcount  # not theirs: RLS hides it
        visible = conn.execute("SELECT count(*) FROM reviews").fetchone()
    finally:
        conn.execute("RESET ROLE")
    assert deleted == 0
    assert visible == (1,)
