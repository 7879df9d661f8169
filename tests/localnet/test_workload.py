"""The AMOCA workload against the project's localnet over real sockets, and its truth
checked against the chain independently: every row's transaction exists, fails iff
the truth says so, and moves exactly the truth's amount into (or out of) the agent."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from solders.hash import Hash
from solders.keypair import Keypair
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction

from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet import workload_tx as txs
from indexer.localnet.workload import (
    WorkloadConfig,
    WorkloadError,
    WorkloadSummary,
    _Sender,
    _watching,
    run_workload,
)
from indexer.localnet.workload_plan import KINDS, LAMPORTS_PER_SOL, plan
from indexer.localnet.workload_registration import Registration, register_marketplace, registration_for
from indexer.rpc import RpcClient

CLUSTER = LocalnetConfig(port=0, slot_ms=20, finality_slots=4)
# 72 steps: the planner sends every kind once first, then draws from the mix.
CONFIG = WorkloadConfig(rate=400.0, count=72, seed=5, agents=4, users=6)


@pytest.fixture
async def net() -> AsyncIterator[Localnet]:
    async with Localnet(CLUSTER) as cluster:
        yield cluster


@pytest.fixture
async def run(net: Localnet, tmp_path: Path) -> tuple[WorkloadSummary, list[dict[str, Any]], Localnet]:
    summary = await run_workload(replace(CONFIG, rpc_url=net.http_url, truth_path=tmp_path / "truth.jsonl"))
    lines = (tmp_path / "truth.jsonl").read_text().splitlines()
    return summary, [json.loads(line) for line in lines], net


async def _rpc(session: aiohttp.ClientSession, url: str, method: str, params: list[Any]) -> Any:
    async with session.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}) as r:
        body = await r.json()
    assert "error" not in body, body
    return body["result"]


def _lamport_delta(tx: dict[str, Any], wallet: str) -> int:
    message, meta = tx["transaction"]["message"], tx["meta"]
    keys = [*message["accountKeys"], *meta.get("loadedAddresses", {}).get("writable", []),
            *meta.get("loadedAddresses", {}).get("readonly", [])]
    index = keys.index(wallet)
    delta: int = meta["postBalances"][index] - meta["preBalances"][index]
    return delta + (meta["fee"] if index == 0 else 0)  # the fee is not part of the transfer


def _token_delta(tx: dict[str, Any], owner: str, mint: str) -> int:
    def total(balances: list[dict[str, Any]]) -> int:
        return sum(int(b["uiTokenAmount"]["amount"]) for b in balances
                   if b["owner"] == owner and b["mint"] == mint)
    return total(tx["meta"]["postTokenBalances"]) - total(tx["meta"]["preTokenBalances"])


async def test_truth_matches_the_chain(run: tuple[WorkloadSummary, list[dict[str, Any]], Localnet]) -> None:
    summary, rows, net = run
    assert rows == list(summary.truth)
    assert rows == sorted(rows, key=lambda r: (r["signature"], r["agent_wallet"]))
    assert len({(r["signature"], r["agent_wallet"]) for r in rows}) == len(rows)
    assert summary.sent == CONFIG.count
    assert set(summary.by_kind) == {*KINDS, "treasury_funding"}  # every kind was sent
    assert {r["kind"] for r in rows} == {*KINDS, "treasury_funding"} - {"agent_outgoing"}

    versions: Counter[Any] = Counter()
    async with aiohttp.ClientSession() as session:
        for row in rows:
            tx = await _rpc(session, net.http_url, "getTransaction", [
                row["signature"], {"encoding": "json", "commitment": "confirmed",
                                   "maxSupportedTransactionVersion": 0}])
            assert tx is not None, row
            versions[tx["version"]] += 1
            failed = tx["meta"]["err"] is not None
            assert failed == (row["status"] == "failed"), (row, tx["meta"]["err"])
            assert Decimal(row["amount"]) == Decimal(row["amount_raw"]).scaleb(-6 if row["mint"] else -9)
            sign = -1 if row["transaction_type"] == "refund" else 1
            if row["mint"] is None:
                delta = _lamport_delta(tx, row["agent_wallet"])
                assert delta == (0 if failed else sign * row["amount_raw"]), row
                if row["kind"] != "multi_leg":  # there the payer may also pay a second agent
                    assert _lamport_delta(tx, row["counterparty_wallet"]) == (
                        0 if failed else -sign * row["amount_raw"])
            else:
                assert row["mint"] == summary.mint
                assert _token_delta(tx, row["agent_wallet"], row["mint"]) == row["amount_raw"], row
            if row["kind"] == "alt_payment":
                assert row["agent_wallet"] in tx["meta"]["loadedAddresses"]["writable"]
    assert versions["legacy"], versions
    assert versions[0], versions

    by_signature = {r["signature"]: r for r in rows}
    refunds = [r for r in rows if r["transaction_type"] == "refund"]
    assert refunds
    for refund in refunds:
        paid = by_signature[refund["refund_of"]]
        assert (paid["transaction_type"], paid["status"]) == ("payment", "refunded")
        assert (paid["agent_wallet"], paid["counterparty_wallet"], paid["amount_raw"], paid["task_id"]) == (
            refund["agent_wallet"], refund["counterparty_wallet"], refund["amount_raw"], refund["task_id"])
        assert refund["memo"] == f"amoca:1:refund;task={paid['task_id']};refund_of={paid['signature']}"
    assert sum(r["status"] == "refunded" for r in rows) == len(refunds)
    assert all(r["transaction_type"] == "funding" for r in rows if r["kind"] == "invalid_memo")
    owners = summary.task_owners
    for row in rows:
        if row["task_id"] is not None:
            assert owners[row["task_id"]] == row["agent_wallet"]  # only an agent's own task makes a row

    document = json.loads(await asyncio.to_thread(Path(str(summary.summary_path)).read_text))
    assert document["agents"] == list(summary.agent_wallets)
    assert document["by_type_status"] == dict(summary.by_type_status)
    assert sum(document["by_type_status"].values()) == len(rows)


async def test_agent_balances_add_up(run: tuple[WorkloadSummary, list[dict[str, Any]], Localnet]) -> None:
    """Per agent: the rows explain its balance, up to what the truth deliberately leaves
    out (outgoing transfers that are not refunds, the paying side of agent-to-agent)."""
    summary, rows, net = run
    async with aiohttp.ClientSession() as session:
        for agent in summary.agent_wallets:
            balance = (await _rpc(session, net.http_url, "getBalance",
                                  [agent, {"commitment": "confirmed"}]))["value"]
            earned = sum(r["amount_raw"] * (-1 if r["transaction_type"] == "refund" else 1) for r in rows
                         if r["agent_wallet"] == agent and r["mint"] is None and r["status"] != "failed")
            assert balance <= earned  # the rest went out as no-row transfers and fees
            assert balance > 0


async def test_a_chain_that_disagrees_with_the_intent_stops_the_run(net: Localnet, tmp_path: Path) -> None:
    """A "failed" transfer that succeeds (the wallet was given enough) means the truth
    would be wrong: the run raises and writes no truth."""
    registered: list[Registration] = []

    async def register(registration: Registration) -> None:
        registered.append(registration)

    config = replace(CONFIG, rpc_url=net.http_url, count=3, mix={"failed": 1}, usdc=False, alt=False,
                     poor_lamports=2_000 * LAMPORTS_PER_SOL, truth_path=tmp_path / "truth.jsonl")
    with pytest.raises(WorkloadError, match="expected a failure"):
        await run_workload(config, register=register)
    assert [r.agents for r in registered] == [registration_for(plan(config)).agents]
    assert not (tmp_path / "truth.jsonl").exists()


async def _land_stale_first(sender: _Sender, payer: Keypair, payee: Keypair, stale: Hash, lamports: int,
                            *, skip_preflight: bool) -> list[VersionedTransaction]:
    """``sender.land`` a transfer whose first signing takes the expired ``stale`` blockhash;
    every transaction built, in order."""
    built: list[VersionedTransaction] = []

    def build(blockhash: Hash) -> VersionedTransaction:
        pay = transfer(TransferParams(from_pubkey=payer.pubkey(), to_pubkey=payee.pubkey(),
                                      lamports=lamports))
        built.append(txs.sign(payer, [pay], [payer], stale if not built else blockhash))
        return built[-1]

    signature, status = await sender.land(build, skip_preflight=skip_preflight)
    assert signature == str(built[-1].signatures[0])
    assert status.err is None
    return built


async def test_a_transaction_whose_blockhash_expired_is_signed_anew() -> None:
    """The RPC client's retries through an outage can outlast a blockhash (150 slots: 0.75 s
    here). Such a transaction never lands, whether the node refused it (preflight:
    "Blockhash not found") or dropped it unannounced (no preflight): the sender signs it
    anew with a fresh blockhash, and only that one lands."""
    async with Localnet(LocalnetConfig(port=0, slot_ms=5, finality_slots=4)) as net, \
            RpcClient([net.http_url]) as rpc:
        config = replace(CONFIG, rpc_url=net.http_url)
        sender = _Sender(config, plan(config), rpc, sleep=asyncio.sleep, clock=time.monotonic)
        payer, payee = Keypair(), Keypair()
        async with _watching(sender.statuses):
            await sender.statuses.wait(await sender.airdrop(str(payer.pubkey()), LAMPORTS_PER_SOL))
            stale, stale_valid = await sender.blockhash()
            # A watch with an expiry ends without a status once the height passed it.
            assert await sender.statuses.watch(str(Signature.default()), stale_valid) is None
            for lamports, skip_preflight in ((1_000_000, False), (2_000_000, True)):
                built = await _land_stale_first(sender, payer, payee, stale, lamports,
                                                skip_preflight=skip_preflight)
                assert len(built) == 2
                assert await rpc.get_signature_statuses([str(built[0].signatures[0])]) == [None]
        balance = await rpc.call("getBalance", [str(payee.pubkey()), {"commitment": "confirmed"}])
        assert balance["value"] == 3_000_000  # each transfer landed once


def test_planning_is_deterministic() -> None:
    first, again = plan(CONFIG), plan(CONFIG)
    assert first == again
    other = plan(replace(CONFIG, seed=6))
    assert other.cast.agents != first.cast.agents
    assert [s.kind for s in other.steps] != [s.kind for s in first.steps]


def test_plan_follows_the_rules() -> None:
    result = plan(replace(CONFIG, count=400))
    for step in result.steps:
        assert step.expect_error == (step.kind == "failed")
        if step.kind in ("agent_outgoing", "airdrop", "mint_to"):
            assert step.rows == ()
        for row in step.rows:
            assert row.step == step.index
            assert (row.status == "failed") == step.expect_error
            assert row.agent_wallet in result.cast.agents
        if step.kind == "multi_leg":
            assert step.rows[0].amount_raw == sum(leg.amount_raw for leg in step.legs
                                                  if leg.destination == step.rows[0].agent_wallet)
    refunds = [s for s in result.steps if s.kind == "refund"]
    assert {s.refund_of_step for s in refunds} == set(result.refunded_steps)
    assert all(s.refund_of_step is not None and s.refund_of_step < s.index for s in refunds)
    signatures = [s.legs for s in result.steps]
    assert len(signatures) == len({tuple(legs) for legs in signatures})  # no two identical messages


def test_plan_without_usdc_or_lookup_table() -> None:
    result = plan(replace(CONFIG, usdc=False, alt=False, count=200))
    kinds = {s.kind for s in result.steps}
    assert "usdc_payment" not in kinds
    assert "alt_payment" not in kinds
    assert not any(s.via_lookup_table for s in result.steps)


def test_plan_rejects_unknown_kinds() -> None:
    with pytest.raises(ValueError, match="unknown workload kinds"):
        plan(replace(CONFIG, mix={"payment": 1, "gift": 2}))


def test_registration_inserts_once(db_url: str) -> None:
    registration = registration_for(plan(CONFIG))
    register_marketplace(db_url, registration)
    register_marketplace(db_url, registration)  # a rerun with the same seed adds nothing
    with psycopg.connect(db_url) as conn:
        agents = conn.execute(
            "SELECT wallet_address, status, creator_user_id FROM agents ORDER BY 1").fetchall()
        assert agents == sorted((w, "available", None) for w in plan(CONFIG).cast.agents)
        stats = conn.execute("SELECT count(*) FROM agent_stats").fetchone()
        assert stats == (len(agents),)
        users = conn.execute("SELECT count(*) FROM users").fetchone()
        assert users == (len(registration.users),)
        tasks = conn.execute(
            "SELECT t.id::text, a.wallet_address, u.wallet_address, t.status FROM tasks t"
            " JOIN agents a ON a.id = t.agent_id JOIN users u ON u.id = t.user_id ORDER BY 1").fetchall()
    assert tasks == sorted((str(t.id), t.agent_wallet, t.user_wallet, "in_progress")
                           for t in registration.tasks)


async def test_command_writes_truth_and_registers(net: Localnet, tmp_path: Path, db_url: str) -> None:
    truth = tmp_path / "t.jsonl"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "indexer", "workload", "--rpc-url", net.http_url, "--rate", "300",
        "--count", "30", "--seed", "9", "--agents", "3", "--users", "4", "--truth", str(truth),
        "--database-url", db_url, "--mix", "payment=2,refund=1,failed=1,usdc_payment=1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    printed = json.loads(out)
    rows = [json.loads(line) for line in truth.read_text().splitlines()]
    assert printed["rows"] == len(rows)
    assert printed["sent"] == 30
    assert {r["kind"] for r in rows} == {"payment", "refund", "failed", "usdc_payment", "treasury_funding"}
    with psycopg.connect(db_url) as conn:
        tasks = {str(t) for (t,) in conn.execute("SELECT id FROM tasks").fetchall()}
    assert {r["task_id"] for r in rows if r["task_id"]} <= tasks


async def test_command_rejects_a_bad_mix() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "indexer", "workload", "--mix", "payment=x",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert "kind=weight" in err.decode()
