"""Daemon latency: notification received → row committed, at a fixed send rate, with many
watched wallets (most of them idle agents registered only to be subscribed).

    .venv/bin/python tests/bench/bench_daemon.py [watched_wallets] [rate] [count]

The daemon runs in this process; the local cluster and the workload run in their own
processes (`amoca-indexer localnet`, `amoca-indexer workload`), so the CPU time and RSS
printed are the daemon's alone. They still share the machine's two cores with it.
Latency comes from the daemon's own `amoca_indexer_ingest_latency_seconds{source="live"}`
histogram (bucket-interpolated).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psycopg
from benchdb import postgres, separate_cluster  # a sibling module: benchmarks run as scripts from this folder
from solders.keypair import Keypair

from indexer.config import load_settings
from indexer.daemon import Daemon
from indexer.db import migrations


def quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """From cumulative (upper bound, count) pairs, linear within the bucket."""
    total = buckets[-1][1]
    target = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in buckets:
        if cumulative >= target:
            if upper == float("inf"):
                return lower
            share = (target - below) / (cumulative - below) if cumulative > below else 0.0
            return lower + (upper - lower) * share
        lower, below = upper, cumulative
    return lower


def live_buckets(daemon: Daemon) -> list[tuple[float, float]]:
    found = []
    for family in daemon.registry.collect():
        for sample in family.samples:
            if sample.name == "amoca_indexer_ingest_latency_seconds_bucket" \
                    and sample.labels.get("source") == "live":
                found.append((float(sample.labels["le"]), sample.value))
    return sorted(found)


def register_idle_agents(url: str, count: int) -> None:
    wallets = [str(Keypair().pubkey()) for _ in range(count)]
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
            " SELECT 'idle-' || w, 'Idle', 'idle', 'idle', 'https://example.invalid/a.png', w"
            " FROM unnest(%s::text[]) AS w", (wallets,))


async def main(watched: int, rate: float, count: int) -> None:
    with postgres() as admin:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench_daemon")
        url = admin.replace("dbname=postgres", "dbname=bench_daemon") if "dbname=" in admin else \
            admin.rsplit("/", 1)[0] + "/bench_daemon"
        with psycopg.connect(url, autocommit=True) as conn:
            migrations.migrate(conn)
        register_idle_agents(url, max(0, watched - 5))
        async with separate_cluster() as (http_url, ws_url):
            settings = replace(load_settings(), rpc_urls=(http_url,), ws_url=ws_url, metrics_port=0)
            daemon = Daemon(settings, url, handle_signals=False)
            runner = asyncio.create_task(daemon.run())
            started = time.perf_counter()
            await daemon.active.wait()
            subscribed = 0.0
            for _ in range(6000):  # at most ten minutes
                subscribed = daemon.registry.get_sample_value("amoca_indexer_ws_subscriptions") or 0.0
                if subscribed >= watched - 5:
                    break
                await asyncio.sleep(0.1)
            print(f"{subscribed:.0f} subscriptions active in {time.perf_counter() - started:.1f} s")
            for _ in range(6000):  # steady state: the start-up gap-fill of every wallet is done
                if daemon.fill_backlog() == 0 and daemon.pipeline.backlog == 0:
                    break
                await asyncio.sleep(0.1)
            print(f"start-up gap-fill of every wallet done in {time.perf_counter() - started:.1f} s")
            cpu, wall = time.process_time(), time.perf_counter()
            with tempfile.TemporaryDirectory() as folder:
                workload = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "indexer", "--log-level", "warning", "workload",
                    "--rpc-url", http_url, "--rate", str(rate), "--count", str(count), "--agents", "5",
                    "--users", "20", "--seed", "21", "--database-url", url,
                    "--truth", str(Path(folder) / "truth.jsonl"), stdout=subprocess.DEVNULL)
                await workload.wait()
            await daemon.pipeline.wait_idle()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            buckets = live_buckets(daemon)
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM transactions").fetchone()
            rows = int(row[0]) if row else 0
            daemon.stopping.set()
            await runner
    observed = buckets[-1][1] if buckets else 0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"workload: {count} transfers at {rate:.0f} tx/s target; {rows} rows indexed; {wall:.1f} s wall")
    if observed:
        print(f"ingest latency (live, {observed:.0f} units): p50 {quantile(buckets, 0.5) * 1000:.1f} ms,"
              f" p99 {quantile(buckets, 0.99) * 1000:.1f} ms")
    print(f"daemon CPU: {cpu:.1f} s = {cpu / max(1, rows) * 1000:.2f} ms per indexed row; "
          f"daemon peak RSS {rss_mb:.0f} MiB (cluster and workload in other processes)")



if __name__ == "__main__":
    arguments = [*sys.argv[1:], "", "", ""]
    asyncio.run(main(int(arguments[0] or 10_000), float(arguments[1] or 500),
                     int(arguments[2] or 2000)))
