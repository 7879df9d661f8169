"""The migrated schema holds every seed object, with the constraints the seed implies.

The seed's tables and column types are read from the seed document itself
(``../shared/seed-schema.md``), so this test follows the document, not a copy of it.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

from tests.support.paths import shared_dir
from tests.support.scans import rows_scanned

SEED_INDEXES = ["idx_agents_status", "idx_transactions_created_at", "idx_reviews_rating",
                "idx_leaderboard_rank"]
SEED_FUNCTIONS = ["update_updated_at_column", "update_agent_stats_on_task_completion",
                  "update_agent_rating_on_review", "calculate_agent_success_rate",
                  "update_leaderboard_rankings", "update_stats_on_transaction_change",
                  "recompute_agent_stats"]
EMOJI = {
    "Code Debugging": "\U0001f41b", "Content Creation": "\u270d\ufe0f",
    "Trading Strategies": "\U0001f4c8", "Data Analysis": "\U0001f4ca", "Design": "\U0001f3a8",
    "Research": "\U0001f52c", "Security Audit": "\U0001f512", "DevOps": "\u2699\ufe0f",
    "Marketing": "\U0001f4f1", "Customer Support": "\U0001f4ac",
}


def seed_tables() -> dict[str, dict[str, str]]:
    """table -> column -> type, as written in the seed document's CREATE TABLE blocks."""
    text = (shared_dir() / "seed-schema.md").read_text(encoding="utf-8")
    tables: dict[str, dict[str, str]] = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", text, flags=re.S):
        columns = {}
        for line in body.strip().splitlines():
            match = re.match(r"\s*(\w+)\s+([A-Z]+(?:\(\d+(?:,\s*\d+)?\))?(?:\[\])?)", line)
            if match and match[1] != "PRIMARY":
                columns[match[1]] = match[2]
        tables[name] = columns
    return tables


def pg_type(seed_type: str) -> str:
    seed_type = seed_type.replace(" ", "")
    if match := re.fullmatch(r"VARCHAR\((\d+)\)", seed_type):
        return f"character varying({match[1]})"
    if match := re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", seed_type):
        return f"numeric({match[1]},{match[2]})"
    return {"TIMESTAMP": "timestamp without time zone", "SERIAL": "integer",
            "TEXT[]": "text[]"}.get(seed_type, seed_type.lower())


def test_seed_document_was_parsed() -> None:
    tables = seed_tables()
    assert len(tables) == 13  # eleven sections; two of them hold two tables each
    assert tables["transactions"]["amount"] == "DECIMAL(18, 9)"


def test_every_seed_table_and_column_exists_with_its_type(conn: psycopg.Connection) -> None:
    actual = {
        (table, column): kind for table, column, kind in conn.execute(
            "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod)"
            " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND a.attnum > 0 AND NOT a.attisdropped").fetchall()
    }
    missing = []
    for table, columns in seed_tables().items():
        for column, seed_type in columns.items():
            if actual.get((table, column)) != pg_type(seed_type):
                missing.append(f"{table}.{column}: want {pg_type(seed_type)}, "
                               f"have {actual.get((table, column))}")
    assert missing == []
    for table in ("agent_pricing", "credentials", "achievements", "indexer_cursors", "dead_letters",
                  "backfill_progress", "schema_migrations"):
        assert any(t == table for t, _ in actual), table


def test_views_indexes_functions_triggers_exist(conn: psycopg.Connection) -> None:
    views = {v for (v,) in conn.execute("SELECT viewname FROM pg_views WHERE schemaname='public'")}
    assert {"v_agent_leaderboard", "v_agent_profiles"} <= views
    indexes = {i for (i,) in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname='public'")}
    assert set(SEED_INDEXES) <= indexes
    composite = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE tablename IN ('agent_domains', 'agent_followers')"
    ).fetchall()
    defs = " ".join(d for (d,) in composite)
    assert "(agent_id, domain_id)" in defs
    assert "(user_id, agent_id)" in defs
    functions = {f for (f,) in conn.execute(
        "SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public'")}
    assert set(SEED_FUNCTIONS) <= functions
    triggers = {t for (t,) in conn.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")}
    assert {"tasks_stats_insert", "reviews_stats_insert", "transactions_stats_insert",
            "agents_create_stats", "users_updated_at", "agents_updated_at"} <= triggers


def test_domains_are_seeded_with_correct_emoji(conn: psycopg.Connection) -> None:
    assert dict(conn.execute("SELECT name, icon FROM domains").fetchall()) == EMOJI


def wallet(seed: int) -> str:
    from solders.pubkey import Pubkey

    return str(Pubkey(seed.to_bytes(32, "big")))


def signature(seed: int) -> str:
    from solders.signature import Signature

    return str(Signature(seed.to_bytes(64, "big")))


def add_agents_and_users(conn: psycopg.Connection, agents: list[str], users: list[str]) -> None:
    """Many agents and users at once, by wallet (tables as large as an index needs to be
    the cheaper way in)."""
    conn.execute("INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
                 " SELECT 'a-' || w, 'Agent', 't', 'd', 'https://x/a.png', w FROM unnest(%s::text[]) w",
                 (agents,))
    conn.execute("INSERT INTO users (wallet_address) SELECT w FROM unnest(%s::text[]) w", (users,))


def make_agent(conn: psycopg.Connection, seed: int) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
        " VALUES (%s, %s, 't', 'd', 'https://x/a.png', %s) RETURNING id",
        (f"agent-{seed}", f"Agent {seed}", wallet(1000 + seed))).fetchone()
    assert row is not None
    return row[0]


def make_user(conn: psycopg.Connection, seed: int) -> uuid.UUID:
    row = conn.execute("INSERT INTO users (wallet_address) VALUES (%s) RETURNING id",
                       (wallet(seed),)).fetchone()
    assert row is not None
    return row[0]


def test_seed_only_columns_are_accepted_by_every_table(conn: psycopg.Connection) -> None:
    user = conn.execute(
        "INSERT INTO users (id, wallet_address, username, email, avatar_url, bio, created_at,"
        " updated_at, last_active, is_verified, reputation_score, total_spent)"
        " VALUES (gen_random_uuid(), %s, 'alice', 'a@example.com', NULL, NULL, now(), now(), NULL,"
        " false, 0, 0) RETURNING id", (wallet(1),)).fetchone()[0]  # type: ignore[index]
    agent = conn.execute(
        "INSERT INTO agents (id, agent_id, name, tagline, description, avatar_url, cover_image_url,"
        " wallet_address, status, verified, created_at, updated_at, last_active, creator_user_id)"
        " VALUES (gen_random_uuid(), 'agent-001', 'A', 't', 'd', 'u', NULL, %s, 'available', false,"
        " now(), now(), NULL, %s) RETURNING id", (wallet(2), user)).fetchone()[0]  # type: ignore[index]
    conn.execute("INSERT INTO agent_domains (agent_id, domain_id, is_primary, proficiency_level)"
                 " VALUES (%s, 1, true, 3)", (agent,))
    skill = conn.execute("INSERT INTO skills (name, category) VALUES ('Rust', 'lang') RETURNING id"
                         ).fetchone()[0]  # type: ignore[index]
    conn.execute("INSERT INTO agent_skills (agent_id, skill_id, level, years_experience)"
                 " VALUES (%s, %s, 'Expert', 2.5)", (agent, skill))
    task = conn.execute(
        "INSERT INTO tasks (id, user_id, agent_id, title, description, task_type, status, priority,"
        " budget, payment_type, started_at, completed_at, due_date, metadata) VALUES"
        " (gen_random_uuid(), %s, %s, 'T', 'D', 'bug', 'pending', 'high', 1.5, 'fixed', NULL, NULL,"
        " NULL, '{}') RETURNING id", (user, agent)).fetchone()[0]  # type: ignore[index]
    conn.execute(
        "INSERT INTO reviews (id, user_id, agent_id, task_id, rating, title, review_text, pros, cons,"
        " would_hire_again, response_time_rating, quality_rating, communication_rating, value_rating)"
        " VALUES (gen_random_uuid(), %s, %s, %s, 5, 'ok', 'fine', '{fast}', '{}', true, 5, 4, 5, 4)",
        (user, agent, task))
    conn.execute("INSERT INTO leaderboard_rankings (agent_id, domain_id, rank, total_agents_in_domain,"
                 " score, period) VALUES (%s, 1, 1, 1, 50.5, 'weekly')", (agent,))
    conn.execute("INSERT INTO agent_followers (user_id, agent_id, created_at) VALUES (%s, %s, now())",
                 (user, agent))
    conn.execute("INSERT INTO messages (id, sender_user_id, recipient_agent_id, task_id, message_text,"
                 " is_read, created_at) VALUES (gen_random_uuid(), %s, %s, %s, 'hi', false, now())",
                 (user, agent, task))
    conn.execute(
        "INSERT INTO transactions (id, user_id, agent_id, transaction_signature, amount,"
        " transaction_type, status, created_at, confirmed_at, metadata) VALUES"
        " (gen_random_uuid(), %s, %s, %s, 1.5, 'payment', 'pending', now(), NULL, '{}')",
        (user, agent, signature(1)))
    conn.execute("INSERT INTO agent_pricing (agent_id, hourly_rate, subscription_monthly)"
                 " VALUES (%s, 0.1, 2)", (agent,))
    conn.execute("INSERT INTO credentials (agent_id, title) VALUES (%s, 'Audit cert')", (agent,))
    conn.execute("INSERT INTO achievements (agent_id, title) VALUES (%s, '100 tasks')", (agent,))
    profile = conn.execute("SELECT name, hourly_rate, tasks_completed FROM v_agent_profiles"
                           " WHERE agent_id = 'agent-001'").fetchone()
    assert profile == ("A", Decimal("0.1"), 0)
    board = conn.execute("SELECT domains, rank FROM v_agent_leaderboard WHERE id = %s",
                         (agent,)).fetchone()
    assert board == (["Code Debugging"], 1)


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        ("UPDATE agents SET status = 'asleep'", "agents_status_check"),
        ("UPDATE tasks SET status = 'done'", "tasks_status_check"),
        ("UPDATE tasks SET priority = 'whenever'", "tasks_priority_check"),
        ("UPDATE transactions SET transaction_type = 'gift'", "transactions_type_check"),
        ("UPDATE transactions SET amount = -1", "transactions_amount_nonnegative"),
        ("UPDATE reviews SET rating = 6", "reviews_rating_check"),
        ("UPDATE reviews SET quality_rating = 0", "reviews_quality_rating_check"),
        ("UPDATE transactions SET status = 'pending'", "transactions_status_forward_only"),
    ],
)
def test_violations_name_their_constraint(conn: psycopg.Connection, statement: str,
                                          constraint: str) -> None:
    user, agent = make_user(conn, 1), make_agent(conn, 1)
    conn.execute("INSERT INTO tasks (agent_id, title, description) VALUES (%s, 't', 'd')", (agent,))
    conn.execute("INSERT INTO reviews (agent_id, rating) VALUES (%s, 4)", (agent,))
    conn.execute("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
                 " transaction_type, status) VALUES (%s, %s, %s, 1, 'payment', 'confirmed')",
                 (user, agent, signature(7)))
    with pytest.raises(errors.CheckViolation) as caught:
        conn.execute(statement)
    assert caught.value.diag.constraint_name == constraint


def test_the_indexer_error_names_the_constraint(conn: psycopg.Connection) -> None:
    from indexer.db.connection import translate
    from indexer.errors import DatabaseError

    make_agent(conn, 1)
    with pytest.raises(errors.CheckViolation) as caught:
        conn.execute("UPDATE agents SET status = 'asleep'")
    translated = translate(caught.value)
    assert isinstance(translated, DatabaseError)
    assert translated.constraint == "agents_status_check"
    assert "agents_status_check" in str(translated)


def test_status_only_moves_forward(conn: psycopg.Connection) -> None:
    user, agent = make_user(conn, 1), make_agent(conn, 1)
    conn.execute("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
                 " transaction_type) VALUES (%s, %s, %s, 1, 'payment')", (user, agent, signature(9)))
    for allowed in ("confirmed", "confirmed", "refunded"):
        conn.execute("UPDATE transactions SET status = %s", (allowed,))
    for backward in ("confirmed", "pending", "failed"):
        with pytest.raises(errors.CheckViolation, match="cannot move from refunded"):
            conn.execute("UPDATE transactions SET status = %s", (backward,))


def test_every_agent_gets_exactly_one_stats_row(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
        " SELECT 'bulk-' || g, 'n', 't', 'd', 'u', %s || translate(g::text, '0', 'z')"
        " FROM generate_series(1, 50) g",
        (wallet(5)[:40],))
    counts = conn.execute("SELECT count(*), count(DISTINCT s.agent_id) FROM agents a"
                          " JOIN agent_stats s ON s.agent_id = a.id").fetchone()
    assert counts == (50, 50)


def test_agent_changes_are_notified(conn: psycopg.Connection, db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN amoca_agents_changed")
        agent = make_agent(conn, 3)
        conn.execute("UPDATE agents SET wallet_address = %s WHERE id = %s", (wallet(77), agent))
        conn.execute("DELETE FROM agents WHERE id = %s", (agent,))
        received = [n.payload for n in listener.notifies(timeout=10, stop_after=3)]
    ops = [re.search(r'"op" : "(\w+)"', p)[1] for p in received]  # type: ignore[index]
    assert ops == ["insert", "update", "delete"]
    assert wallet(77) in received[1]


def test_a_batch_insert_costs_one_stats_update_per_agent(conn: psycopg.Connection) -> None:
    user = make_user(conn, 1)
    agents = [make_agent(conn, i) for i in range(2)]
    with conn.transaction():
        conn.execute(
            "INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
            " transaction_type, status)"
            " SELECT %s, (ARRAY[%s, %s]::uuid[])[1 + g %% 2],"
            " 'Sig' || translate(g::text, '0', 'z') || repeat('x', 60),"
            " 0.001, 'payment', 'confirmed' FROM generate_series(1, 1000) g",
            (user, *agents))
        updates = conn.execute(
            "SELECT relname, n_tup_upd FROM pg_stat_xact_user_tables"
            " WHERE relname IN ('agent_stats', 'users') ORDER BY relname").fetchall()
    assert updates == [("agent_stats", 2), ("users", 1)]
    stats = dict(conn.execute("SELECT agent_id, total_earnings FROM agent_stats").fetchall())
    assert sorted(stats.values()) == [Decimal("0.5"), Decimal("0.5")]
    expected = dict(conn.execute("SELECT agent_id, total_earnings FROM expected_agent_stats()"))
    assert stats == expected


def test_refund_marks_its_payment_in_either_order(conn: psycopg.Connection) -> None:
    user, agent = make_user(conn, 1), make_agent(conn, 1)
    pay, refund = signature(11), signature(12)
    conn.execute("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
                 " transaction_type, status) VALUES (%s, %s, %s, 2, 'payment', 'pending')",
                 (user, agent, pay))
    conn.execute("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
                 " transaction_type, status, refund_of)"
                 " VALUES (%s, %s, %s, 2, 'refund', 'confirmed', %s)",
                 (user, agent, refund, pay))
    conn.execute("UPDATE transactions SET status = 'confirmed' WHERE transaction_signature = %s", (pay,))
    assert conn.execute("SELECT status FROM transactions WHERE transaction_signature = %s",
                        (pay,)).fetchone() == ("refunded",)
    assert conn.execute("SELECT total_earnings FROM agent_stats").fetchone() == (0,)
    assert conn.execute("SELECT recompute_agent_stats()").fetchone() == (0,)


def test_live_writes_read_no_other_transaction_rows(conn: psycopg.Connection) -> None:
    """The stats trigger's refund marking starts from the statement's own rows: inserting
    a pending row, or confirming one, must not scan the table (sql/0010; it used to read
    every confirmed row on every insert, so a write's cost grew with the history)."""
    user, agent = make_user(conn, 1), make_agent(conn, 1)
    conn.execute(
        "INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
        " transaction_type, status, refund_of)"
        " SELECT %s, %s, 'Sig' || translate(g::text, '0', 'z') || repeat('x', 60), 0.001,"
        " CASE WHEN g %% 5 = 0 THEN 'refund' ELSE 'payment' END, 'confirmed',"
        " CASE WHEN g %% 5 = 0 THEN 'Sig' || translate((g - 1)::text, '0', 'z') || repeat('x', 60) END"
        " FROM generate_series(1, 5000) g", (user, agent))
    conn.commit()  # not analyzed yet, as a table filling fast often is: no statistics to go by
    pay, refund = signature(11), signature(12)

    def scanned(statement: str, params: tuple[object, ...]) -> dict[str, int]:
        return rows_scanned(conn, ["transactions"], statement, params)

    insert = ("INSERT INTO transactions (user_id, agent_id, transaction_signature, amount,"
              " transaction_type, status, refund_of) VALUES (%s, %s, %s, 1, %s, 'pending', %s)")
    assert scanned(insert, (user, agent, pay, "payment", None)) == {"transactions": 0}
    assert scanned(insert, (user, agent, refund, "refund", pay)) == {"transactions": 0}
    confirm = "UPDATE transactions SET status = 'confirmed' WHERE transaction_signature = %s"
    assert scanned(confirm, (pay,)) == {"transactions": 0}
    assert scanned(confirm, (refund,)) == {"transactions": 0}
    assert conn.execute("SELECT status FROM transactions WHERE transaction_signature = %s",
                        (pay,)).fetchone() == ("refunded",)
    assert conn.execute("SELECT recompute_agent_stats()").fetchone() == (0,)


def test_schema_file_names_no_machine_paths() -> None:
    for path in (Path(__file__).resolve().parents[2] / "sql").glob("*.sql"):
        assert "/work/" not in path.read_text()
