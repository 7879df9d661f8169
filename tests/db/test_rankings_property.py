"""Leaderboard properties on random marketplaces.

Hypothesis draws a few agents in random domains with random tasks, reviews and
transactions at random ages (each at least an hour away from a window boundary, so the
seconds a test takes cannot move a row across one). After a refresh:

- every board (period x domain, and the overall board) holds exactly its agents, ranks
  1..n without gaps, total_agents_in_domain = n;
- ranks follow score descending, ties ordered by completed desc, earned desc, slug;
- windows are respected and the whole board is what an independent model says: the
  model below recomputes every score from the drawn rows with exact fractions (rows are
  filtered by age in Python, not by SQL), and the board must equal it row for row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.db.test_schema import make_agent, make_user, signature

WINDOW_HOURS = {"daily": 24, "weekly": 24 * 7, "monthly": 24 * 30, "all_time": None}
# Ages in hours, each at least an hour from every window edge (24, 168, 720).
AGES = (1, 5, 23, 25, 72, 167, 169, 400, 719, 721, 2000, 9000)
DOMAINS = (1, 2, 3)
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"

task = st.tuples(st.sampled_from(("completed", "failed", "cancelled", "pending")), st.sampled_from(AGES))
review = st.tuples(st.integers(1, 5), st.sampled_from(AGES))
payment = st.tuples(st.sampled_from(("funding", "payment", "subscription", "refund")),
                    st.sampled_from(("confirmed", "pending", "failed")),
                    st.sampled_from((Decimal("0.5"), Decimal("1"), Decimal("2.25"), Decimal("40"))),
                    st.sampled_from(AGES), st.booleans())
agent = st.fixed_dictionaries({
    "domains": st.sets(st.sampled_from(DOMAINS), max_size=2),
    "tasks": st.lists(task, max_size=4),
    "reviews": st.lists(review, max_size=3),
    "payments": st.lists(payment, max_size=3),
})


@dataclass(frozen=True)
class Row:
    period: str
    domain: int | None
    slug: str
    rank: int
    score: Decimal
    total: int


def round2(value: Fraction) -> Decimal:
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def percentile(values: dict[str, Fraction], slug: str) -> Fraction:
    n = len(values)
    if n <= 1:
        return Fraction(0)
    below = sum(1 for v in values.values() if v < values[slug])
    return Fraction(100 * below, n - 1)


def model(agents: list[dict[str, Any]]) -> set[Row]:
    """Every board from the drawn rows, computed independently of the SQL."""
    slugs = [f"agent-{i + 1}" for i in range(len(agents))]
    rows: set[Row] = set()
    for period, hours in WINDOW_HOURS.items():
        def inside(age: int, hours: int | None = hours) -> bool:
            return hours is None or age < hours

        completed: dict[str, Fraction] = {}
        earned: dict[str, Fraction] = {}
        base: dict[str, Fraction] = {}
        for slug, a in zip(slugs, agents, strict=True):
            done = sum(1 for status, age in a["tasks"] if status == "completed" and inside(age))
            failed = sum(1 for status, age in a["tasks"] if status == "failed" and inside(age))
            success = round2(Fraction(100 * done, done + failed)) if done + failed else Decimal(0)
            ratings = [r for r, age in a["reviews"] if inside(age)]
            smoothed = round2(Fraction(sum(ratings) + 15, len(ratings) + 5))
            money = Fraction(0)
            for kind, status, amount, age, token in a["payments"]:
                if token or status != "confirmed" or not inside(age):
                    continue
                money += -Fraction(amount) if kind == "refund" else Fraction(amount)
            completed[slug] = Fraction(done)
            earned[slug] = money
            base[slug] = Fraction(4, 10) * Fraction(success) + Fraction(2, 10) * (Fraction(smoothed) - 1) * 25
        members: dict[int | None, list[str]] = defaultdict(list)
        for slug, a in zip(slugs, agents, strict=True):
            members[None].append(slug)
            for domain in a["domains"]:
                members[domain].append(slug)
        for domain, board in members.items():
            c = {s: completed[s] for s in board}
            e = {s: earned[s] for s in board}
            scores = {s: round2(base[s] + Fraction(3, 10) * percentile(c, s)
                                + Fraction(1, 10) * percentile(e, s)) for s in board}
            ordered = sorted(board, key=lambda s: (-scores[s], -c[s], -e[s], s))
            for rank, slug in enumerate(ordered, start=1):
                rows.add(Row(period, domain, slug, rank, scores[slug], len(board)))
    return rows


def load(conn: psycopg.Connection, agents: list[dict[str, Any]]) -> None:
    with conn.transaction():  # one commit per example
        _load(conn, agents)


def _load(conn: psycopg.Connection, agents: list[dict[str, Any]]) -> None:
    for table in ("leaderboard_rankings", "transactions", "reviews", "tasks", "agent_domains", "agents",
                  "users"):  # DELETE: on a handful of rows much cheaper than TRUNCATE
        conn.execute(f"DELETE FROM {table}")
    user = make_user(conn, 1)
    sig = 0
    for i, a in enumerate(agents):
        agent_id = make_agent(conn, i + 1)
        for domain in sorted(a["domains"]):
            conn.execute("INSERT INTO agent_domains (agent_id, domain_id) VALUES (%s, %s)",
                         (agent_id, domain))
        for status, age in a["tasks"]:
            conn.execute("INSERT INTO tasks (agent_id, title, description, status, completed_at)"
                         " VALUES (%s, 't', 'd', %s, timezone('utc', now()) - make_interval(hours => %s))",
                         (agent_id, status, age))
        for rating, age in a["reviews"]:
            conn.execute("INSERT INTO reviews (agent_id, rating, created_at)"
                         " VALUES (%s, %s, timezone('utc', now()) - make_interval(hours => %s))",
                         (agent_id, rating, age))
        for kind, status, amount, age, token in a["payments"]:
            sig += 1
            conn.execute(
                "INSERT INTO transactions (agent_id, user_id, transaction_signature, amount,"
                " transaction_type, status, created_at, mint, decimals) VALUES (%s, %s, %s, %s, %s, %s,"
                " timezone('utc', now()) - make_interval(hours => %s), %s, %s)",
                (agent_id, user, signature(sig), amount, kind, status, age, USDC if token else None,
                 6 if token else None))


def stored(conn: psycopg.Connection) -> set[Row]:
    return {Row(*r) for r in conn.execute(
        "SELECT lr.period, lr.domain_id, a.agent_id, lr.rank, lr.score, lr.total_agents_in_domain"
        " FROM leaderboard_rankings lr JOIN agents a ON a.id = lr.agent_id").fetchall()}


def assert_board_shape(rows: set[Row]) -> None:
    boards: dict[tuple[str, int | None], list[Row]] = defaultdict(list)
    for row in rows:
        boards[row.period, row.domain].append(row)
    for board in boards.values():
        board.sort(key=lambda r: r.rank)
        assert [r.rank for r in board] == list(range(1, len(board) + 1))
        assert {r.total for r in board} == {len(board)}
        scores = [r.score for r in board]
        assert scores == sorted(scores, reverse=True)


def test_boards_equal_the_model_on_random_marketplaces(conn: psycopg.Connection) -> None:
    @settings(max_examples=30, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.lists(agent, min_size=1, max_size=5), st.sampled_from(list(WINDOW_HOURS)))
    def check(agents: list[dict[str, Any]], period: str) -> None:
        load(conn, agents)
        conn.execute("SELECT update_leaderboard_rankings()")
        rows = stored(conn)
        assert_board_shape(rows)
        assert rows == model(agents)
        # Refreshing one period alone rebuilds the same board for it.
        conn.execute("DELETE FROM leaderboard_rankings WHERE period = %s", (period,))
        conn.execute("SELECT update_leaderboard_rankings(%s)", (period,))
        assert stored(conn) == rows

    check()


def test_an_old_task_does_not_count_in_shorter_windows(conn: psycopg.Connection) -> None:
    agents = [{"domains": {1}, "tasks": [("completed", 25)], "reviews": [], "payments": []},
              {"domains": {1}, "tasks": [], "reviews": [], "payments": []}]
    load(conn, agents)
    conn.execute("SELECT update_leaderboard_rankings()")
    rows = {(r.period, r.domain, r.slug): r.score for r in stored(conn)}
    # 25 h ago: outside daily (both agents 0 + 0 + 10 + 0 = 10.00), inside weekly
    # (agent-1: 40 + 30 + 10 = 80.00).
    assert rows["daily", 1, "agent-1"] == rows["daily", 1, "agent-2"] == Decimal("10.00")
    assert rows["weekly", 1, "agent-1"] == Decimal("80.00")
    assert rows == {(r.period, r.domain, r.slug): r.score for r in model(agents)}


def test_an_exact_half_hundredth_is_rounded_up(conn: psycopg.Connection) -> None:
    """113 agents on the overall board; agent-1 completed 1 task (one agent completed none)
    and earned 2 SOL (four agents earned nothing, the others 3 SOL), no review:
    40 + 10 + 30 x 1/112 + 10 x 4/112 = 50.625 exactly -> 50.63. Summing the two
    quotients as rounded decimals gives 50.6249999... -> 50.62 (sql/0008's header)."""
    agents: list[dict[str, Any]] = [
        {"domains": set(), "reviews": [],
         "tasks": [] if i == 113 else [("completed", 1)],
         "payments": [] if i >= 110 else [("payment", "confirmed", Decimal(2 if i == 1 else 3), 1, False)]}
        for i in range(1, 114)]
    load(conn, agents)
    conn.execute("SELECT update_leaderboard_rankings()")
    rows = stored(conn)
    assert {r.score for r in rows if r.slug == "agent-1"} == {Decimal("50.63")}
    assert rows == model(agents)
