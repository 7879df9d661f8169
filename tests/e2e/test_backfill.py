"""`amoca-indexer backfill` end to end: the CLI as a real process against the localnet and
PostgreSQL, on a history the workload wrote before any indexer ran.

Backfill writes rows as ``pending`` (or ``failed``); only the daemon's finality tracker
moves them on. A backfill-only database therefore equals the ground truth in every
column but status, and its status is ``failed`` exactly where the truth's is.

One history serves the whole module: the workload runs once against one localnet and
registers its agents, users and tasks in a database that every test copies.
"""

from __future__ import annotations

import asyncio
import base64
import re
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import psycopg
import pytest
import pytest_asyncio
from psycopg import conninfo, sql
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from indexer.backfill import ANCHOR_BLOCKS, Range
from indexer.commands.backfill import _run as run_backfill
from indexer.config import load_settings
from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet import workload_tx as txs
from indexer.localnet.workload import WorkloadConfig, run_workload
from indexer.rpc import RpcClient
from indexer.sink import WRITER_APPLICATION_NAME
from tests.e2e.harness import (
    database_rows,
    differences,
    eventually,
    eventually_async,
    expected_rows,
    metric_samples,
    running_daemon,
    stats_consistent,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=6, seed=5)
WORKLOAD = WorkloadConfig(rate=500, count=200, agents=5, users=8, seed=3)


@dataclass(frozen=True, slots=True)
class History:
    net: Localnet
    database: str  # holds the workload's agents, users and tasks (and nothing indexed)
    truth: tuple[dict[str, Any], ...]
    agents: tuple[str, ...]


def _url(admin_url: str, name: str) -> str:
    return conninfo.make_conninfo(admin_url, dbname=name)


def _create(admin_url: str, name: str, template: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)))


def _drop(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def history(pg_admin_url: str, migrated_template: str) -> AsyncIterator[History]:
    name = f"amoca_history_{uuid.uuid4().hex[:12]}"
    _create(pg_admin_url, name, migrated_template)
    try:
        async with Localnet(CLUSTER) as net:
            config = WorkloadConfig(**{**_fields(WORKLOAD), "rpc_url": net.http_url,
                                       "database_url": _url(pg_admin_url, name)})
            summary = await run_workload(config)
            yield History(net, name, summary.truth, summary.agent_wallets)
    finally:
        _drop(pg_admin_url, name)


def _fields(config: WorkloadConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in config.__slots__}


@pytest.fixture
def history_db(pg_admin_url: str, history: History) -> Iterator[str]:
    """A fresh copy of the history's database: registered agents, nothing indexed."""
    name = f"amoca_bf_{uuid.uuid4().hex[:12]}"
    _create(pg_admin_url, name, history.database)
    try:
        yield _url(pg_admin_url, name)
    finally:
        _drop(pg_admin_url, name)


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def summary(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.stdout)
        return parsed


def _args(url: str, rpc_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "indexer", "backfill", "--database-url", url,
            "--rpc-url", rpc_url, *args]


async def backfill(url: str, rpc_url: str, *args: str) -> Run:
    process = await asyncio.create_subprocess_exec(
        *_args(url, rpc_url, *args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode is not None
    return Run(process.returncode, out.decode(), err.decode())


def backfilled(truth: tuple[dict[str, Any], ...]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The truth as a backfill alone leaves it: every status pending but failures."""
    return {key: (user, type_, "failed" if status == "failed" else "pending", *rest)
            for key, (user, type_, status, *rest) in expected_rows(truth).items()}


def assert_equal(expected: dict[tuple[str, str], tuple[Any, ...]], url: str) -> None:
    problems = differences(expected, database_rows(url))
    assert not problems, "\n".join(problems[:15])


def _scalar(url: str, query: str) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]


def _progress(url: str) -> dict[str, tuple[bool, Any]]:
    with psycopg.connect(url) as conn:
        return {w: (d, u) for w, d, u in conn.execute(
            "SELECT wallet_address, done, updated_at FROM backfill_progress").fetchall()}


async def test_backfill_of_the_whole_history_equals_the_truth(history: History, history_db: str) -> None:
    run = await backfill(history_db, history.net.http_url, "--all", "--json")
    assert run.code == 0, run.stderr
    summary = run.summary()
    assert summary["wallets"] == len(history.agents)
    assert summary["token_accounts"] == len(history.agents)  # one USDC account each
    assert summary["wallets_failed"] == {}
    assert summary["dead_letters"] == {}
    assert_equal(backfilled(history.truth), history_db)
    # Progress is kept per address: every wallet and every token account is done.
    progress = _progress(history_db)
    assert len(progress) == 2 * len(history.agents)
    assert all(done for done, _ in progress.values())
    assert set(history.agents) <= set(progress)
    # Run again: nothing left to do, nothing written twice.
    again = await backfill(history_db, history.net.http_url, "--all", "--json")
    assert again.code == 0, again.stderr
    assert again.summary()["transactions_processed"] == 0
    assert_equal(backfilled(history.truth), history_db)
    # --restart: the whole range listed and fetched again (as after a decoder fix), every
    # row already there.
    restarted = await backfill(history_db, history.net.http_url, "--all", "--json", "--restart")
    assert restarted.code == 0, restarted.stderr
    redone = restarted.summary()
    assert (redone["signatures_scanned"], redone["transactions_processed"]) == (
        summary["signatures_scanned"], summary["transactions_processed"])
    assert (redone["rows_written_by_type_status"], redone["duplicates"]) == ({}, len(history.truth))
    assert_equal(backfilled(history.truth), history_db)
    assert all(done for done, _ in _progress(history_db).values())


async def test_one_wallet_brings_its_token_transfers(history: History, history_db: str) -> None:
    usdc = {r["agent_wallet"] for r in history.truth if r["mint"] is not None}
    wallet = sorted(usdc)[0]
    run = await backfill(history_db, history.net.http_url, "--wallet", wallet, "--json")
    assert run.code == 0, run.stderr
    mine = tuple(r for r in history.truth if r["agent_wallet"] == wallet)
    assert any(r["mint"] is not None for r in mine)
    assert_equal(backfilled(mine), history_db)


async def test_a_person_reads_a_summary_table_that_says_rows_wait_for_finality(
        history: History, history_db: str) -> None:
    """Without --json: the summary as a table, and a note that the rows written are
    pending until the daemon's finality tracker confirms them (a backfill into a fresh
    database shows no stats before that)."""
    wallet = sorted(history.agents)[0]
    run = await backfill(history_db, history.net.http_url, "--wallet", wallet)
    assert run.code == 0, run.stderr
    text = " ".join(run.stdout.split())  # the table wraps at the terminal's width
    assert "backfill summary" in text
    pending = _scalar(history_db, "SELECT count(*) FROM transactions WHERE status = 'pending'")
    assert pending > 0
    assert f"{pending} rows are pending: the daemon's finality tracker (amoca-indexer run) confirms" in text
    assert _scalar(history_db, "SELECT coalesce(sum(total_earnings), 0) FROM agent_stats") == 0


async def started_and_past_a_first_address(url: str, rpc_url: str, batch_size: int
                                           ) -> asyncio.subprocess.Process:
    """``backfill --all --json`` running, one wallet at a time, once a first address of it
    is done (its progress stored): certainly mid-way when the RPC is slowed."""
    process = await asyncio.create_subprocess_exec(
        *_args(url, rpc_url, "--all", "--json", "--concurrency", "1", "--batch-size", str(batch_size)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    await eventually(
        lambda: [] if _scalar(url, "SELECT count(*) FROM backfill_progress WHERE done")
        else ["no address done yet"], deadline=60, what="a first address backfilled")
    return process


async def test_killed_mid_run_resumes_where_it_stopped(history: History, history_db: str) -> None:
    net = history.net
    # Slow every RPC answer so the run is certainly mid-way when it dies.
    net.faults.latency_ms, net.faults.latency_until = 30.0, float("inf")
    try:
        process = await started_and_past_a_first_address(history_db, net.http_url, 1)
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.communicate(), 10)
        assert process.returncode == -signal.SIGKILL
    finally:
        net.faults.latency_ms, net.faults.latency_until = 0.0, 0.0
    before = _progress(history_db)
    finished = {address for address, (done, _) in before.items() if done}
    assert finished
    assert len(finished) < 2 * len(history.agents), "the run ended before it was killed"
    assert differences(backfilled(history.truth), database_rows(history_db)) != []

    run = await backfill(history_db, net.http_url, "--all", "--json")
    assert run.code == 0, run.stderr
    assert_equal(backfilled(history.truth), history_db)
    after = _progress(history_db)
    assert len(after) == 2 * len(history.agents)
    assert all(done for done, _ in after.values())
    # The addresses finished before the kill were not paged again: asked only for what
    # arrived since (nothing), their progress stands.
    assert {a: before[a] for a in finished} == {a: after[a] for a in finished}
    assert run.summary()["signatures_scanned"] < len({r["signature"] for r in history.truth})


async def test_ctrl_c_stops_with_one_line_and_the_same_command_resumes(history: History,
                                                                       history_db: str) -> None:
    """SIGINT mid-run: the run stops in order (the pipeline's workers before the RPC client
    they use), says in one line that the same command resumes, exits 130; run again, the
    database equals the truth."""
    net = history.net
    net.faults.latency_ms, net.faults.latency_until = 30.0, float("inf")  # certainly mid-way
    try:
        process = await started_and_past_a_first_address(history_db, net.http_url, 1)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        net.faults.latency_ms, net.faults.latency_until = 0.0, 0.0
    assert process.returncode == 130, err.decode()[-2000:]
    stderr = err.decode()
    assert "backfill interrupted: every committed page's progress is stored; the same command resumes" \
        " from there" in stderr
    assert "fetch_failed" not in stderr
    assert "Traceback" not in stderr
    assert out == b""  # no summary: the run did not end
    run = await backfill(history_db, net.http_url, "--all", "--json")
    assert run.code == 0, run.stderr
    assert_equal(backfilled(history.truth), history_db)


async def test_a_provider_answering_429_and_503_is_waited_out(history: History, history_db: str) -> None:
    """A provider that rate-limits (429 with Retry-After) and fails (503) a share of the
    calls, then refuses connections for a moment: the backfill retries each call after the
    wait asked, fails nothing over, and the database equals the truth."""
    net = history.net
    now = time.monotonic()
    net.faults.http_status, net.faults.http_fraction, net.faults.retry_after = 429, 0.3, 0.2
    net.faults.http_until = now + 2.0
    net.faults.latency_ms, net.faults.latency_until = 5.0, float("inf")  # a run longer than the faults
    try:
        process = await started_and_past_a_first_address(history_db, net.http_url, 5)
        net.faults.http_status, net.faults.http_until = 503, time.monotonic() + 1.0
        await eventually(lambda: [] if time.monotonic() > net.faults.http_until else ["503s still served"],
                         deadline=5, what="the 503 spell over")
        net.faults.refuse_until = time.monotonic() + 0.5
        out, err = await asyncio.wait_for(process.communicate(), 90)
    finally:
        net.faults.clear()
    assert process.returncode == 0, err.decode()[-2000:]
    retries = [orjson.loads(line) for line in err.decode().splitlines()
               if line.startswith("{") and '"rpc_retry"' in line]
    met = " ".join(r["error"] for r in retries)
    assert "HTTP 429 rate limited" in met, met[:500]
    assert "HTTP 503" in met, met[:500]
    assert orjson.loads(out)["wallets_failed"] == {}
    assert_equal(backfilled(history.truth), history_db)


def _register_agent(url: str, agent_id: str, wallet: str) -> None:
    """An agent of this test's database alone: the other tests' copies never list it."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
                     " VALUES (%s, 'Agent', 't', 'd', 'https://x/a.png', %s)", (agent_id, wallet))


async def _airdrops(net: Localnet, wallet: str, lamports: list[int]) -> list[str]:
    """Transfers from the faucet to ``wallet``, each finalized before the next is sent
    (so the listing's order is the sending order)."""
    signatures = []
    async with RpcClient([net.http_url]) as rpc:
        for amount in lamports:
            signature = str(await rpc.call("requestAirdrop", [wallet, amount]))
            await asyncio.wait_for(net.wait_for_signature(signature, "finalized"), 30)
            signatures.append(signature)
    return signatures


def _rows_of(url: str, wallet: str) -> dict[str, tuple[str, str, Decimal]]:
    with psycopg.connect(url) as conn:
        return {signature: (type_, status, amount) for signature, type_, status, amount in conn.execute(
            "SELECT t.transaction_signature, t.transaction_type, t.status, t.amount FROM transactions t"
            " JOIN agents a ON a.id = t.agent_id WHERE a.wallet_address = %s", (wallet,)).fetchall()}


async def test_run_again_a_finished_backfill_takes_what_arrived_since(history: History,
                                                                      history_db: str) -> None:
    """A wallet's history goes on after a backfill ends (an outage of the daemon, say):
    the same command again lists back to the newest finalized signature the first run
    kept, and writes what arrived since, without paging the older history again."""
    net, wallet = history.net, str(Keypair().pubkey())
    _register_agent(history_db, "late-agent", wallet)
    first = await _airdrops(net, wallet, [1_000_000, 2_000_000, 3_000_000])
    run = await backfill(history_db, net.http_url, "--wallet", wallet, "--json")
    assert run.code == 0, run.stderr
    assert run.summary()["transactions_processed"] == 3
    later = await _airdrops(net, wallet, [4_000_000, 5_000_000])
    again = await backfill(history_db, net.http_url, "--wallet", wallet, "--json")
    assert again.code == 0, again.stderr
    summary = again.summary()
    assert (summary["signatures_scanned"], summary["transactions_processed"]) == (2, 2)
    assert summary["rows_written_by_type_status"] == {"funding/pending": 2}
    amounts = [Decimal(n) / 10**9 for n in range(1, 6)]
    assert _rows_of(history_db, wallet) == {
        signature: ("funding", "pending", amount * 1_000_000)
        for signature, amount in zip(first + later, amounts, strict=True)}


async def _land(net: Localnet, rpc: RpcClient, instructions: list[Instruction],
                signers: list[Keypair]) -> str:
    """Sign with a fresh blockhash, send, wait until finalized; the signature."""
    blockhash = Hash.from_string((await rpc.call("getLatestBlockhash", [{}]))["value"]["blockhash"])
    tx = txs.sign(signers[0], instructions, signers, blockhash)
    signature = str(await rpc.call("sendTransaction", [base64.b64encode(bytes(tx)).decode(),
                                                       {"encoding": "base64"}]))
    await asyncio.wait_for(net.wait_for_signature(signature, "finalized"), 30)
    return signature


def _close_account(account: Pubkey, destination: Pubkey, owner: Pubkey) -> Instruction:
    """SPL Token CloseAccount (instruction 9): the owner signs, the rent goes back."""
    return Instruction(txs.TOKEN_PROGRAM, bytes([9]), [
        AccountMeta(account, False, True), AccountMeta(destination, False, True),
        AccountMeta(owner, True, False)])


async def test_a_token_account_the_agent_closed_is_found_and_backfilled(history: History,
                                                                        history_db: str) -> None:
    """A payer creates a token account for the agent and pays into it (the agent's wallet
    is in neither instruction's accounts); later the agent empties and closes it. No
    getTokenAccountsByOwner lists it now, but the close -- signed by the agent, so in its
    wallet's history -- shows it in its token balances: the backfill lists it too, and
    finds the payment."""
    net = history.net
    agent, payer, mint, account, purse = (Keypair() for _ in range(5))
    _register_agent(history_db, "closing-agent", str(agent.pubkey()))
    (funded,) = await _airdrops(net, str(agent.pubkey()), [10**9])  # SOL for the close's fee
    await _airdrops(net, str(payer.pubkey()), [10**9])
    async with RpcClient([net.http_url]) as rpc:
        rent = 10_000_000  # above the rent-exempt minimum of a mint and of a token account
        await _land(net, rpc, [
            *txs.create_mint(payer.pubkey(), mint.pubkey(), payer.pubkey(), rent),
            *txs.create_token_account(payer.pubkey(), purse.pubkey(), mint.pubkey(), payer.pubkey(), rent),
            txs.mint_to(mint.pubkey(), purse.pubkey(), payer.pubkey(), 1_000_000)], [payer, mint, purse])
        paid = await _land(net, rpc, [
            *txs.create_token_account(payer.pubkey(), account.pubkey(), mint.pubkey(), agent.pubkey(), rent),
            txs.transfer_checked(purse.pubkey(), mint.pubkey(), account.pubkey(), payer.pubkey(), 250_000)],
            [payer, account])
        await _land(net, rpc, [
            txs.transfer_checked(account.pubkey(), mint.pubkey(), purse.pubkey(), agent.pubkey(), 250_000),
            _close_account(account.pubkey(), agent.pubkey(), agent.pubkey())], [agent])
        assert (await rpc.get_token_accounts_by_owner([str(agent.pubkey())])) == {str(agent.pubkey()): set()}
    run = await backfill(history_db, net.http_url, "--wallet", str(agent.pubkey()), "--json")
    assert run.code == 0, run.stderr
    summary = run.summary()
    assert (summary["token_accounts"], summary["token_accounts_discovered"]) == (0, 1)
    assert _rows_of(history_db, str(agent.pubkey())) == {
        funded: ("funding", "pending", Decimal(1)),
        paid: ("funding", "pending", Decimal("0.25"))}  # found in the closed account's history
    assert _scalar(history_db, "SELECT owner_wallet FROM backfill_progress WHERE wallet_address = "
                   f"'{account.pubkey()}'") == str(agent.pubkey())
    # Run again: the wallet's range is done and lists only what is new (nothing), so the
    # account is not found again; it is listed as an account of the agent's all the same.
    again = await backfill(history_db, net.http_url, "--wallet", str(agent.pubkey()), "--json")
    assert again.code == 0, again.stderr
    assert (again.summary()["token_accounts_discovered"], again.summary()["duplicates"]) == (1, 0)


async def test_metrics_port_serves_the_run_while_it_lasts(history: History, history_db: str) -> None:
    """``--metrics-port 0`` prints its address on stderr; scraped mid-run, the backfill's
    counters have moved and wallets remain; once the command ends, nothing listens."""
    net = history.net
    # Slowed as in the kill test: a call per transaction at 30 ms, seconds of run left.
    net.faults.latency_ms, net.faults.latency_until = 30.0, float("inf")
    try:
        process = await asyncio.create_subprocess_exec(
            *_args(history_db, net.http_url, "--all", "--json", "--concurrency", "1",
                   "--batch-size", "1", "--metrics-port", "0"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 30)).decode()
        found = re.fullmatch(r"metrics on http://0\.0\.0\.0:(\d+)/metrics\n", line)
        assert found, line
        url = f"http://127.0.0.1:{found[1]}/metrics"
        seen: dict[str, float] = {}

        async def moving() -> list[str]:
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                assert response.status == 200
                seen.update(metric_samples(await response.text()))
            return [f"{name} is 0" for name in ("amoca_indexer_backfill_signatures_total",
                                                 "amoca_indexer_backfill_transactions_total")
                    if not seen.get(name)]

        await eventually_async(moving, deadline=60, what="backfill counters moving on /metrics")
        assert 1 <= seen["amoca_indexer_backfill_wallets_remaining"] <= len(history.agents)
    finally:
        net.faults.latency_ms, net.faults.latency_until = 0.0, 0.0
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode()
    summary = orjson.loads(out)
    # Scraped mid-run: short of the totals the run ends with.
    assert seen["amoca_indexer_backfill_transactions_total"] < summary["transactions_processed"]
    assert seen["amoca_indexer_backfill_signatures_total"] < summary["signatures_scanned"]
    assert seen["amoca_indexer_rpc_requests_total"] > 0
    assert_equal(backfilled(history.truth), history_db)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as session, session.get(url):
            pass


async def test_beside_the_daemon_the_database_equals_the_truth(history: History,
                                                               history_db: str) -> None:
    net = history.net
    async with running_daemon(history_db, net.http_url, net.ws_url) as daemon:
        # The backfill runs while the daemon catches up on the same history and indexes
        # live traffic of new agents (registered mid-run).
        live = WorkloadConfig(rpc_url=net.http_url, rate=300, count=40, agents=2, users=4, seed=4,
                              database_url=history_db)
        run, more = await asyncio.gather(
            backfill(history_db, net.http_url, "--all", "--json"), run_workload(live))
        assert run.code == 0, run.stderr
        expected = expected_rows([*history.truth, *more.truth])  # final statuses: the daemon finalizes
        await eventually(lambda: differences(expected, database_rows(history_db)), deadline=60,
                         what="database equal to the ground truth")
        assert stats_consistent(history_db)
        # The daemon writes through one connection of its own, which operators find by
        # name; the backfill's (closed by now) was its own as well.
        writers = _scalar(history_db, f"""SELECT count(*) FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = '{WRITER_APPLICATION_NAME}'""")
        assert writers == 1
        assert await daemon.stop() == 0, daemon.tail()


async def _slots(rpc_url: str, signatures: list[str]) -> dict[str, int]:
    async with RpcClient([rpc_url]) as rpc:
        statuses = await rpc.get_signature_statuses(signatures)
    slots = {}
    for signature, status in zip(signatures, statuses, strict=True):
        assert status is not None
        slots[signature] = int(status.slot)
    return slots


async def test_a_slot_range_writes_only_that_range(history: History, history_db: str) -> None:
    slots = await _slots(history.net.http_url, sorted({r["signature"] for r in history.truth}))
    ordered = sorted(set(slots.values()))
    since, until = ordered[len(ordered) // 3], ordered[2 * len(ordered) // 3]
    inside = tuple(r for r in history.truth if since <= slots[r["signature"]] <= until)
    assert 0 < len(inside) < len(history.truth)
    run = await backfill(history_db, history.net.http_url, "--all", "--json",
                         "--since", str(since), "--until", str(until))
    assert run.code == 0, run.stderr
    assert_equal(backfilled(inside), history_db)
    # The listings started at the first transaction of the first block after the range,
    # not at the top of each history: what is newer was never listed.
    ledger = history.net.ledger
    anchor = next(block.transactions[0] for slot in range(until + 1, until + 1 + ANCHOR_BLOCKS)
                  if (block := ledger.block(slot)) is not None and block.transactions)
    addresses = [*history.agents, *(a for w in history.agents for a in ledger.token_accounts.get(w, {}))]
    listed = [r for a in addresses for r in ledger.by_address[a].records if r.order < anchor.order]
    everything = sum(len(ledger.by_address[a].records) for a in addresses)
    assert run.summary()["signatures_scanned"] == len(listed) < everything


async def test_a_time_range_writes_only_that_range(history: History, history_db: str) -> None:
    """Bounds given as times: block times are whole seconds, so three groups of transfers
    a second apart make a range of one second hold the middle group. The listing starts at
    the first transaction of the first block after ``--until`` (found by bisecting block
    times), not at the top of the wallet's history."""
    net, wallet = history.net, str(Keypair().pubkey())
    _register_agent(history_db, "timed-agent", wallet)
    sent: list[str] = []
    async with RpcClient([net.http_url]) as rpc:
        for group in range(3):
            if sent:  # the next group in a later second: block times are the wall clock's
                turned = net.ledger.by_signature[sent[-1]].block_time + 1.05
                await asyncio.sleep(max(0.0, turned - time.time()))
            batch = [str(await rpc.call("requestAirdrop", [wallet, 1_000_000 * (group + 1) + n]))
                     for n in range(2)]  # amounts differ: the same transfer twice is one
            for signature in batch:
                await asyncio.wait_for(net.wait_for_signature(signature, "finalized"), 30)
            sent += batch
    ledger = net.ledger
    times = {signature: ledger.by_signature[signature].block_time for signature in sent}
    middle = times[sent[2]]
    inside = {signature for signature in sent if times[signature] == middle}
    assert inside == set(sent[2:4])
    moment = datetime.fromtimestamp(middle, UTC).isoformat()
    run = await backfill(history_db, net.http_url, "--wallet", wallet, "--json",
                         "--since", moment, "--until", moment)
    assert run.code == 0, run.stderr
    assert set(_rows_of(history_db, wallet)) == inside
    after = min(slot for slot in range(ledger.slot) if (block := ledger.block(slot)) is not None
                and block.block_time > middle)
    anchor = next(block.transactions[0] for slot in range(after, after + ANCHOR_BLOCKS)
                  if (block := ledger.block(slot)) is not None and block.transactions)
    history_of = ledger.by_address[wallet].records
    listed = [r for r in history_of if r.order < anchor.order]
    # What is older than the anchor (a transaction of the anchor's block may be, by its
    # signature's bytes): the range and what is older, not all of the newer group.
    assert {r.signature for r in listed} >= set(sent[:4])
    assert run.summary()["signatures_scanned"] == len(listed) < len(history_of)


async def test_a_signature_range_writes_only_that_range(history: History, history_db: str) -> None:
    """Bounds given as signatures, exclusive: each bounds the wallets' and the token
    accounts' listings alike, wherever its transaction stands (a token account's history
    need not hold it). What lies between is read off the ledger, in a node's order."""
    landed = sorted({r["signature"] for r in history.truth},
                    key=lambda signature: history.net.ledger.by_signature[signature].order)
    since, until = landed[len(landed) // 3], landed[2 * len(landed) // 3]
    between = set(landed[len(landed) // 3 + 1:2 * len(landed) // 3])
    inside = tuple(r for r in history.truth if r["signature"] in between)
    assert 0 < len(inside) < len(history.truth)
    assert any(r["mint"] is not None for r in inside)  # token transfers: listed by token account
    run = await backfill(history_db, history.net.http_url, "--all", "--json",
                         "--since", since, "--until", until)
    assert run.code == 0, run.stderr
    assert_equal(backfilled(inside), history_db)


async def test_agents_are_prepared_a_batch_at_a_time(history: History, history_db: str) -> None:
    """``--all`` over many agents lists their token accounts and reads their progress a
    batch at a time, the next batch while one runs (here batches of 2 of the 5 agents, in
    the command's own coroutine): every agent is backfilled with its own accounts, each
    listed once, and the database equals the truth."""
    wallets = sorted(history.agents)
    config = replace(load_settings(), rpc_urls=(history.net.http_url,), database_url=history_db)
    summary = await run_backfill(config, history_db, wallets, Range(), concurrency=2, batch_size=50,
                                 dry_run=False, show_progress=False, prepared_agents=2)
    assert (summary["wallets"], summary["wallets_failed"], summary["dead_letters"]) == (5, {}, {})
    ledger = history.net.ledger
    assert summary["token_accounts"] == sum(len(ledger.token_accounts.get(w, {})) for w in wallets) > 0
    assert_equal(backfilled(history.truth), history_db)


async def test_dry_run_writes_nothing_but_counts(history: History, history_db: str) -> None:
    run = await backfill(history_db, history.net.http_url, "--all", "--json", "--dry-run")
    assert run.code == 0, run.stderr
    summary = run.summary()
    assert summary["dry_run"] is True
    assert sum(summary["rows_written_by_type_status"].values()) == len(history.truth)
    assert summary["transactions_processed"] >= len({r["signature"] for r in history.truth})
    assert _scalar(history_db, "SELECT count(*) FROM transactions") == 0
    assert _scalar(history_db, "SELECT count(*) FROM backfill_progress") == 0


async def test_user_mistakes_give_one_clear_line(history: History, history_db: str,
                                                 empty_db_url: str) -> None:
    rpc = history.net.http_url
    stranger = "Vote111111111111111111111111111111111111111"
    slots = await _slots(rpc, sorted({r["signature"] for r in history.truth}))
    older, newer = min(slots, key=slots.__getitem__), max(slots, key=slots.__getitem__)
    never_sent = str(Keypair().sign_message(b"never sent"))
    taken = socket.socket()  # a metrics port another process holds
    taken.bind(("0.0.0.0", 0))  # noqa: S104  (as the metrics endpoint binds)
    taken.listen()
    cases = {
        "metrics port in use": ((history_db, rpc, "--all", "--metrics-port", str(taken.getsockname()[1])),
                                "cannot listen on"),
        "unknown wallet": ((history_db, rpc, "--wallet", stranger), "not an agent wallet"),
        "since after until": ((history_db, rpc, "--all", "--since", "200", "--until", "100"),
                              "is after --until"),
        "bad date": ((history_db, rpc, "--all", "--since", "2026-13-45"), "not a slot"),
        "bad signature": ((history_db, rpc, "--all", "--until", "0OIl" * 20), "not a slot"),
        "unknown signature": ((history_db, rpc, "--all", "--since", never_sent),
                              "knows no such confirmed transaction"),
        "signatures reversed": ((history_db, rpc, "--all", "--since", newer, "--until", older),
                                "is after --until"),
        "bad wallet": ((history_db, rpc, "--wallet", "not-a-wallet"), "not a base58 wallet"),
        "unreachable rpc": ((history_db, "http://127.0.0.1:9/secret-key-xyz", "--all", "--json"),
                            "cannot reach the RPC endpoint"),
        "no target": ((history_db, rpc), "either --wallet"),
        "schema behind": ((empty_db_url, rpc, "--all"), "run `amoca-indexer migrate` first"),
    }
    with taken:
        runs = await asyncio.gather(*(backfill(*args) for args, _ in cases.values()))
    for (case, (_, message)), run in zip(cases.items(), runs, strict=True):
        assert run.code != 0, case
        assert "Traceback" not in run.stderr + run.stdout, (case, run.stderr)
        errors = [line for line in run.stderr.splitlines()
                  if line.startswith(("Error:", "amoca-indexer:"))]
        assert len(errors) == 1, (case, run.stderr)
        assert message in errors[0], (case, errors[0])
        assert "--migrate" not in errors[0], (case, errors[0])  # backfill has no such flag
        assert "secret-key-xyz" not in run.stderr + run.stdout, case
    assert _scalar(history_db, "SELECT count(*) FROM transactions") == 0
