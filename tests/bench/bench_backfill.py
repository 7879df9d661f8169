"""Backfill throughput: our path (the `backfill` command's pipeline) against the loop a
user writes first (solana-py `get_transaction` per signature, decode, one INSERT per row).

    .venv/bin/python tests/bench/bench_backfill.py [transactions]

Both run in this process on the same history, written by the workload to a local cluster
that runs in its own process (so its CPU is not counted as ours; it still shares the
machine's two cores). PostgreSQL is embedded
(non-durable) unless AMOCA_BENCH_DATABASE_URL names a server we may create databases on.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import replace
from typing import Any

import orjson
import psycopg
from benchdb import postgres, separate_cluster  # a sibling module: benchmarks run as scripts from this folder
from psycopg import conninfo, sql
from solana.rpc.async_api import AsyncClient
from solders.signature import Signature

from indexer.backfill import Range
from indexer.commands.backfill import _run as run_backfill_command
from indexer.config import load_settings
from indexer.db import migrations
from indexer.decode import decode_transaction
from indexer.localnet.workload import WorkloadConfig, run_workload
from indexer.rpc import RpcClient

RUNS = 3
BASELINE_SAMPLE = 600  # signatures per baseline run: it is sequential, its rate is flat

_INSERT = """
INSERT INTO transactions (transaction_signature, agent_id, user_id, amount, transaction_type, status,
                          created_at, slot, task_id, mint, decimals, refund_of, metadata)
SELECT %s, a.id, (SELECT id FROM users WHERE wallet_address = %s), %s, %s, %s,
       to_timestamp(%s) AT TIME ZONE 'utc', %s, (SELECT id FROM tasks WHERE id = %s), %s, %s, %s, %s
FROM agents a WHERE a.wallet_address = %s
ON CONFLICT (transaction_signature, agent_id) DO NOTHING
"""


def with_database(url: str, name: str) -> str:
    return conninfo.make_conninfo(url, dbname=name)


def create(admin: str, name: str, template: str | None = None) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(query)
    return with_database(admin, name)


def count_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM transactions").fetchone()
    assert row is not None
    return int(row[0])


async def ours(url: str, rpc_url: str, wallets: list[str]) -> tuple[float, int]:
    config = replace(load_settings(), rpc_urls=(rpc_url,))
    started = time.perf_counter()
    summary = await run_backfill_command(config, url, wallets, Range(), concurrency=4, batch_size=100,
                                         dry_run=False, show_progress=False)
    seconds = time.perf_counter() - started
    return seconds, int(summary["transactions_processed"])


async def signatures_of(rpc_url: str, wallets: list[str]) -> list[str]:
    async with RpcClient([rpc_url]) as rpc:
        accounts = await rpc.get_token_accounts_by_owner(wallets)
        found: dict[str, None] = {}
        for address in [*wallets, *(a for w in wallets for a in sorted(accounts[w]))]:
            async for page in rpc.iter_signatures(address):
                found.update((info.signature, None) for info in page)
    return list(found)


async def baseline(url: str, rpc_url: str, signatures: list[str], wallets: list[str]) -> tuple[float, int]:
    watched = frozenset(wallets)
    started = time.perf_counter()
    async with AsyncClient(rpc_url) as client:
        with psycopg.connect(url, autocommit=True) as conn:
            for signature in signatures:
                response = await client.get_transaction(Signature.from_string(signature),
                                                        encoding="json",
                                                        max_supported_transaction_version=0)
                assert response.value is not None
                raw: dict[str, Any] = orjson.loads(response.value.to_json())
                for row in decode_transaction(raw, watched).rows:
                    conn.execute(_INSERT, (
                        row.signature, row.counterparty_wallet, row.amount, row.transaction_type,
                        row.status, row.block_time, row.slot, row.task_id, row.mint, row.decimals,
                        row.refund_of, orjson.dumps(row.to_json_dict()).decode(), row.agent_wallet))
    return time.perf_counter() - started, len(signatures)


async def main(count: int) -> None:
    with postgres() as admin:
        template = f"bench_tpl_{uuid.uuid4().hex[:8]}"
        history_url = create(admin, template)
        with psycopg.connect(history_url, autocommit=True) as conn:
            migrations.migrate(conn)
        async with separate_cluster() as (http_url, _):
            started = time.perf_counter()
            summary = await run_workload(WorkloadConfig(
                rpc_url=http_url, rate=5000, count=count, agents=3, users=20, seed=9,
                database_url=history_url))
            print(f"history: {summary.sent} transactions, {summary.rows} rows, "
                  f"{len(summary.agent_wallets)} agents ({time.perf_counter() - started:.1f} s)")
            wallets = list(summary.agent_wallets)
            signatures = await signatures_of(http_url, wallets)
            sample = signatures[:BASELINE_SAMPLE]
            ours_rates, base_rates = [], []
            for run in range(RUNS):
                url = create(admin, f"bench_ours_{run}_{uuid.uuid4().hex[:6]}", template)
                seconds, processed = await ours(url, http_url, wallets)
                ours_rates.append(processed / seconds)
                print(f"  ours     run {run + 1}: {processed} tx in {seconds:.2f} s = "
                      f"{processed / seconds:,.0f} tx/s ({count_rows(url)} rows)")
                url = create(admin, f"bench_base_{run}_{uuid.uuid4().hex[:6]}", template)
                seconds, processed = await baseline(url, http_url, sample, wallets)
                base_rates.append(processed / seconds)
                print(f"  baseline run {run + 1}: {processed} tx in {seconds:.2f} s = "
                      f"{processed / seconds:,.0f} tx/s ({count_rows(url)} rows)")
    ours_median, base_median = statistics.median(ours_rates), statistics.median(base_rates)
    print(f"median of {RUNS}: ours {ours_median:,.0f} tx/s, baseline {base_median:,.0f} tx/s, "
          f"ratio {ours_median / base_median:.1f}x  (targets: >= 5,000 tx/s, >= 20x)")
    print(f"note: the local cluster runs in its own process; {os.cpu_count()} CPUs here")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3000))
