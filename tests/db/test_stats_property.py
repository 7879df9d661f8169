"""The stats invariants (DESIGN section 5) hold after ANY sequence of writes.

Hypothesis draws sequences of inserts, updates and deletes -- single rows and
multi-row batches in one statement -- on tasks, reviews and transactions, including
status changes in any order (backward moves must be refused and change nothing), amount
changes, reassignments to other agents and users, SOL and token rows. After each
sequence, the trigger-maintained `agent_stats` and `users.total_spent` must equal the
reference recomputation from the base tables, exactly.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import errors

AGENTS = 3
USERS = 3
BASE = datetime(2026, 1, 1)
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

TX_TYPES = ("funding", "payment", "refund", "subscription")
TX_STATUSES = ("pending", "confirmed", "failed", "refunded")
TASK_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")

amounts = st.decimals(min_value=Decimal("0"), max_value=Decimal("1000"), places=9)
agent_ix = st.integers(0, AGENTS - 1)
user_ix = st.one_of(st.none(), st.integers(0, USERS - 1))
row_ix = st.integers(0, 30)

tx_row = st.fixed_dictionaries({
    "agent": agent_ix, "user": user_ix, "type": st.sampled_from(TX_TYPES),
    "status": st.sampled_from(("pending", "confirmed", "failed")), "amount": amounts,
    "token": st.booleans(), "refund_of": st.one_of(st.none(), row_ix),
})
task_row = st.fixed_dictionaries({
    "agent": st.one_of(st.none(), agent_ix), "status": st.sampled_from(TASK_STATUSES),
    "started": st.one_of(st.none(), st.integers(0, 10_000)),
    "duration": st.one_of(st.none(), st.integers(0, 5_000)),
})
review_row = st.fixed_dictionaries({"agent": agent_ix, "rating": st.integers(1, 5)})

operations = st.one_of(
    st.tuples(st.just("insert_tx"), st.lists(tx_row, min_size=1, max_size=6)),
    st.tuples(st.just("tx_status"), st.lists(row_ix, min_size=1, max_size=4),
              st.sampled_from(TX_STATUSES)),
    st.tuples(st.just("tx_amount"), row_ix, amounts),
    st.tuples(st.just("tx_move"), row_ix, agent_ix, user_ix),
    st.tuples(st.just("tx_delete"), st.lists(row_ix, min_size=1, max_size=3)),
    st.tuples(st.just("insert_task"), st.lists(task_row, min_size=1, max_size=5)),
    st.tuples(st.just("task_status"), st.lists(row_ix, min_size=1, max_size=4),
              st.sampled_from(TASK_STATUSES)),
    st.tuples(st.just("task_move"), row_ix, st.one_of(st.none(), agent_ix)),
    st.tuples(st.just("task_delete"), st.lists(row_ix, min_size=1, max_size=3)),
    st.tuples(st.just("insert_review"), st.lists(review_row, min_size=1, max_size=5)),
    st.tuples(st.just("review_rating"), row_ix, st.integers(1, 5)),
    st.tuples(st.just("review_move"), row_ix, agent_ix),
    st.tuples(st.just("review_delete"), st.lists(row_ix, min_size=1, max_size=3)),
)


class World:
    """The fixed agents and users, and the ids of rows created so far (by position)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        # DELETE, not TRUNCATE: on a durable server each TRUNCATE syncs the tables' new
        # files to disk (100 ms a time on one machine: 30 s of this test's 300 examples),
        # and these tables hold a few dozen rows. Children first; agent_stats cascades.
        with conn.transaction():
            for table in ("transactions", "reviews", "tasks", "agents", "users"):
                conn.execute(f"DELETE FROM {table}")
        self.users = [self._one("INSERT INTO users (wallet_address) VALUES (%s) RETURNING id",
                                (f"User{i + 1}" + "x" * 36,)) for i in range(USERS)]
        self.agents = [self._one(
            "INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
            " VALUES (%s, 'a', 't', 'd', 'u', %s) RETURNING id", (f"a{i}", f"Agent{i + 1}" + "x" * 35))
            for i in range(AGENTS)]
        self.txs: list[Any] = []
        self.tasks: list[Any] = []
        self.reviews: list[Any] = []
        self.serial = 0

    def _one(self, query: str, params: tuple[Any, ...]) -> Any:
        row = self.conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    @staticmethod
    def pick(ids: list[Any], index: int) -> Any:
        return ids[index % len(ids)] if ids else None

    def signature(self) -> str:
        self.serial += 1
        return f"Sig{self.serial:06d}".replace("0", "z") + "x" * 60

    def run(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        try:
            with self.conn.transaction():
                getattr(self, kind)(*op[1:])
        except errors.CheckViolation as exc:
            # Only the forward-only status guard may refuse a generated write.
            refused_by = exc.diag.constraint_name
            if refused_by not in ("transactions_status_forward_only", "transactions_refund_not_refunded"):
                raise

    def insert_tx(self, rows: list[dict[str, Any]]) -> None:
        values = []
        for row in rows:
            sig = self.signature()
            refund_of = None
            if row["type"] == "refund" and row["refund_of"] is not None and self.txs:
                refund_of = self.conn.execute(
                    "SELECT transaction_signature FROM transactions WHERE id = %s",
                    (self.pick(self.txs, row["refund_of"]),)).fetchone()
                refund_of = refund_of[0] if refund_of else None
            values.append((self.agents[row["agent"]],
                           None if row["user"] is None else self.users[row["user"]], sig,
                           row["amount"], row["type"], row["status"],
                           USDC if row["token"] else None, refund_of))
        query = ("INSERT INTO transactions (agent_id, user_id, transaction_signature, amount,"
                 " transaction_type, status, mint, refund_of) SELECT * FROM unnest("
                 "%s::uuid[], %s::uuid[], %s::text[], %s::numeric[], %s::text[], %s::text[],"
                 " %s::text[], %s::text[]) RETURNING id")
        columns = [list(c) for c in zip(*values, strict=True)]
        self.txs += [r[0] for r in self.conn.execute(query, columns).fetchall()]

    def tx_status(self, indexes: list[int], status: str) -> None:
        ids = list({self.pick(self.txs, i) for i in indexes} - {None})
        self.conn.execute("UPDATE transactions SET status = %s WHERE id = ANY(%s)", (status, ids))

    def tx_amount(self, index: int, amount: Decimal) -> None:
        self.conn.execute("UPDATE transactions SET amount = %s WHERE id = %s",
                          (amount, self.pick(self.txs, index)))

    def tx_move(self, index: int, agent: int, user: int | None) -> None:
        self.conn.execute(
            "UPDATE transactions SET agent_id = %s, user_id = %s WHERE id = %s",
            (self.agents[agent], None if user is None else self.users[user], self.pick(self.txs, index)))

    def tx_delete(self, indexes: list[int]) -> None:
        ids = [self.pick(self.txs, i) for i in indexes]
        self.conn.execute("DELETE FROM transactions WHERE id = ANY(%s)", (ids,))

    def insert_task(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            started = None if row["started"] is None else BASE + timedelta(minutes=row["started"])
            completed = (None if started is None or row["duration"] is None
                         else started + timedelta(minutes=row["duration"], seconds=17))
            agent = None if row["agent"] is None else self.agents[row["agent"]]
            self.tasks.append(self._one(
                "INSERT INTO tasks (agent_id, title, description, status, started_at, completed_at)"
                " VALUES (%s, 't', 'd', %s, %s, %s) RETURNING id",
                (agent, row["status"], started, completed)))

    def task_status(self, indexes: list[int], status: str) -> None:
        ids = [self.pick(self.tasks, i) for i in indexes]
        self.conn.execute("UPDATE tasks SET status = %s WHERE id = ANY(%s)", (status, ids))

    def task_move(self, index: int, agent: int | None) -> None:
        self.conn.execute("UPDATE tasks SET agent_id = %s WHERE id = %s",
                          (None if agent is None else self.agents[agent], self.pick(self.tasks, index)))

    def task_delete(self, indexes: list[int]) -> None:
        ids = [self.pick(self.tasks, i) for i in indexes]
        self.conn.execute("DELETE FROM tasks WHERE id = ANY(%s)", (ids,))

    def insert_review(self, rows: list[dict[str, Any]]) -> None:
        query = ("INSERT INTO reviews (agent_id, rating) SELECT * FROM unnest(%s::uuid[], %s::int[])"
                 " RETURNING id")
        ids = self.conn.execute(query, ([self.agents[r["agent"]] for r in rows],
                                        [r["rating"] for r in rows])).fetchall()
        self.reviews += [r[0] for r in ids]

    def review_rating(self, index: int, rating: int) -> None:
        self.conn.execute("UPDATE reviews SET rating = %s WHERE id = %s",
                          (rating, self.pick(self.reviews, index)))

    def review_move(self, index: int, agent: int) -> None:
        self.conn.execute("UPDATE reviews SET agent_id = %s WHERE id = %s",
                          (self.agents[agent], self.pick(self.reviews, index)))

    def review_delete(self, indexes: list[int]) -> None:
        ids = [self.pick(self.reviews, i) for i in indexes]
        self.conn.execute("DELETE FROM reviews WHERE id = ANY(%s)", (ids,))


STATS = ("tasks_completed, tasks_failed, success_rate, avg_response_time_minutes, total_earnings,"
         " rating, review_count, avg_rating, hire_count")


def assert_invariants(conn: psycopg.Connection) -> None:
    stored = conn.execute(f"SELECT agent_id, {STATS} FROM agent_stats ORDER BY agent_id").fetchall()
    expected = conn.execute(f"SELECT agent_id, {STATS} FROM expected_agent_stats() ORDER BY agent_id"
                            ).fetchall()
    assert stored == expected
    spent = conn.execute("SELECT id, total_spent FROM users ORDER BY id").fetchall()
    assert spent == conn.execute("SELECT user_id, total_spent FROM expected_user_totals()"
                                 " ORDER BY user_id").fetchall()


def test_triggers_equal_recomputation_after_any_sequence(conn: psycopg.Connection) -> None:
    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.lists(operations, min_size=1, max_size=12))
    def check(sequence: list[tuple[Any, ...]]) -> None:
        world = World(conn)
        for op in sequence:
            world.run(op)
        assert_invariants(conn)
        # And the reference function agrees it has nothing to fix.
        assert conn.execute("SELECT recompute_agent_stats()").fetchone() == (0,)

    check()


def test_recompute_repairs_drifted_stats(conn: psycopg.Connection) -> None:
    world = World(conn)
    world.insert_tx([{"agent": 0, "user": 0, "type": "payment", "status": "confirmed",
                      "amount": Decimal("2.5"), "token": False, "refund_of": None}])
    conn.execute("ALTER TABLE agent_stats DISABLE TRIGGER USER")
    conn.execute("UPDATE agent_stats SET total_earnings = 99, hire_count = 7")
    conn.execute("ALTER TABLE agent_stats ENABLE TRIGGER USER")
    assert conn.execute("SELECT recompute_agent_stats()").fetchone() == (AGENTS,)
    assert_invariants(conn)
