"""The AMOCA workload: marketplace traffic sent to a cluster, with its ground truth.

``run_workload`` plans the run (``workload_plan.plan``: pure, deterministic for a seed),
then talks to the cluster ONLY through JSON-RPC over HTTP, so it runs against the
project's localnet, ``solana-test-validator`` or devnet alike:

1. set-up: airdrops to the users, the wallet whose transfers fail and the treasury;
   the treasury funds every agent (plain transfers: ``treasury_funding`` rows); a
   6-decimal SPL mint with a token account per user and agent (users get tokens);
   an address lookup table holding the agent wallets (created from the newest slot of
   the SlotHashes sysvar, used once it is confirmed);
2. registration (``register``, or ``config.database_url``): users, agents, tasks;
3. traffic: the planned steps at ``config.rate`` per second (each step starts at its
   due time, at most ``max_in_flight`` sends at once; no busy waiting), refunds only
   after the payment they name is confirmed; every signature is watched with batched
   ``getSignatureStatuses`` until ``config.commitment``;
4. check: a step meant to fail must land with ``meta.err`` and every other without --
   otherwise :class:`WorkloadError` (the truth would be wrong, so none is written);
5. truth: the expected rows, from the plan (intent) plus the signatures.

Truth file (``config.truth_path``): JSON lines, one object per expected
``transactions`` row, sorted by (signature, agent_wallet)::

    {"signature", "agent_wallet", "counterparty_wallet",
     "transaction_type": "funding" | "payment" | "refund" | "subscription",
     "status": "confirmed" | "failed" | "refunded"   (final, once finalized),
     "amount": "0.123000042" (decimal string: lamports / 1e9, or token units / 1e6),
     "amount_raw": 123000042 (int: lamports or token base units),
     "mint": null (SOL) | "<mint address>",
     "task_id": "<uuid>" | null, "refund_of": "<signature>" | null,
     "period": "YYYY-MM" | null, "memo": "<memo text>" | null,
     "kind": "<the mix entry that produced the row, or treasury_funding>"}

Beside it, ``<stem>.summary.json``: the seed, the cluster (redacted), the wallets of
agents, users, the failing wallet and the treasury, the mint and lookup table, the
tasks per agent, and the counts by kind and by ``type/status``.

Kinds (``workload_plan.KINDS``): funding, funding_plain, payment, subscription, refund,
usdc_payment, failed, agent_to_agent, agent_outgoing (no row), invalid_memo (a
``funding`` row), multi_leg (legs summed per agent), alt_payment (v0 + lookup table).
Legacy and v0 messages are mixed. The truth assumes the tasks are registered (the
indexer checks a memo's task against the paid agent); without a database it is still
the intent, for a database that will hold them.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import structlog
from solders.address_lookup_table_account import AddressLookupTableAccount
from solders.hash import Hash
from solders.instruction import Instruction
from solders.keypair import Keypair
from solders.pubkey import Pubkey
from solders.sysvar import SLOT_HASHES
from solders.transaction import VersionedTransaction

from indexer.config import redact_url
from indexer.errors import PermanentError, RpcError
from indexer.localnet import workload_tx as txs
from indexer.localnet.workload_plan import (
    DEFAULT_MIX,
    KINDS,
    LAMPORTS_PER_SOL,
    SETUP_KIND,
    Plan,
    Step,
    TruthRow,
    WorkloadConfig,
    counts,
    plan,
    resolve_memo,
    signers_for,
    truth_rows,
)
from indexer.localnet.workload_registration import Registration, register_marketplace, registration_for
from indexer.rpc import RpcClient
from indexer.rpc.protocol import SignatureStatus

__all__ = ["DEFAULT_MIX", "KINDS", "Register", "WorkloadConfig", "WorkloadError", "WorkloadSummary",
           "run_workload", "write_truth"]

log = structlog.get_logger(__name__)
Register = Callable[[Registration], Awaitable[None]]
_LEVELS = ("processed", "confirmed", "finalized")
BLOCKHASH_TTL = 1.0  # seconds a fetched blockhash is reused (valid 150 slots: 6 s at 40 ms a slot)
RESIGNS = 5  # times a transaction is signed anew after its blockhash expired unlanded
STATUS_POLL = 0.05  # seconds between getSignatureStatuses rounds while something is pending
HEIGHT_EVERY = 0.5  # seconds between block height readings (for blockhash expiry) while watching


class WorkloadError(PermanentError):
    """The cluster did not do what the workload intended (a transfer meant to succeed
    failed, one meant to fail succeeded, or one never landed): its truth would be wrong."""


@dataclass(frozen=True, slots=True)
class WorkloadSummary:
    """What a run sent and the rows it expects (``truth``: the truth file's objects)."""

    seed: int
    sent: int  # traffic transactions (the mix), not set-up or top-ups
    rows: int
    by_kind: Mapping[str, int]
    by_type_status: Mapping[str, int]
    agent_wallets: tuple[str, ...]
    user_wallets: tuple[str, ...]
    poor_wallet: str
    treasury_wallet: str
    mint: str | None
    lookup_table: str | None
    truth_path: str | None
    summary_path: str | None
    expected: tuple[TruthRow, ...]
    task_owners: Mapping[str, str] = field(default_factory=dict)  # task id -> agent wallet

    @property
    def truth(self) -> tuple[dict[str, Any], ...]:
        return tuple(row.to_json() for row in self.expected)

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "sent": self.sent, "rows": self.rows, "by_kind": dict(self.by_kind),
                "by_type_status": dict(self.by_type_status), "agents": list(self.agent_wallets),
                "users": list(self.user_wallets), "poor": self.poor_wallet,
                "treasury": self.treasury_wallet, "mint": self.mint, "lookup_table": self.lookup_table,
                "truth": self.truth_path, "tasks": dict(self.task_owners)}

    def __str__(self) -> str:
        return f"{self.sent} transactions sent, {self.rows} expected rows"


@dataclass(slots=True)
class _Watch:
    future: asyncio.Future[SignatureStatus | None]
    deadline: float  # loop time
    expires_after: int | None  # the blockhash's lastValidBlockHeight, when it has one


class _Statuses:
    """Watches signatures with batched getSignatureStatuses until they reach ``level``.

    A watch given its blockhash's ``lastValidBlockHeight`` ends with None once the
    confirmed block height has passed it with no status seen: that transaction can never
    land. The height is read before the statuses (heights only grow, so an earlier reading
    will do), so a None after it is final; it is read at most every ``HEIGHT_EVERY`` s,
    not every round.
    """

    def __init__(self, rpc: RpcClient, level: str, *, timeout: float,
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.rpc = rpc
        self.level = _LEVELS.index(level)
        self.timeout = timeout
        self.sleep = sleep
        self._waiting: dict[str, _Watch] = {}
        self._wake = asyncio.Event()
        self._failure: BaseException | None = None
        self._height: tuple[int, float] | None = None  # confirmed block height, read at (loop time)

    def watch(self, signature: str, expires_after: int | None = None
              ) -> asyncio.Future[SignatureStatus | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[SignatureStatus | None] = loop.create_future()
        if self._failure is not None:
            future.set_exception(self._failure)
            return future
        if signature in self._waiting:
            return self._waiting[signature].future
        self._waiting[signature] = _Watch(future, loop.time() + self.timeout, expires_after)
        self._wake.set()
        return future

    async def wait(self, signature: str) -> SignatureStatus:
        status = await self.watch(signature)
        if status is None:  # only a watch with an expiry ends without a status
            raise WorkloadError(f"transaction {signature} never landed")
        return status

    def _end(self, signature: str, outcome: SignatureStatus | BaseException | None) -> None:
        """Stop watching ``signature``; its future gets ``outcome`` (raised, if an error)."""
        future = self._waiting.pop(signature).future
        if future.done():
            return
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not self._waiting:
                    self._wake.clear()
                    await self._wake.wait()
                signatures = list(self._waiting)
                height = None
                if any(w.expires_after is not None for w in self._waiting.values()):
                    if self._height is None or loop.time() - self._height[1] >= HEIGHT_EVERY:
                        read = int(await self.rpc.call("getBlockHeight", [{"commitment": "confirmed"}]))
                        self._height = (read, loop.time())
                    height = self._height[0]
                statuses = await self.rpc.get_signature_statuses(signatures)
                now = loop.time()
                for signature, status in zip(signatures, statuses, strict=True):
                    watch = self._waiting[signature]
                    reached = status is not None and _LEVELS.index(
                        status.confirmation_status or "processed") >= self.level
                    if reached:
                        self._end(signature, status)
                    elif (status is None and height is not None and watch.expires_after is not None
                          and height > watch.expires_after):
                        self._end(signature, None)
                    elif now > watch.deadline:
                        self._end(signature, WorkloadError(
                            f"transaction {signature} did not reach {_LEVELS[self.level]} "
                            f"in {self.timeout:g} s"))
                if self._waiting:
                    await self.sleep(STATUS_POLL)
        except Exception as exc:
            self._failure = exc
            for watch in self._waiting.values():
                if not watch.future.done():
                    watch.future.set_exception(exc)
            self._waiting.clear()
            raise


class _Sender:
    """The I/O shell around a plan: sends its steps and records what the chain said."""

    def __init__(self, config: WorkloadConfig, plan_: Plan, rpc: RpcClient, *,
                 sleep: Callable[[float], Awaitable[None]], clock: Callable[[], float]) -> None:
        self.config = config
        self.plan = plan_
        self.rpc = rpc
        self.sleep = sleep
        self.clock = clock
        self.keys = signers_for(config)
        self.treasury = self.keys[plan_.cast.treasury]
        self.statuses = _Statuses(rpc, config.commitment, timeout=config.confirm_timeout, sleep=sleep)
        self.signatures: dict[int, str] = {}
        self.errors: dict[int, Any] = {}
        self.sent: Counter[str] = Counter()
        self.lookup_table: AddressLookupTableAccount | None = None
        self._landed: dict[int, asyncio.Future[SignatureStatus]] = {}
        self._hash: tuple[Hash, int, float] | None = None  # blockhash, lastValidBlockHeight, fetched
        self._hash_lock = asyncio.Lock()
        self._in_flight = asyncio.Semaphore(config.max_in_flight)

    # -- plumbing -------------------------------------------------------------------------
    async def blockhash(self) -> tuple[Hash, int]:
        """A recent blockhash and its lastValidBlockHeight."""
        async with self._hash_lock:
            if self._hash is None or self.clock() - self._hash[2] > BLOCKHASH_TTL:
                value = (await self.rpc.call("getLatestBlockhash", [{"commitment": "confirmed"}]))["value"]
                self._hash = (Hash.from_string(value["blockhash"]), int(value["lastValidBlockHeight"]),
                              self.clock())
            return self._hash[0], self._hash[1]

    async def send(self, tx: VersionedTransaction, *, skip_preflight: bool = False) -> str:
        signature = await self.rpc.call("sendTransaction", [
            base64.b64encode(bytes(tx)).decode(),
            {"encoding": "base64", "skipPreflight": skip_preflight, "preflightCommitment": "processed"}])
        if signature != str(tx.signatures[0]):
            raise WorkloadError(f"sendTransaction answered {signature}, expected {tx.signatures[0]}")
        return str(signature)

    async def land(self, build: Callable[[Hash], VersionedTransaction], *,
                   skip_preflight: bool = False) -> tuple[str, SignatureStatus]:
        """Sign (``build``) with a recent blockhash, send, and wait until the transaction
        reaches the watched level: its signature and status.

        A transaction whose blockhash expires before it lands never can: the node refuses
        it ("Blockhash not found"), or drops it unannounced when preflight is skipped. The
        RPC client's retries through an outage can outlast a blockhash, so such a
        transaction is signed anew with a fresh one, as wallets do. Nothing lands twice:
        a node answers a transaction it already has with its signature, before it checks
        the blockhash.
        """
        for _ in range(RESIGNS):
            blockhash, last_valid = await self.blockhash()
            tx = build(blockhash)
            status: SignatureStatus | None = None
            try:
                async with self._in_flight:
                    await self.send(tx, skip_preflight=skip_preflight)
            except RpcError as exc:
                if not _blockhash_not_found(exc):
                    raise
            else:
                status = await self.statuses.watch(str(tx.signatures[0]), last_valid)
            if status is not None:
                return str(tx.signatures[0]), status
            log.info("workload_blockhash_expired", signature=str(tx.signatures[0]),
                     last_valid_block_height=last_valid)
            if self._hash is not None and self._hash[0] == blockhash:
                self._hash = None
        raise WorkloadError(f"a transaction's blockhash expired {RESIGNS} times before it landed")

    async def send_and_wait(self, instructions: Sequence[Instruction], signers: Sequence[Keypair],
                            ) -> SignatureStatus:
        signature, status = await self.land(
            lambda blockhash: txs.sign(signers[0], instructions, signers, blockhash))
        if status.err is not None:
            raise WorkloadError(f"set-up transaction {signature} failed: {status.err}")
        return status

    async def airdrop(self, wallet: str, lamports: int) -> str:
        return str(await self.rpc.call("requestAirdrop", [wallet, lamports]))

    # -- set-up ---------------------------------------------------------------------------
    async def setup(self) -> None:
        cast, config = self.plan.cast, self.config
        treasury_needs = (sum(s.legs[0].amount_raw for s in self.plan.setup) + 10 * LAMPORTS_PER_SOL
                          + LAMPORTS_PER_SOL * (len(cast.users) + len(cast.agents)) // 100)
        grants = [(u, config.user_lamports) for u in cast.users]
        grants += [(cast.poor, config.poor_lamports), (cast.treasury, treasury_needs)]
        drops = await asyncio.gather(*(self.airdrop(w, lamports) for w, lamports in grants))
        for status in await asyncio.gather(*(self.statuses.wait(s) for s in drops)):
            if status.err is not None:
                raise WorkloadError(f"airdrop failed: {status.err}")
        await asyncio.gather(*(self.run_step(step) for step in self.plan.setup))
        log.info("workload_funded", users=len(cast.users), agents=len(cast.agents))
        if config.usdc:
            await self.setup_usdc()
        if any(step.via_lookup_table for step in self.plan.steps):
            await self.setup_lookup_table()

    async def _missing(self, addresses: Sequence[str]) -> set[str]:
        answers = await self.rpc.batch([("getAccountInfo", [a, {"encoding": "base64",
                                                                 "commitment": "processed"}])
                                        for a in addresses])
        missing = set()
        for address, answer in zip(addresses, answers, strict=True):
            if isinstance(answer, Exception):
                raise answer
            if answer.get("value") is None:
                missing.add(address)
        return missing

    async def setup_usdc(self) -> None:
        cast, payer = self.plan.cast, self.treasury
        mint = Pubkey.from_string(cast.mint)
        if await self._missing([cast.mint]):
            rent = int(await self.rpc.call("getMinimumBalanceForRentExemption", [txs.MINT_SIZE]))
            await self.send_and_wait(txs.create_mint(payer.pubkey(), mint, payer.pubkey(), rent),
                                     [payer, self.keys[cast.mint]])
        rent = int(await self.rpc.call("getMinimumBalanceForRentExemption", [txs.TOKEN_ACCOUNT_SIZE]))
        wallets = [*cast.users, *cast.agents]
        missing = await self._missing([cast.token_accounts[w] for w in wallets])

        async def prepare(wallet: str) -> None:
            account = cast.token_accounts[wallet]
            instructions: list[Instruction] = []
            signers = [payer]
            if account in missing:
                instructions += txs.create_token_account(payer.pubkey(), Pubkey.from_string(account), mint,
                                                         Pubkey.from_string(wallet), rent)
                signers.append(self.keys[account])
            if wallet in cast.users and self.config.user_usdc:
                instructions.append(txs.mint_to(mint, Pubkey.from_string(account), payer.pubkey(),
                                                self.config.user_usdc))
            if instructions:
                await self.send_and_wait(instructions, signers)

        await asyncio.gather(*(prepare(w) for w in wallets))
        log.info("workload_usdc_ready", mint=cast.mint, accounts=len(wallets))

    async def setup_lookup_table(self) -> None:
        payer = self.treasury
        info = await self.rpc.call("getAccountInfo", [str(SLOT_HASHES), {"encoding": "base64",
                                                                          "commitment": "confirmed"}])
        if info.get("value") is not None:
            recent_slot = txs.slot_from_slot_hashes(base64.b64decode(info["value"]["data"][0]))
        else:  # a node that does not serve the sysvar: a finalized slot is in SlotHashes too
            recent_slot = await self.rpc.get_slot("finalized")
        create, table = txs.create_lookup_table(payer.pubkey(), payer.pubkey(), recent_slot)
        agents = [Pubkey.from_string(a) for a in self.plan.cast.agents[:256]]
        chunks = [agents[i:i + txs.EXTEND_CHUNK] for i in range(0, len(agents), txs.EXTEND_CHUNK)]
        last_slot = 0
        for n, chunk in enumerate(chunks):  # in order: the table's indexes follow the extensions
            extend = txs.extend_lookup_table(table, payer.pubkey(), payer.pubkey(), chunk)
            status = await self.send_and_wait([create, extend] if n == 0 else [extend], [payer])
            last_slot = status.slot
        # Addresses appended in slot S are usable from slot S + 1.
        while await self.rpc.get_slot("processed") <= last_slot:
            await self.sleep(STATUS_POLL)
        self.lookup_table = AddressLookupTableAccount(table, agents)
        log.info("workload_lookup_table_ready", table=str(table), addresses=len(agents))

    # -- steps ----------------------------------------------------------------------------
    def _landed_future(self, index: int) -> asyncio.Future[SignatureStatus]:
        if index not in self._landed:
            self._landed[index] = asyncio.get_running_loop().create_future()
        return self._landed[index]

    async def run_step(self, step: Step) -> None:
        """Send one step (after the payment a refund names has landed) and wait until it lands."""
        landed = self._landed_future(step.index)
        try:
            memo = step.memo
            if step.refund_of_step is not None:
                paid = await self._landed_future(step.refund_of_step)
                if paid.err is not None:
                    raise WorkloadError(f"step {step.index} refunds a payment that failed")
                memo = resolve_memo(step.memo, self.signatures, step.refund_of_step)
            if step.kind == "airdrop":
                async with self._in_flight:
                    signature = await self.airdrop(step.signer, step.legs[0].amount_raw)
                status = await self.statuses.wait(signature)
            else:
                signature, status = await self.land(
                    lambda blockhash: txs.step_transaction(step, self.plan.cast, self.keys, blockhash,
                                                           memo_text=memo, lookup_table=self.lookup_table),
                    skip_preflight=step.expect_error)
            self.signatures[step.index] = signature
            landed.set_result(status)
        except BaseException as exc:
            if not landed.done():
                landed.set_exception(exc)
                landed.exception()  # retrieved: the step's own task reports it
            raise
        self.errors[step.index] = status.err
        self.sent[step.kind] += 1
        if (status.err is not None) != step.expect_error:
            raise WorkloadError(
                f"step {step.index} ({step.kind}) {signature}: expected "
                f"{'a failure' if step.expect_error else 'success'}, the chain says err={status.err}")

    async def traffic(self) -> None:
        """Every planned step at its due time; top-ups land before the step they serve."""
        start = self.clock()
        due_index = 0
        tasks: list[asyncio.Task[None]] = []
        try:
            for step in self.plan.steps:
                if step.is_topup:
                    await self.run_step(step)
                    continue
                delay = start + due_index / self.config.rate - self.clock()
                if delay > 0:
                    await self.sleep(delay)
                due_index += 1
                if step.refund_of_step is not None:
                    self._landed_future(step.refund_of_step)
                tasks.append(asyncio.create_task(self.run_step(step)))
                # Surface a failed step now instead of after the whole schedule.
                for task in [t for t in tasks if t.done()]:
                    task.result()
                    tasks.remove(task)
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def _blockhash_not_found(exc: RpcError) -> bool:
    """sendTransaction's preflight refused the transaction for its blockhash."""
    return isinstance(exc.data, Mapping) and exc.data.get("err") == "BlockhashNotFound"


@contextlib.asynccontextmanager
async def _watching(statuses: _Statuses) -> AsyncIterator[None]:
    task = asyncio.create_task(statuses.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def write_truth(path: Path, rows: Sequence[TruthRow]) -> None:
    """The truth file: one JSON object per line, in the order given (sorted by the planner)."""
    path.write_bytes(b"".join(orjson.dumps(row.to_json()) + b"\n" for row in rows))


def summary_path_for(truth_path: Path) -> Path:
    return truth_path.with_name(f"{truth_path.stem}.summary.json")


async def run_workload(config: WorkloadConfig, *, session: aiohttp.ClientSession | None = None,
                       register: Register | None = None,
                       sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                       clock: Callable[[], float] = time.monotonic) -> WorkloadSummary:
    """Set up, register, send the planned traffic, check it against the chain, write the truth.

    ``register`` receives what the database must know before the traffic; by default,
    when ``config.database_url`` is set, it is inserted there (``register_marketplace``).
    """
    if config.rate <= 0:
        raise ValueError("rate must be positive")
    plan_ = plan(config)
    if register is None and config.database_url:
        url = config.database_url

        async def register_in_database(registration: Registration) -> None:
            await asyncio.to_thread(register_marketplace, url, registration)

        register = register_in_database
    log.info("workload_start", rpc=redact_url(config.rpc_url), seed=config.seed,
             steps=len(plan_.steps), rate=config.rate)
    async with RpcClient([config.rpc_url], session=session, max_concurrency=config.max_in_flight,
                         give_up_after=30.0, sleep=sleep) as rpc:
        sender = _Sender(config, plan_, rpc, sleep=sleep, clock=clock)
        async with _watching(sender.statuses):
            await sender.setup()
            if register is not None:
                await register(registration_for(plan_))
                log.info("workload_registered", agents=len(plan_.cast.agents), tasks=len(plan_.tasks))
            await sender.traffic()
    rows = truth_rows(plan_, sender.signatures)
    cast = plan_.cast
    summary = WorkloadSummary(
        seed=config.seed, sent=sum(n for k, n in sender.sent.items() if k in KINDS), rows=len(rows),
        by_kind=dict(sorted((k, n) for k, n in sender.sent.items() if k in (*KINDS, SETUP_KIND))),
        by_type_status=counts(rows), agent_wallets=cast.agents, user_wallets=cast.users,
        poor_wallet=cast.poor, treasury_wallet=cast.treasury, mint=cast.mint if config.usdc else None,
        lookup_table=str(sender.lookup_table.key) if sender.lookup_table else None,
        truth_path=str(config.truth_path) if config.truth_path else None,
        summary_path=str(summary_path_for(config.truth_path)) if config.truth_path else None,
        expected=rows, task_owners={str(t.id): t.agent_wallet for t in plan_.tasks})
    if config.truth_path is not None:
        write_truth(config.truth_path, rows)
        document = {**summary.to_json(), "rpc_url": redact_url(config.rpc_url)}
        summary_path_for(config.truth_path).write_bytes(orjson.dumps(document, option=orjson.OPT_INDENT_2))
    log.info("workload_done", sent=summary.sent, rows=summary.rows, by_type_status=summary.by_type_status)
    return summary
