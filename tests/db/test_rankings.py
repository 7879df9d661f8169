"""Leaderboard rankings on a small world whose every score was computed by hand.

Four agents, two domains, tasks / reviews / transactions placed 1 hour, 3 days, 20 days
and 100 days ago, so each period sees a different slice. The expected boards below are
literal numbers; the arithmetic is in the comments, from the rules in
sql/0006_leaderboard_refresh.sql:
  score = 0.4 success + 0.3 tasks + 0.2 rating + 0.1 earnings   (rounded to 2 decimals)
  success  = 100 x completed / (completed + failed), 2 decimals (0 with no outcome)
  tasks    = 100 x (rank - 1) / (n - 1) of completed count, ascending, ties share the lowest
  rating   = (round((sum + 15) / (count + 5), 2) - 1) x 25   (no review: 3.00 -> 50)
  earnings = 100 x (rank - 1) / (n - 1) of SOL earned, as for tasks
Ties: score desc, completed desc, earned desc, agent slug.

Also here: the swap is atomic and does not block readers, refreshes are serialized,
agents leaving a domain leave its board, the views serve the seed's queries from
indexes, and the `rank` command.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pytest
from psycopg import errors

from tests.db.test_schema import make_agent, make_user, signature

USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
D1, D2 = 1, 2  # Code Debugging, Content Creation

# (period, domain or None, slug) -> (rank, score, total_agents_in_domain)
Board = dict[tuple[str, int | None, str], tuple[int, Decimal, int]]


def ago(what: str) -> str:
    return f"timezone('utc', now()) - interval '{what}'"


class World:
    """The scenario of the module docstring. Agents a, b, c, d (slugs agent-1..agent-4)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.a, self.b, self.c, self.d = (make_agent(conn, i) for i in range(1, 5))
        self.user = make_user(conn, 1)
        self.sig = 0
        for agent, domain in ((self.a, D1), (self.b, D1), (self.c, D1), (self.c, D2), (self.d, D2)):
            conn.execute("INSERT INTO agent_domains (agent_id, domain_id) VALUES (%s, %s)", (agent, domain))
        # Tasks (outcome time = completed_at, else started_at, else created_at)
        self.task(self.a, "completed", completed=ago("1 hour"))
        self.task(self.a, "completed", completed=ago("3 days"))
        self.task(self.a, "failed", completed=ago("20 days"))
        self.task(self.a, "completed", completed=ago("100 days"))
        self.task(self.b, "completed", completed=ago("3 days"))
        self.task(self.b, "failed", started=ago("1 hour"))  # no completed_at: started_at counts
        self.task(self.c, "completed", completed=ago("100 days"))
        self.task(self.c, "completed", completed=ago("100 days"))
        self.task(self.d, "pending")                          # no outcome: never counts
        self.task(self.d, "cancelled", completed=ago("1 hour"))  # cancelled: never counts
        # Reviews
        self.review(self.a, 5, ago("1 hour"))
        self.review(self.a, 4, ago("20 days"))
        self.review(self.b, 1, ago("3 days"))
        for _ in range(3):
            self.review(self.c, 5, ago("100 days"))
        # Transactions (SOL unless a mint is given; only confirmed/refunded count)
        self.tx(self.a, "payment", "confirmed", "2", ago("3 days"))
        self.tx(self.a, "payment", "pending", "1", ago("1 hour"))      # pending: not earned
        self.tx(self.b, "payment", "confirmed", "10", ago("1 hour"))
        self.tx(self.b, "refund", "confirmed", "3", ago("20 days"))     # refund: -3
        self.tx(self.c, "funding", "confirmed", "1", ago("100 days"))
        self.tx(self.c, "payment", "confirmed", "500", ago("1 hour"), mint=USDC)  # token: not SOL
        self.tx(self.d, "subscription", "confirmed", "0.5", ago("20 days"))

    def task(self, agent: uuid.UUID, status: str, *, completed: str = "NULL", started: str = "NULL") -> None:
        self.conn.execute(f"INSERT INTO tasks (agent_id, user_id, title, description, status, started_at,"
                          f" completed_at) VALUES (%s, %s, 't', 'd', %s, {started}, {completed})",
                          (agent, self.user, status))

    def review(self, agent: uuid.UUID, rating: int, when: str) -> None:
        self.conn.execute(f"INSERT INTO reviews (agent_id, user_id, rating, created_at)"
                          f" VALUES (%s, %s, %s, {when})", (agent, self.user, rating))

    def tx(self, agent: uuid.UUID, kind: str, status: str, amount: str, when: str, mint: str | None = None
           ) -> None:
        self.sig += 1
        self.conn.execute(
            f"INSERT INTO transactions (agent_id, user_id, transaction_signature, amount, transaction_type,"
            f" status, created_at, mint, decimals) VALUES (%s, %s, %s, %s, %s, %s, {when}, %s, %s)",
            (agent, self.user, signature(self.sig), Decimal(amount), kind, status, mint,
             6 if mint else None))


def board(conn: psycopg.Connection, period: str | None = None) -> Board:
    rows = conn.execute(
        "SELECT lr.period, lr.domain_id, a.agent_id, lr.rank, lr.score, lr.total_agents_in_domain"
        " FROM leaderboard_rankings lr JOIN agents a ON a.id = lr.agent_id"
        " WHERE %s::text IS NULL OR lr.period = %s", (period, period)).fetchall()
    return {(p, d, s): (r, sc, n) for p, d, s, r, sc, n in rows}


def expected(rows: list[tuple[str, int | None, str, int, str, int]]) -> Board:
    return {(p, d, s): (r, Decimal(sc), n) for p, d, s, r, sc, n in rows}


A, B, C, D = "agent-1", "agent-2", "agent-3", "agent-4"

# Components per period (S success, T completed, R rating, E earned) -- by hand:
#   daily    A: 1 done          S 100    R (5+15)/6 = 3.33 -> 58.25   E 0 (the 1 SOL is pending)
#            B: 1 failed        S 0      R 50 (no review)             E 10
#            C, D: nothing      S 0      R 50                          E 0 (USDC is not SOL)
#   weekly   A: 2 done          S 100    R 58.25                       E 2
#            B: 1 done 1 failed S 50     R (1+15)/6 = 2.67 -> 41.75    E 10
#            C, D               S 0      R 50                          E 0
#   monthly  A: 2 done 1 failed S 66.67  R (9+15)/7 = 3.43 -> 60.75    E 2
#            B                  S 50     R 41.75                       E 10 - 3 = 7
#            C                  S 0      R 50                          E 0
#            D                  S 0      R 50                          E 0.5
#   all_time A: 3 done 1 failed S 75     R 60.75                       E 2
#            B                  S 50     R 41.75                       E 7
#            C: 2 done          S 100    R (15+15)/8 = 3.75 -> 68.75   E 1
#            D                  S 0      R 50                          E 0.5
EXPECTED = expected([
    # daily, overall (n=4): T ranks B=C=D 0 -> 0, A -> 100; E ranks A=C=D 0 -> 0, B -> 100
    ("daily", None, A, 1, "81.65", 4),   # 40 + 30 + 11.65 + 0
    ("daily", None, B, 2, "20.00", 4),   # 0 + 0 + 10 + 10
    ("daily", None, C, 3, "10.00", 4),   # 0 + 0 + 10 + 0; ties with D: slug agent-3 < agent-4
    ("daily", None, D, 4, "10.00", 4),
    # daily, domain 1 (A, B, C; n=3): same ranks by the same components
    ("daily", D1, A, 1, "81.65", 3),
    ("daily", D1, B, 2, "20.00", 3),
    ("daily", D1, C, 3, "10.00", 3),
    # daily, domain 2 (C, D; n=2): both all-zero -> 10, slug order
    ("daily", D2, C, 1, "10.00", 2),
    ("daily", D2, D, 2, "10.00", 2),
    # weekly, overall: T C=D 0 -> 0, B 1 -> 2/3, A 2 -> 1; E C=D -> 0, A 2 -> 2/3, B 10 -> 1
    ("weekly", None, A, 1, "88.32", 4),  # 40 + 30 + 11.65 + 6.666.. = 88.3166..
    ("weekly", None, B, 2, "58.35", 4),  # 20 + 20 + 8.35 + 10
    ("weekly", None, C, 3, "10.00", 4),
    ("weekly", None, D, 4, "10.00", 4),
    # weekly, domain 1: T C -> 0, B -> 1/2, A -> 1; E C -> 0, A -> 1/2, B -> 1
    ("weekly", D1, A, 1, "86.65", 3),    # 40 + 30 + 11.65 + 5
    ("weekly", D1, B, 2, "53.35", 3),    # 20 + 15 + 8.35 + 10
    ("weekly", D1, C, 3, "10.00", 3),
    ("weekly", D2, C, 1, "10.00", 2),
    ("weekly", D2, D, 2, "10.00", 2),
    # monthly, overall: T C=D -> 0, B -> 2/3, A -> 1; E C 0 -> 0, D 0.5 -> 1/3, A 2 -> 2/3, B 7 -> 1
    ("monthly", None, A, 1, "75.48", 4),  # 26.668 + 30 + 12.15 + 6.666.. = 75.4846..
    ("monthly", None, B, 2, "58.35", 4),  # 20 + 20 + 8.35 + 10
    ("monthly", None, D, 3, "13.33", 4),  # 0 + 0 + 10 + 3.333..
    ("monthly", None, C, 4, "10.00", 4),
    # monthly, domain 1: T C -> 0, B -> 1/2, A -> 1; E C -> 0, A -> 1/2, B -> 1
    ("monthly", D1, A, 1, "73.82", 3),   # 26.668 + 30 + 12.15 + 5 = 73.818
    ("monthly", D1, B, 2, "53.35", 3),   # 20 + 15 + 8.35 + 10
    ("monthly", D1, C, 3, "10.00", 3),
    # monthly, domain 2: T both 0 -> 0; E C 0 -> 0, D 0.5 -> 1
    ("monthly", D2, D, 1, "20.00", 2),   # 0 + 0 + 10 + 10
    ("monthly", D2, C, 2, "10.00", 2),
    # all_time, overall: T D 0 -> 0, B 1 -> 1/3, C 2 -> 2/3, A 3 -> 1;
    #                    E D 0.5 -> 0, C 1 -> 1/3, A 2 -> 2/3, B 7 -> 1
    ("all_time", None, A, 1, "78.82", 4),  # 30 + 30 + 12.15 + 6.666.. = 78.8166..
    ("all_time", None, C, 2, "77.08", 4),  # 40 + 20 + 13.75 + 3.333.. = 77.0833..
    ("all_time", None, B, 3, "48.35", 4),  # 20 + 10 + 8.35 + 10
    ("all_time", None, D, 4, "10.00", 4),
    # all_time, domain 1: T B -> 0, C -> 1/2, A -> 1; E C -> 0, A -> 1/2, B -> 1
    ("all_time", D1, A, 1, "77.15", 3),  # 30 + 30 + 12.15 + 5
    ("all_time", D1, C, 2, "68.75", 3),  # 40 + 15 + 13.75 + 0
    ("all_time", D1, B, 3, "38.35", 3),  # 20 + 0 + 8.35 + 10
    # all_time, domain 2: T D -> 0, C -> 1; E D -> 0, C -> 1
    ("all_time", D2, C, 1, "93.75", 2),  # 40 + 30 + 13.75 + 10
    ("all_time", D2, D, 2, "10.00", 2),
])


@pytest.fixture
def world(conn: psycopg.Connection) -> World:
    return World(conn)


def test_hand_computed_boards_match_exactly(conn: psycopg.Connection, world: World) -> None:
    written = conn.execute("SELECT update_leaderboard_rankings()").fetchone()
    assert written == (len(EXPECTED),)
    assert board(conn) == EXPECTED
    refreshed = conn.execute("SELECT period, board_rows FROM leaderboard_refreshes ORDER BY period"
                             ).fetchall()
    assert refreshed == [("all_time", 9), ("daily", 9), ("monthly", 9), ("weekly", 9)]


def test_one_period_refreshes_only_that_period(conn: psycopg.Connection, world: World) -> None:
    assert conn.execute("SELECT update_leaderboard_rankings('weekly')").fetchone() == (9,)
    assert board(conn) == {k: v for k, v in EXPECTED.items() if k[0] == "weekly"}
    for period in ("daily", "monthly", "all_time"):
        conn.execute("SELECT update_leaderboard_rankings(%s)", (period,))
    assert board(conn) == EXPECTED


def test_repeat_refresh_rewrites_only_what_changed(conn: psycopg.Connection, world: World) -> None:
    conn.execute("SELECT update_leaderboard_rankings()")
    before = dict(conn.execute("SELECT ctid::text, agent_id FROM leaderboard_rankings").fetchall())
    conn.execute("SELECT update_leaderboard_rankings()")
    after = dict(conn.execute("SELECT ctid::text, agent_id FROM leaderboard_rankings").fetchall())
    assert after == before  # nothing changed: not one row rewritten
    # D earns 100 SOL now: D tops every earnings component; boards change accordingly.
    world.tx(world.d, "payment", "confirmed", "100", ago("1 minute"))
    conn.execute("SELECT update_leaderboard_rankings()")
    daily_d2 = board(conn, "daily")
    # daily, domain 2: E C 0 -> 0, D 100 -> 1: D = 10 + 10 = 20.00 first, C 10.00
    assert (daily_d2[("daily", D2, D)], daily_d2[("daily", D2, C)]) == (
        (1, Decimal("20.00"), 2), (2, Decimal("10.00"), 2))
    assert board(conn) != EXPECTED


def test_unknown_period_is_refused(conn: psycopg.Connection) -> None:
    with pytest.raises(errors.InvalidParameterValue, match="unknown leaderboard period"):
        conn.execute("SELECT update_leaderboard_rankings('hourly')")


def test_agents_leaving_a_domain_leave_its_board(conn: psycopg.Connection, world: World) -> None:
    conn.execute("SELECT update_leaderboard_rankings()")
    conn.execute("DELETE FROM agent_domains WHERE agent_id = %s AND domain_id = %s", (world.b, D1))
    conn.execute("SELECT update_leaderboard_rankings()")
    now = board(conn)
    assert not [k for k in now if k[1] == D1 and k[2] == B]
    assert {v[2] for k, v in now.items() if k[1] == D1} == {2}  # total_agents_in_domain follows
    assert sorted(v[0] for k, v in now.items() if k[:2] == ("all_time", D1)) == [1, 2]
    assert len(now) == len(EXPECTED) - 4


def test_swap_is_atomic_and_readers_are_never_blocked(db_url: str, conn: psycopg.Connection,
                                                      world: World) -> None:
    conn.execute("SELECT update_leaderboard_rankings()")
    world.tx(world.d, "payment", "confirmed", "100", ago("1 minute"))  # changes every board
    with psycopg.connect(db_url) as refresher, psycopg.connect(db_url, autocommit=True) as reader, \
            psycopg.connect(db_url, autocommit=True) as other:
        refresher.execute("SELECT update_leaderboard_rankings('daily')")  # open transaction
        reader.execute("SET lock_timeout = '200ms'")
        # A reader sees the whole previous board, for the period being refreshed and the others.
        assert board(reader) == EXPECTED
        # A second refresh waits for the first (here: gives up after 200 ms).
        other.execute("SET lock_timeout = '200ms'")
        with pytest.raises(errors.LockNotAvailable):
            other.execute("SELECT update_leaderboard_rankings('weekly')")
        refresher.commit()
        after = board(reader)
        assert after != EXPECTED
        assert {k: v for k, v in after.items() if k[0] != "daily"} == {
            k: v for k, v in EXPECTED.items() if k[0] != "daily"}
        other.execute("SELECT update_leaderboard_rankings('weekly')")  # free again


def test_rows_cascade_deleted_during_a_refresh_stay_deleted(db_url: str, conn: psycopg.Connection,
                                                           world: World) -> None:
    """The refresh writes the rows its diff saw; a row deleted meanwhile (ON DELETE CASCADE
    from domains here) is skipped, not resurrected nor written over."""
    conn.execute("SELECT update_leaderboard_rankings()")
    world.tx(world.d, "payment", "confirmed", "100", ago("1 minute"))  # moves the domain 2 boards
    failures: list[BaseException] = []
    with psycopg.connect(db_url) as deleter, psycopg.connect(db_url, autocommit=True) as refresher:
        deleter.execute("DELETE FROM domains WHERE id = %s", (D2,))  # uncommitted: its board rows locked

        def refresh() -> None:
            try:
                refresher.execute("SELECT update_leaderboard_rankings()")
            except BaseException as exc:
                failures.append(exc)

        thread = threading.Thread(target=refresh)
        thread.start()
        deadline = time.monotonic() + 30
        # The refresh computed the board with domain 2 in it and now waits to update its rows.
        while conn.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s",
                           (refresher.info.backend_pid,)).fetchone() != ("Lock",):
            assert time.monotonic() < deadline, "the refresh never waited for the deleting transaction"
            time.sleep(0.01)
        deleter.commit()
        thread.join(timeout=60)
    assert not failures
    after = board(conn)
    assert {k[1] for k in after} == {None, D1}  # domain 2's boards are gone, the others there
    conn.execute("SELECT update_leaderboard_rankings()")  # nothing else was missed
    assert board(conn) == after


def test_concurrent_full_refreshes_serialize_and_agree(db_url: str, conn: psycopg.Connection,
                                                       world: World) -> None:
    failures: list[BaseException] = []

    def refresh() -> None:
        try:
            with psycopg.connect(db_url, autocommit=True) as own:
                for _ in range(5):
                    own.execute("SELECT update_leaderboard_rankings()")
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=refresh) for _ in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(20):  # while they run, every read is one whole, consistent board
        assert board(conn) in ({}, EXPECTED)
    for thread in threads:
        thread.join(timeout=60)
    assert not failures
    assert board(conn) == EXPECTED


def test_top_100_and_profile_read_from_indexes(conn: psycopg.Connection, world: World) -> None:
    conn.execute("SELECT update_leaderboard_rankings()")
    conn.execute("ANALYZE")
    conn.execute("SET enable_seqscan = off")  # a 4-agent table is otherwise cheapest to scan
    top = conn.execute("SELECT agent_slug, rank, score, domains FROM v_agent_leaderboard"
                       " WHERE domain_id = %s AND period = %s ORDER BY rank LIMIT 100",
                       (D1, "all_time")).fetchall()
    assert top == [(A, 1, Decimal("77.15"), ["Code Debugging"]),
                   (C, 2, Decimal("68.75"), ["Code Debugging", "Content Creation"]),
                   (B, 3, Decimal("38.35"), ["Code Debugging"])]
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT * FROM v_agent_leaderboard WHERE domain_id = 1 AND period = 'daily'"
        " ORDER BY rank LIMIT 100").fetchall())
    assert "idx_leaderboard_rank" in plan
    assert "Sort" not in plan.split("SubPlan")[0]
    overall = conn.execute("SELECT agent_slug FROM v_agent_leaderboard WHERE domain_id IS NULL"
                           " AND period = 'all_time' ORDER BY rank LIMIT 100").fetchall()
    assert overall == [(A,), (C,), (B,), (D,)]
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN SELECT * FROM v_agent_leaderboard WHERE domain_id IS NULL AND period = 'daily'"
        " ORDER BY rank LIMIT 100").fetchall())
    assert "idx_leaderboard_overall_rank" in plan
    assert "Sort" not in plan.split("SubPlan")[0]
    conn.execute("RESET enable_seqscan")


def test_profile_view_has_the_full_profile(conn: psycopg.Connection, world: World) -> None:
    conn.execute("SELECT update_leaderboard_rankings()")
    skill = conn.execute("INSERT INTO skills (name, category) VALUES ('Rust', 'lang') RETURNING id"
                         ).fetchone()
    assert skill is not None
    conn.execute("INSERT INTO agent_skills (agent_id, skill_id, level, years_experience)"
                 " VALUES (%s, %s, 'expert', 3)", (world.c, skill[0]))
    conn.execute("INSERT INTO agent_pricing (agent_id, hourly_rate) VALUES (%s, 0.25)", (world.c,))
    conn.execute("INSERT INTO credentials (agent_id, title) VALUES (%s, 'Audit')", (world.c,))
    conn.execute("INSERT INTO achievements (agent_id, title) VALUES (%s, 'First 100')", (world.c,))
    conn.execute("INSERT INTO agent_followers (user_id, agent_id) VALUES (%s, %s)", (world.user, world.c))
    row = conn.execute(
        "SELECT name, hourly_rate, tasks_completed, review_count, rating, total_earnings, domains, skills,"
        " credentials, achievements, follower_count, overall_rank, overall_score, overall_board_size"
        " FROM v_agent_profiles WHERE agent_id = %s", (C,)).fetchone()
    assert row is not None
    (name, rate, done, reviews, rating, earned, domains, skills, creds, achievements, followers,
     rank, score, size) = row
    assert (name, rate, done, reviews, rating, earned) == (
        "Agent 3", Decimal("0.25"), 2, 3, Decimal("3.75"), Decimal("1"))
    assert [d["name"] for d in domains] == ["Code Debugging", "Content Creation"]
    assert [(s["name"], s["level"]) for s in skills] == [("Rust", "expert")]
    assert [c["title"] for c in creds] == ["Audit"]
    assert [h["title"] for h in achievements] == ["First 100"]
    assert (followers, rank, score, size) == (1, 2, Decimal("77.08"), 4)
    bare = conn.execute("SELECT domains, skills, overall_rank FROM v_agent_profiles WHERE agent_id = %s",
                        (D,)).fetchone()
    assert bare == ([{"id": D2, "name": "Content Creation", "icon": "\u270d\ufe0f", "is_primary": False,
                      "proficiency_level": None}], [], 4)


def test_indexer_role_refreshes_through_the_function(conn: psycopg.Connection, world: World) -> None:
    conn.execute("SET ROLE amoca_indexer")
    try:
        conn.execute("SELECT update_leaderboard_rankings('daily')")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("DELETE FROM leaderboard_rankings")
        seen = conn.execute("SELECT count(*) FROM leaderboard_refreshes").fetchone()
    finally:
        conn.execute("RESET ROLE")
    assert seen == (1,)
    assert board(conn) == {k: v for k, v in EXPECTED.items() if k[0] == "daily"}


def test_rank_command_refreshes_one_period(db_url: str, conn: psycopg.Connection, world: World) -> None:
    conn.commit()  # no snapshot of ours may hold back the VACUUM below
    done = subprocess.run([sys.executable, "-m", "indexer", "rank", "--period", "monthly",
                           "--database-url", db_url], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert "monthly   9 ranking rows: 4 agents overall, 2 domain boards" in done.stdout
    assert board(conn) == {k: v for k, v in EXPECTED.items() if k[0] == "monthly"}
    # The board was vacuumed (the test's role owns it). The statistics arrive when the
    # command's backend has gone: re-read until they do.
    assert "board vacuumed in" in done.stdout
    deadline = time.monotonic() + 30
    while not (row := conn.execute("SELECT pg_stat_clear_snapshot(), vacuum_count FROM pg_stat_user_tables"
                                   " WHERE relname = 'leaderboard_rankings'").fetchone()) or not row[1]:
        assert time.monotonic() < deadline, "no vacuum of leaderboard_rankings in the statistics"
        time.sleep(0.05)


def test_rank_command_as_a_role_that_may_not_vacuum_leaves_the_board_to_autovacuum(
        indexer_login_url: str, conn: psycopg.Connection, world: World) -> None:
    """A login holding only amoca_indexer (and, on PostgreSQL 17+, not MAINTAIN either:
    an operator's choice) refreshes the board and says it did not vacuum it, with no
    warning and exit status 0."""
    conn.execute("""DO $$ BEGIN
        IF current_setting('server_version_num')::int >= 170000 THEN
            EXECUTE 'REVOKE MAINTAIN ON leaderboard_rankings FROM amoca_indexer';
        END IF; END $$""")
    done = subprocess.run([sys.executable, "-m", "indexer", "rank", "--database-url", indexer_login_url],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "board left to autovacuum: this role may not VACUUM it" in done.stdout
    assert "vacuumed" not in done.stdout
    assert "WARNING" not in done.stderr
    assert "Traceback" not in done.stderr
    assert board(conn) == EXPECTED


def test_rank_command_refuses_an_unknown_period(db_url: str) -> None:
    done = subprocess.run([sys.executable, "-m", "indexer", "rank", "--period", "hourly",
                           "--database-url", db_url], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Invalid value for '--period'" in lines[-1]
    assert "Traceback" not in done.stderr
