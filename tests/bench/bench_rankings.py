"""Leaderboard refresh and reads at marketplace scale.

    .venv/bin/python tests/bench/bench_rankings.py [--agents N] [--transactions N] [--tasks N]
                                                   [--reviews N] [--runs N]

Generates (server-side, deterministic) 10,000 agents in 1-3 of the ten domains,
1,000,000 transactions (SOL and USDC, every status, one whale agent), 200,000 tasks and
100,000 reviews spread over two years (denser lately), VACUUM ANALYZEs (as autovacuum
would), then measures in this process:

- the full refresh `update_leaderboard_rankings()` (all four periods, 40,000 board rows
  per period for the overall board plus the domain boards): the first one (empty board),
  then repeats with 1,000 new transactions, 100 new tasks and 50 new reviews committed
  before each (the steady state the daemon sees); medians, with the CPU time of the
  server backend that ran it (parallel workers not included): back to back, the worst
  case (autovacuum never gets to the board in between); then as the daemon's rankings
  runner does it, the board vacuumed after each refresh (the VACUUM timed apart);
- the baseline: the first version of the function (sql/0003_leaderboard.sql, renamed),
  same data, same process, so the ratio is meaningful on a noisy machine;
- the top-100 query of a domain board and of the overall board through v_agent_leaderboard,
  and the full profile by agents.agent_id through v_agent_profiles (client-side latency,
  median and p95 over many calls), against a `SELECT 1` round trip;
- EXPLAIN (ANALYZE, BUFFERS) of the hot statements (auto_explain for the ones inside the
  function).

PostgreSQL is embedded (non-durable) unless AMOCA_BENCH_DATABASE_URL names a server we
may create databases on. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from benchdb import (  # a sibling module: benchmarks run as scripts from this folder
    create_database,
    drop_database,
    postgres,
)
from psycopg import sql

from indexer.db import migrations

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"

# Every identifier and timestamp is a function of the row number: reruns see the same data.
GENERATE = """
INSERT INTO users (wallet_address)
SELECT 'User' || lpad(translate(i::text, '0', 'z'), 36, 'A') FROM generate_series(1::bigint, %(users)s) i;

INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address, verified)
SELECT 'agent-' || i, 'Agent ' || i, 'tagline', 'description', 'https://a.example/' || i || '.png',
       'Agnt' || lpad(translate(i::text, '0', 'z'), 36, 'B'), i %% 7 = 0
FROM generate_series(1::bigint, %(agents)s) i;

CREATE TEMP TABLE bench_agents AS
SELECT row_number() OVER (ORDER BY agent_id) AS n, id FROM agents;
CREATE UNIQUE INDEX ON bench_agents (n);
CREATE TEMP TABLE bench_users AS SELECT row_number() OVER (ORDER BY wallet_address) AS n, id FROM users;
CREATE UNIQUE INDEX ON bench_users (n);

INSERT INTO agent_domains (agent_id, domain_id, is_primary, proficiency_level)
SELECT a.id, 1 + (a.n * 7 + k * 3) %% 10, k = 0, 1 + (a.n + k) %% 5
FROM bench_agents a CROSS JOIN generate_series(0, 2) k
WHERE k <= a.n %% 3;

-- age in days: squared uniform, so recent days are denser (about 60 rows a day at 1M/2y
-- would be flat; this gives the daily board real work)
INSERT INTO tasks (agent_id, user_id, title, description, status, created_at, started_at, completed_at)
SELECT a.id, u.id, 'task ' || i, 'd',
       (ARRAY['completed', 'completed', 'completed', 'failed', 'cancelled', 'in_progress',
              'pending', 'completed'])[1 + i %% 8],
       ts - interval '2 hours', ts - interval '1 hour',
       CASE WHEN i %% 8 IN (0, 1, 2, 3, 7) THEN ts END
FROM generate_series(1::bigint, %(tasks)s) i
CROSS JOIN LATERAL (SELECT timezone('utc', now())
                           - (730 * power(((i * 7919) %% 100003) / 100003.0, 2)) * interval '1 day' AS ts) t
JOIN bench_agents a ON a.n = 1 + (i * 31 + (i / 7)) %% %(agents)s
JOIN bench_users u ON u.n = 1 + i %% %(users)s;

INSERT INTO reviews (agent_id, user_id, rating, created_at)
SELECT a.id, u.id, 1 + ((i * 13) %% 97) %% 5,
       timezone('utc', now()) - (730 * power(((i * 6007) %% 100019) / 100019.0, 2)) * interval '1 day'
FROM generate_series(1::bigint, %(reviews)s) i
JOIN bench_agents a ON a.n = 1 + (i * 17 + (i / 11)) %% %(agents)s
JOIN bench_users u ON u.n = 1 + i %% %(users)s;

INSERT INTO transactions (transaction_signature, agent_id, user_id, amount, transaction_type, status,
                          created_at, slot, mint, decimals)
SELECT 'Sig' || lpad(translate(i::text, '0', 'z'), 60, 'C'),
       CASE WHEN i %% 50 = 0 THEN (SELECT id FROM bench_agents WHERE n = 1)  -- the whale
            ELSE a.id END,
       u.id,
       CASE WHEN i %% 50 = 0 THEN 1000 ELSE ((i * 104729) %% 10007) / 1000.0 END,
       k.kind,
       CASE WHEN k.kind = 'refund' AND k.status = 'refunded' THEN 'confirmed' ELSE k.status END,
       timezone('utc', now()) - (730 * power(((i * 7907) %% 1000003) / 1000003.0, 2)) * interval '1 day',
       i, CASE WHEN i %% 20 = 0 THEN 'EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v' END,
       CASE WHEN i %% 20 = 0 THEN 6 END
FROM generate_series(1::bigint, %(transactions)s) i
CROSS JOIN LATERAL (SELECT
    (ARRAY['funding', 'payment', 'payment', 'payment', 'subscription', 'refund'])[1 + i %% 6] AS kind,
    (ARRAY['confirmed', 'confirmed', 'confirmed', 'confirmed', 'confirmed', 'confirmed',
           'confirmed', 'pending', 'failed', 'refunded'])[1 + (i / 6) %% 10] AS status) k
JOIN bench_agents a ON a.n = 1 + (i * 37 + (i / 13)) %% %(agents)s
JOIN bench_users u ON u.n = 1 + i %% %(users)s;
"""

# What the marketplace adds between two refreshes.
TRAFFIC = """
INSERT INTO transactions (transaction_signature, agent_id, amount, transaction_type, status, created_at)
SELECT 'Live' || translate(%(round)s::text, '0', 'z') || 'x' || lpad(translate(i::text, '0', 'z'), 40, 'D'),
       a.id, 0.5, 'payment', 'confirmed', timezone('utc', now())
FROM generate_series(1, 1000) i JOIN bench_agents a ON a.n = 1 + (i * 7 + %(round)s) %% %(agents)s;
INSERT INTO tasks (agent_id, title, description, status, completed_at)
SELECT a.id, 't', 'd', 'completed', timezone('utc', now())
FROM generate_series(1, 100) i JOIN bench_agents a ON a.n = 1 + (i * 11 + %(round)s) %% %(agents)s;
INSERT INTO reviews (agent_id, rating)
SELECT a.id, 5
FROM generate_series(1, 50) i JOIN bench_agents a ON a.n = 1 + (i * 13 + %(round)s) %% %(agents)s;
"""

COLUMNS = ("id, agent_slug, name, avatar_url, tasks_completed, success_rate, rating, domains, rank, score,"
           " total_agents_in_domain")
TOP_100 = (f"SELECT {COLUMNS} FROM v_agent_leaderboard"
           " WHERE domain_id = %s AND period = %s ORDER BY rank LIMIT 100")
TOP_100_OVERALL = (f"SELECT {COLUMNS} FROM v_agent_leaderboard"
                   " WHERE domain_id IS NULL AND period = %s ORDER BY rank LIMIT 100")
PROFILE = "SELECT * FROM v_agent_profiles WHERE agent_id = %s"
PERIODS = ("daily", "weekly", "monthly", "all_time")


def install_baseline(conn: psycopg.Connection) -> None:
    """The first version of the function, from its migration file, under another name."""
    text = (SQL_DIR / "0003_leaderboard.sql").read_text()
    start = text.index("CREATE FUNCTION update_leaderboard_rankings")
    body = text[start:text.index("END $$;") + len("END $$;")]
    body = body.replace("update_leaderboard_rankings(", "baseline_leaderboard_rankings(", 1)
    body = body.replace("hashtext('amoca.update_leaderboard_rankings')", "hashtext('amoca.bench.baseline')")
    body = body.replace("DELETE FROM leaderboard_rankings", "DELETE FROM baseline_rankings")
    body = body.replace("INSERT INTO leaderboard_rankings", "INSERT INTO baseline_rankings")
    conn.execute("CREATE TABLE baseline_rankings (LIKE leaderboard_rankings INCLUDING ALL)")
    conn.execute(body)


def server_cpu_seconds(conn: psycopg.Connection) -> float:
    """utime + stime of this connection's backend process, from /proc (same machine)."""
    row = conn.execute("SELECT pg_backend_pid()").fetchone()
    assert row is not None
    fields = Path(f"/proc/{row[0]}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = 100.0  # USER_HZ on Linux
    return (int(fields[11]) + int(fields[12])) / ticks


def timed_call(conn: psycopg.Connection, statement: str, params: Any = None) -> tuple[float, float]:
    cpu = server_cpu_seconds(conn)
    started = time.perf_counter()
    conn.execute(statement, params)
    wall = time.perf_counter() - started
    return wall, server_cpu_seconds(conn) - cpu


def latencies(conn: psycopg.Connection, statement: str, params: list[Any], repeat: int) -> list[float]:
    samples = []
    for i in range(repeat):
        started = time.perf_counter()
        conn.execute(statement, params[i % len(params)], prepare=True).fetchall()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"median {statistics.median(samples):.3f} ms, p95 {p95:.3f} ms"


def explain(conn: psycopg.Connection, statement: str, params: Any = None) -> str:
    rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, params).fetchall()
    return "\n".join(str(r[0]) for r in rows)


def auto_explain_refresh(conn: psycopg.Connection) -> list[str]:
    """The plans of the statements inside update_leaderboard_rankings(), with timings."""
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    conn.execute("LOAD 'auto_explain'")
    for setting, value in (("auto_explain.log_min_duration", "0"), ("auto_explain.log_analyze", "on"),
                           ("auto_explain.log_buffers", "on"), ("auto_explain.log_nested_statements", "on"),
                           ("auto_explain.log_timing", "on"), ("client_min_messages", "log")):
        conn.execute(sql.SQL("SET {} = {}").format(sql.Identifier(*setting.split(".")), sql.Literal(value)))
    conn.execute("SELECT update_leaderboard_rankings()")
    conn.execute("RESET client_min_messages")
    return [n for n in notices if n.startswith("duration")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=200_000)
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--explain", action="store_true", help="print the plans of the refresh's statements")
    args = parser.parse_args()

    with postgres() as admin:
        name = f"amoca_bench_rank_{uuid.uuid4().hex[:8]}"
        url = create_database(admin, name)
        try:
            run(url, args)
        finally:
            drop_database(admin, name)


def run(url: str, args: argparse.Namespace) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
        started = time.perf_counter()
        params = {"agents": args.agents, "users": max(1, args.agents * 2), "tasks": args.tasks,
                  "reviews": args.reviews, "transactions": args.transactions}
        with psycopg.ClientCursor(conn) as cur:  # several statements: bound client-side
            cur.execute(GENERATE, params)
        conn.execute("VACUUM ANALYZE")
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM agents), (SELECT count(*) FROM agent_domains),"
            " (SELECT count(*) FROM transactions), (SELECT count(*) FROM tasks),"
            " (SELECT count(*) FROM reviews)").fetchone()
        assert counts is not None
        print(f"generated {counts[0]:,} agents ({counts[1]:,} domain memberships),"
              f" {counts[2]:,} transactions, {counts[3]:,} tasks, {counts[4]:,} reviews"
              f" in {time.perf_counter() - started:.1f} s")
        install_baseline(conn)

        first_wall, first_cpu = timed_call(conn, "SELECT update_leaderboard_rankings()")
        rows = conn.execute("SELECT count(*) FROM leaderboard_rankings").fetchone()
        assert rows is not None
        print(f"first full refresh (empty board, {rows[0]:,} rows written): {first_wall:.3f} s wall,"
              f" {first_cpu:.2f} s server CPU")
        base_first, _ = timed_call(conn, "SELECT baseline_leaderboard_rankings()")

        ours_wall: list[float] = []
        ours_cpu: list[float] = []
        base_wall: list[float] = []
        base_cpu: list[float] = []
        for round_ in range(args.runs):
            with psycopg.ClientCursor(conn) as cur:
                cur.execute(TRAFFIC, {"round": round_, "agents": args.agents})
            wall, cpu = timed_call(conn, "SELECT update_leaderboard_rankings()")
            ours_wall.append(wall)
            ours_cpu.append(cpu)
            wall, cpu = timed_call(conn, "SELECT baseline_leaderboard_rankings()")
            base_wall.append(wall)
            base_cpu.append(cpu)
        # As the daemon's runner does it: VACUUM of the board after each refresh (its role
        # may; indexer/rankings.py), here timed apart, before the next traffic.
        vac_wall: list[float] = []
        vac_cpu: list[float] = []
        vacuum_wall: list[float] = []
        rewritten: list[int] = []
        for round_ in range(args.runs, args.runs + 3):
            vacuum_wall.append(timed_call(conn, "VACUUM leaderboard_rankings")[0])
            with psycopg.ClientCursor(conn) as cur:
                cur.execute(TRAFFIC, {"round": round_, "agents": args.agents})
            before = conn.execute("SELECT max(computed_at) FROM leaderboard_rankings").fetchone()
            wall, cpu = timed_call(conn, "SELECT update_leaderboard_rankings()")
            vac_wall.append(wall)
            vac_cpu.append(cpu)
            changed = conn.execute("SELECT count(*) FROM leaderboard_rankings WHERE computed_at > %s",
                                   (before[0] if before else None,)).fetchone()
            rewritten.append(int(changed[0]) if changed else 0)
        period_walls = {}
        for period in PERIODS:
            period_walls[period] = statistics.median(
                timed_call(conn, "SELECT update_leaderboard_rankings(%s)", (period,))[0] for _ in range(3))

        print(f"\nfull refresh, all four periods, after new traffic ({args.runs} runs):")
        print(f"  ours      median {statistics.median(ours_wall):.3f} s wall, back to back"
              f" (min {min(ours_wall):.3f}, max {max(ours_wall):.3f}),"
              f" {statistics.median(ours_cpu):.2f} s server CPU")
        print(f"  baseline  median {statistics.median(base_wall):.3f} s wall"
              f" (min {min(base_wall):.3f}, max {max(base_wall):.3f}),"
              f" {statistics.median(base_cpu):.2f} s server CPU  (first run {base_first:.3f} s)")
        print(f"  ratio     {statistics.median(base_wall) / statistics.median(ours_wall):.1f}x faster (wall),"
              f" {statistics.median(base_cpu) / max(1e-9, statistics.median(ours_cpu)):.1f}x less server CPU")
        print(f"  ours, as the daemon runs it (the board vacuumed after each refresh, the VACUUM"
              f" {statistics.median(vacuum_wall):.3f} s apart):"
              f" median {statistics.median(vac_wall):.3f} s wall,"
              f" {statistics.median(vac_cpu):.2f} s server CPU; rows rewritten per refresh {rewritten}")
        print("  one period: " + ", ".join(f"{p} {s:.3f} s" for p, s in period_walls.items()))

        domain_params = [(d, p) for d in range(1, 11) for p in PERIODS]
        overall_params = [(p,) for p in PERIODS]
        slugs = [(f"agent-{1 + (i * 97) % args.agents}",) for i in range(200)]
        latencies(conn, TOP_100, domain_params, 40)  # warm the plan cache and buffers
        baseline_ms = latencies(conn, "SELECT 1", [()], 400)
        top_ms = latencies(conn, TOP_100, domain_params, 400)
        overall_ms = latencies(conn, TOP_100_OVERALL, overall_params, 400)
        profile_ms = latencies(conn, PROFILE, slugs, 400)
        print("\nreads (client-side, prepared, 400 calls each):")
        print(f"  SELECT 1 round trip        {summary(baseline_ms)}")
        print(f"  top 100 of a domain board  {summary(top_ms)}")
        print(f"  top 100 of the overall     {summary(overall_ms)}")
        print(f"  full profile by agent_id   {summary(profile_ms)}")

        print("\nEXPLAIN (ANALYZE, BUFFERS) top 100, domain 3, weekly:")
        print(explain(conn, TOP_100, (3, "weekly")))
        print("\nEXPLAIN (ANALYZE, BUFFERS) top 100, overall, all_time:")
        print(explain(conn, TOP_100_OVERALL, ("all_time",)))
        print("\nEXPLAIN (ANALYZE, BUFFERS) profile of agent-42:")
        print(explain(conn, PROFILE, ("agent-42",)))
        if args.explain:
            print("\nauto_explain of one full refresh:")
            for plan in auto_explain_refresh(conn):
                print(re.sub(r"\n\s*\n", "\n", plan))
                print("-" * 80)


if __name__ == "__main__":
    main()
