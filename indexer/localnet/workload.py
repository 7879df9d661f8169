"""The AMOCA workload: marketplace traffic sent to a cluster, with its ground truth.

It creates deterministic user and agent keypairs (from ``seed``), funds them, creates a
USDC-like SPL mint (6 decimals) with token accounts, optionally registers users, agents
and tasks in the marketplace database, then sends a mix of transfers at ``rate`` per
second, all through JSON-RPC (it works against any cluster). The ground truth -- the
`transactions` rows the database must end up holding -- is derived from what was SENT
(the intent of each transfer), never from the project's decoder: it is the independent
oracle of the end-to-end tests.

Truth file: JSON lines, one object per expected row, sorted by (signature, agent):
``{"signature", "agent_wallet", "counterparty_wallet", "transaction_type", "status"
(final, after finality: confirmed | failed | refunded), "amount" (decimal string),
"amount_raw" (int), "mint" (null for SOL), "task_id", "refund_of", "period", "memo",
"kind" (the mix entry that produced it)}``.

Kinds: treasury_funding (set-up: each agent funded once, no memo), funding (memo),
funding_plain (no memo), payment (task memo), subscription,
refund (agent → user, refund memo naming the payment), usdc_payment, failed (insufficient
funds sent with skipPreflight: lands failed), agent_to_agent (the paid agent's row only),
agent_outgoing (agent → user without refund memo: no row), invalid_memo (unknown version,
upper case, bad UUID, a task of another agent: a `funding` row), multi_leg (two legs to
one agent in one transaction: one summed row).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
from solders.hash import Hash
from solders.instruction import AccountMeta, Instruction
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.system_program import CreateAccountParams, TransferParams, create_account, transfer
from solders.transaction import VersionedTransaction

from indexer.rpc import RpcClient

MEMO_V1 = Pubkey.from_string("Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo")
TOKEN = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
LAMPORTS = 10**9
USDC_DECIMALS = 6

DEFAULT_MIX: dict[str, int] = {
    "funding": 3, "funding_plain": 2, "payment": 6, "subscription": 2, "refund": 2,
    "usdc_payment": 2, "failed": 1, "agent_to_agent": 1, "agent_outgoing": 1, "invalid_memo": 2,
    "multi_leg": 1,
}


@dataclass(frozen=True, slots=True)
class WorkloadConfig:
    rpc_url: str = "http://127.0.0.1:8899"
    rate: float = 50.0
    count: int = 200
    seed: int = 1
    agents: int = 10
    users: int = 20
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    truth_path: Path | None = None
    database_url: str | None = None


@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    sent: int
    rows: int
    by_kind: dict[str, int]
    by_type_status: dict[str, int]
    agent_wallets: tuple[str, ...]
    truth_path: str | None
    truth: tuple[dict[str, Any], ...] = ()
    task_owners: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.sent} transactions sent, {self.rows} expected rows"


def keypair(seed: int, role: str, index: int) -> Keypair:
    return Keypair.from_seed(hashlib.sha256(f"amoca:{seed}:{role}:{index}".encode()).digest())


def plan(config: WorkloadConfig) -> list[str]:
    """The kinds to send, in order (pure, deterministic for a seed)."""
    rng = random.Random(config.seed)
    kinds = [k for k, w in config.mix.items() if w > 0]
    weights = [config.mix[k] for k in kinds]
    return rng.choices(kinds, weights, k=config.count)


def _memo(text: str, signer: Pubkey) -> Instruction:
    return Instruction(MEMO_V1, text.encode(), [AccountMeta(signer, True, False)])


def _token_ix(data: bytes, accounts: list[tuple[Pubkey, bool, bool]]) -> Instruction:
    return Instruction(TOKEN, data, [AccountMeta(k, s, w) for k, s, w in accounts])


@dataclass
class _Party:
    key: Keypair
    wallet: str
    token_account: Pubkey | None = None


class Workload:
    def __init__(self, config: WorkloadConfig, rpc: RpcClient) -> None:
        self.config = config
        self.rpc = rpc
        self.rng = random.Random(config.seed * 7919)
        self.users = [_Party(k, str(k.pubkey())) for k in
                      (keypair(config.seed, "user", i) for i in range(config.users))]
        self.agents = [_Party(k, str(k.pubkey())) for k in
                       (keypair(config.seed, "agent", i) for i in range(config.agents))]
        self.poor = keypair(config.seed, "poor", 0)
        self.treasury = keypair(config.seed, "treasury", 0)
        self.mint = keypair(config.seed, "mint", 0)
        self.tasks: dict[str, list[uuid.UUID]] = {a.wallet: [] for a in self.agents}
        self.truth: list[dict[str, Any]] = []
        self.payments: list[dict[str, Any]] = []  # SOL payments still refundable
        self.sent: list[str] = []
        self.kinds: Counter[str] = Counter()

    # -- chain helpers --------------------------------------------------------------------
    async def _blockhash(self) -> Hash:
        result = await self.rpc.call("getLatestBlockhash", [{"commitment": "processed"}])
        return Hash.from_string(result["value"]["blockhash"])

    async def _send(self, payer: Keypair, instructions: list[Instruction], signers: Sequence[Keypair],
                    *, skip_preflight: bool = False) -> str:
        message = MessageV0.try_compile(payer.pubkey(), instructions, [], await self._blockhash())
        tx = VersionedTransaction(message, list(signers))
        signature: str = await self.rpc.call("sendTransaction", [
            base64.b64encode(bytes(tx)).decode(),
            {"encoding": "base64", "skipPreflight": skip_preflight, "preflightCommitment": "processed"}])
        self.sent.append(signature)
        return signature

    async def wait_for(self, signatures: Sequence[str], level: str = "confirmed",
                       deadline_s: float = 120.0) -> dict[str, Any]:
        """Poll statuses until every signature reaches ``level``; returns their err values."""
        order = ("processed", "confirmed", "finalized")
        found: dict[str, Any] = {}
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        pending = list(signatures)
        while pending:
            statuses = await self.rpc.get_signature_statuses(pending)
            still = []
            for signature, status in zip(pending, statuses, strict=True):
                if status is not None and order.index(status.confirmation_status or "processed") >= \
                        order.index(level):
                    found[signature] = status.err
                else:
                    still.append(signature)
            pending = still
            if pending:
                if loop.time() > end:
                    raise TimeoutError(f"{len(pending)} transactions did not reach {level}")
                await asyncio.sleep(0.1)
        return found

    async def setup(self) -> None:
        """Fund users (airdrops) and agents (from the workload's treasury, so the
        fundings are ordinary marketplace rows the truth accounts for), create USDC."""
        fund = [self.rpc.call("requestAirdrop", [p.wallet, 50 * LAMPORTS]) for p in self.users]
        fund.append(self.rpc.call("requestAirdrop", [str(self.poor.pubkey()), LAMPORTS // 100]))
        fund.append(self.rpc.call("requestAirdrop",
                                  [str(self.treasury.pubkey()), (len(self.agents) + 1) * 20 * LAMPORTS]))
        await self.wait_for(await asyncio.gather(*fund), "processed")
        signatures = []
        for agent in self.agents:
            ix = transfer(TransferParams(from_pubkey=self.treasury.pubkey(), to_pubkey=agent.key.pubkey(),
                                         lamports=20 * LAMPORTS))
            signature = await self._send(self.treasury, [ix], [self.treasury])
            self._row("treasury_funding", signature, agent, str(self.treasury.pubkey()), "funding",
                      20 * LAMPORTS)
            signatures.append(signature)
        await self.wait_for(signatures, "processed")
        await self._setup_usdc()

    async def _setup_usdc(self) -> None:
        payer = self.users[0].key
        mint_rent = await self.rpc.call("getMinimumBalanceForRentExemption", [82])
        account_rent = await self.rpc.call("getMinimumBalanceForRentExemption", [165])
        init_mint = bytes([20, USDC_DECIMALS]) + bytes(payer.pubkey()) + bytes([0])
        signatures = [await self._send(payer, [
            create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=self.mint.pubkey(),
                                               lamports=mint_rent, space=82, owner=TOKEN)),
            _token_ix(init_mint, [(self.mint.pubkey(), False, True)])], [payer, self.mint])]
        await self.wait_for(signatures, "processed")
        signatures = []
        for index, party in enumerate((*self.users, *self.agents)):
            account = keypair(self.config.seed, "usdc", index)
            party.token_account = account.pubkey()
            instructions = [
                create_account(CreateAccountParams(from_pubkey=payer.pubkey(), to_pubkey=account.pubkey(),
                                                   lamports=account_rent, space=165, owner=TOKEN)),
                _token_ix(bytes([18]) + bytes(party.key.pubkey()),
                          [(account.pubkey(), False, True), (self.mint.pubkey(), False, False)]),
                _token_ix(bytes([7]) + (1_000 * 10**USDC_DECIMALS).to_bytes(8, "little"),
                          [(self.mint.pubkey(), False, True), (account.pubkey(), False, True),
                           (payer.pubkey(), True, False)]),
            ]
            signatures.append(await self._send(payer, instructions, [payer, account]))
        await self.wait_for(signatures, "processed")

    # -- database ---------------------------------------------------------------------
    def register(self, url: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute("INSERT INTO users (wallet_address) SELECT unnest(%s::text[])"
                         " ON CONFLICT (wallet_address) DO NOTHING", ([u.wallet for u in self.users],))
            for index, agent in enumerate(self.agents):
                conn.execute(
                    "INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)"
                    " VALUES (%s, %s, 'A local agent', 'Generated by the AMOCA workload',"
                    " 'https://example.invalid/agent.png', %s) ON CONFLICT (wallet_address) DO NOTHING",
                    (f"wl-{self.config.seed}-{index}", f"Agent {index}", agent.wallet))
            for agent in self.agents:
                for _ in range(3):
                    task = uuid.UUID(int=self.rng.getrandbits(128), version=4)
                    self.tasks[agent.wallet].append(task)
                    user = self.rng.choice(self.users)
                    conn.execute(
                        "INSERT INTO tasks (id, user_id, agent_id, title, description, status, budget)"
                        " SELECT %s, u.id, a.id, 'Workload task', 'Generated', 'in_progress', 1"
                        " FROM users u, agents a WHERE u.wallet_address = %s AND a.wallet_address = %s",
                        (task, user.wallet, agent.wallet))

    def _task(self, agent: _Party) -> uuid.UUID:
        if not self.tasks[agent.wallet]:
            self.tasks[agent.wallet].append(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return self.rng.choice(self.tasks[agent.wallet])

    # -- traffic ----------------------------------------------------------------------
    def _row(self, kind: str, signature: str, agent: _Party, counterparty: str, type_: str,
             raw: int, *, mint: str | None = None, task: uuid.UUID | None = None,
             refund_of: str | None = None, period: str | None = None, memo: str | None = None,
             status: str = "confirmed") -> dict[str, Any]:
        decimals = USDC_DECIMALS if mint else 9
        row = {"signature": signature, "agent_wallet": agent.wallet, "counterparty_wallet": counterparty,
               "transaction_type": type_, "status": status,
               "amount": str(Decimal(raw).scaleb(-decimals)), "amount_raw": raw, "mint": mint,
               "task_id": str(task) if task else None, "refund_of": refund_of, "period": period,
               "memo": memo, "kind": kind}
        self.truth.append(row)
        return row

    async def one(self, kind: str) -> None:
        rng = self.rng
        user, agent = rng.choice(self.users), rng.choice(self.agents)
        lamports = rng.randint(1, 2000) * 10**6  # 0.001 .. 2 SOL
        pay = transfer(TransferParams(from_pubkey=user.key.pubkey(), to_pubkey=agent.key.pubkey(),
                                      lamports=lamports))
        if kind in ("funding", "funding_plain"):
            memo = "amoca:1:funding" if kind == "funding" else None
            ixs = [pay] + ([_memo(memo, user.key.pubkey())] if memo else [])
            sig = await self._send(user.key, ixs, [user.key])
            self._row(kind, sig, agent, user.wallet, "funding", lamports, memo=memo)
        elif kind == "payment":
            task = self._task(agent)
            memo = f"amoca:1:payment;task={task}"
            sig = await self._send(user.key, [pay, _memo(memo, user.key.pubkey())], [user.key])
            row = self._row(kind, sig, agent, user.wallet, "payment", lamports, task=task, memo=memo)
            self.payments.append(row)
        elif kind == "subscription":
            period = f"2026-{rng.randint(1, 12):02d}"
            memo = f"amoca:1:subscription;period={period}"
            sig = await self._send(user.key, [pay, _memo(memo, user.key.pubkey())], [user.key])
            self._row(kind, sig, agent, user.wallet, "subscription", lamports, period=period, memo=memo)
        elif kind == "refund":
            if not self.payments:
                return await self.one("payment")
            paid = self.payments.pop(rng.randrange(len(self.payments)))
            refunder = next(a for a in self.agents if a.wallet == paid["agent_wallet"])
            memo = f"amoca:1:refund;task={paid['task_id']};refund_of={paid['signature']}"
            back = transfer(TransferParams(from_pubkey=refunder.key.pubkey(),
                                           to_pubkey=Pubkey.from_string(paid["counterparty_wallet"]),
                                           lamports=paid["amount_raw"]))
            sig = await self._send(refunder.key, [back, _memo(memo, refunder.key.pubkey())], [refunder.key])
            self._row(kind, sig, refunder, paid["counterparty_wallet"], "refund", paid["amount_raw"],
                      task=uuid.UUID(paid["task_id"]), refund_of=paid["signature"], memo=memo)
            paid["status"] = "refunded"
        elif kind == "usdc_payment":
            task = self._task(agent)
            memo = f"amoca:1:payment;task={task}"
            units = rng.randint(1, 50_000) * 100  # up to 5 USDC
            assert user.token_account is not None
            assert agent.token_account is not None
            ix = _token_ix(bytes([12]) + units.to_bytes(8, "little") + bytes([USDC_DECIMALS]),
                           [(user.token_account, False, True), (self.mint.pubkey(), False, False),
                            (agent.token_account, False, True), (user.key.pubkey(), True, False)])
            sig = await self._send(user.key, [ix, _memo(memo, user.key.pubkey())], [user.key])
            self._row(kind, sig, agent, user.wallet, "payment", units, mint=str(self.mint.pubkey()),
                      task=task, memo=memo)
        elif kind == "failed":
            memo = "amoca:1:funding"
            too_much = 10 * LAMPORTS
            ix = transfer(TransferParams(from_pubkey=self.poor.pubkey(), to_pubkey=agent.key.pubkey(),
                                         lamports=too_much))
            sig = await self._send(self.poor, [ix, _memo(memo, self.poor.pubkey())], [self.poor],
                                   skip_preflight=True)
            self._row(kind, sig, agent, str(self.poor.pubkey()), "funding", too_much, memo=memo,
                      status="failed")
        elif kind == "agent_to_agent":
            payer = rng.choice([a for a in self.agents if a is not agent] or [agent])
            if payer is agent:
                return await self.one("payment")
            task = self._task(agent)
            memo = f"amoca:1:payment;task={task}"
            ix = transfer(TransferParams(from_pubkey=payer.key.pubkey(), to_pubkey=agent.key.pubkey(),
                                         lamports=lamports))
            sig = await self._send(payer.key, [ix, _memo(memo, payer.key.pubkey())], [payer.key])
            self._row(kind, sig, agent, payer.wallet, "payment", lamports, task=task, memo=memo)
        elif kind == "agent_outgoing":
            ix = transfer(TransferParams(from_pubkey=agent.key.pubkey(), to_pubkey=user.key.pubkey(),
                                         lamports=lamports // 10))
            await self._send(agent.key, [ix], [agent.key])  # not a marketplace transaction: no row
        elif kind == "invalid_memo":
            other = rng.choice([a for a in self.agents if a is not agent] or [agent])
            memo = rng.choice([
                "amoca:2:payment", "AMOCA:1:payment", "amoca:1:payment;task=not-a-uuid",
                f"amoca:1:payment;task={self._task(other)}" if other is not agent else "amoca:1:gift",
                "amoca:1:subscription;period=2026-13",
            ])
            sig = await self._send(user.key, [pay, _memo(memo, user.key.pubkey())], [user.key])
            self._row(kind, sig, agent, user.wallet, "funding", lamports, memo=memo)
        elif kind == "multi_leg":
            second = rng.randint(1, 500) * 10**6
            ixs = [pay, transfer(TransferParams(from_pubkey=user.key.pubkey(),
                                                to_pubkey=agent.key.pubkey(), lamports=second)),
                   _memo("amoca:1:funding", user.key.pubkey())]
            sig = await self._send(user.key, ixs, [user.key])
            self._row(kind, sig, agent, user.wallet, "funding", lamports + second, memo="amoca:1:funding")
        else:
            raise ValueError(f"unknown workload kind {kind!r}")
        self.kinds[kind] += 1
        return None

    def write_truth(self, path: Path) -> None:
        rows = sorted(self.truth, key=lambda r: (r["signature"], r["agent_wallet"]))
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


async def run_workload(config: WorkloadConfig, *, register: bool = True) -> WorkloadSummary:
    """Set up, send ``config.count`` transactions at ``config.rate``, wait for them, write truth."""
    async with RpcClient([config.rpc_url], max_concurrency=8) as rpc:
        workload = Workload(config, rpc)
        await workload.setup()
        if config.database_url and register:
            await asyncio.to_thread(workload.register, config.database_url)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, kind in enumerate(plan(config)):
            due = start + index / config.rate
            if (delay := due - loop.time()) > 0:
                await asyncio.sleep(delay)
            await workload.one(kind)
        marketplace = [r["signature"] for r in workload.truth]
        errors = await workload.wait_for(marketplace, "confirmed")
        for row in workload.truth:  # the chain has the last word on failure
            if errors.get(row["signature"]) is not None:
                row["status"] = "failed"
        if config.truth_path is not None:
            workload.write_truth(config.truth_path)
        by_type_status = Counter(f"{r['transaction_type']}/{r['status']}" for r in workload.truth)
        return WorkloadSummary(
            sent=len(workload.sent), rows=len(workload.truth), by_kind=dict(workload.kinds),
            by_type_status=dict(by_type_status), agent_wallets=tuple(a.wallet for a in workload.agents),
            truth_path=str(config.truth_path) if config.truth_path else None,
            truth=tuple(sorted(workload.truth, key=lambda r: (r["signature"], r["agent_wallet"]))),
            task_owners={str(t): wallet for wallet, tasks in workload.tasks.items() for t in tasks})
