"""The daemon: every stage of the pipeline wired together, started and stopped in order.

    registry (LISTEN) ─▶ subscriptions (websockets) ─sig─▶ pipeline ─▶ Postgres
                          └─ on (re)subscribe ─▶ gap-fill queue ─┘
    reconciliation timer ─▶ gap-fill queue       finality loop, rankings loop,
    slot poller (lag)                             ops endpoint (/metrics /healthz /readyz)

The rankings loop refreshes the leaderboard on a schedule and soon after the database
signals a stats change (debounced, one runner cluster-wide); the retention loop prunes
expired tasks and messages once a day (one pruner at a time).

Replicas: the daemon first takes its shard's advisory lock (on a connection kept for
it), so a second replica of the same shard waits as a standby and takes over when the
active one's connection dies. Shutdown (SIGTERM/SIGINT): stop intake (subscriptions,
registry, timers), let the pipeline commit what it holds within ``shutdown_timeout``,
cancel the rest, close the pools. Anything not committed by then is not lost: the
cursors did not pass it, and the next start's gap-fill fetches it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import random
import signal
import time
from collections.abc import Awaitable, Callable, Collection
from typing import Any
from uuid import UUID

import psycopg
import structlog
from prometheus_client import CollectorRegistry
from psycopg_pool import AsyncConnectionPool

from indexer import finality
from indexer.config import Settings, redact_url
from indexer.db.connection import server_life, translate
from indexer.db.task_owners import task_owner_lookup
from indexer.errors import DatabaseUnavailable, first_line, is_transient
from indexer.gapfill import GapFiller
from indexer.metrics import Metrics
from indexer.ops import start_ops_server
from indexer.pipeline import Pipeline, WorkUnit, retrieved
from indexer.rankings import run_scheduler
from indexer.registry import Shard, WalletRegistry
from indexer.retention import run_retention
from indexer.rpc import PubSubConnection, RpcClient
from indexer.sink import PostgresWriter, writer_pool
from indexer.subscriptions import SubscriptionManager

log = structlog.get_logger(__name__)


LOCK_PROBE_INTERVAL = 1.0  # seconds between checks that the shard lock's session lives
PENDING_COUNT_INTERVAL = 5.0  # seconds between counts of pending rows while finality catches up
LOCK_PROBE_TIMEOUT = 5.0


def freeze_long_lived_objects() -> None:
    """Take what start-up built (10,000 wallets' registry, subscriptions, token accounts,
    modules) out of the garbage collector's view: it lives as long as the daemon, and
    every full collection would walk it again -- a pause of tens to hundreds of ms at
    10,000 wallets, with notifications waiting behind it. Later garbage is collected as
    usual."""
    gc.collect()
    gc.freeze()
    log.info("gc_frozen", objects=gc.get_freeze_count())


async def _cancel_until_done(tasks: set[asyncio.Task[Any]], *, every: float = 1.0) -> None:
    """Cancel ``tasks`` and wait for them, cancelling again every ``every`` s: a task whose
    cancellation was swallowed on the way would otherwise hold the shutdown forever."""
    pending = tasks
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every)
    for task in tasks:
        if not task.cancelled():
            task.exception()  # retrieved: one that ended the run was logged when it did


def shard_lock_key(shard: Shard) -> int:
    digest = hashlib.sha256(f"amoca-indexer:shard:{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Daemon:
    def __init__(self, settings: Settings, database_url: str, *,
                 registry: CollectorRegistry | None = None, handle_signals: bool = True) -> None:
        self.settings = settings
        self.database_url = database_url
        self.registry = registry or CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.shard = Shard.parse(settings.shard)
        self.metrics.shard_active.labels(str(self.shard)).set(0)  # a standby until the lock
        self.stopping = asyncio.Event()
        self.active = asyncio.Event()
        self.ops_port: int | None = None
        self.handle_signals = handle_signals  # False when embedded (demo, benchmarks)
        self._pending_counted_at = float("-inf")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(self.database_url, autocommit=True,
                                                         connect_timeout=10)
        except psycopg.Error as exc:
            raise translate(exc) from None

    # -- lifecycle ------------------------------------------------------------------------
    async def run(self) -> None:
        """Until SIGTERM/SIGINT (or ``stopping`` is set)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT) if self.handle_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.stopping.set)
        log.info("daemon_starting", shard=str(self.shard),
                 rpc=[redact_url(u) for u in self.settings.rpc_urls],
                 ws=redact_url(self.settings.effective_ws_url))
        self.ready_checks: dict[str, Callable[[], Awaitable[tuple[bool, str]]]] = {}
        ops = await start_ops_server(self.registry, {"daemon": self._ready},
                                     port=self.settings.metrics_port)
        self.ops_port = ops.port
        log.info("ops_listening", port=ops.port)
        try:
            while not self.stopping.is_set():
                locked = await self._acquire_shard_lock()
                if locked is None:
                    break
                lock_conn, life = locked
                self.metrics.shard_active.labels(str(self.shard)).set(1)
                try:
                    await self._run_active(lock_conn, life)
                finally:
                    self.active.clear()
                    self.metrics.shard_active.labels(str(self.shard)).set(0)
                    with contextlib.suppress(Exception):
                        await lock_conn.close()
        finally:
            await ops.close()
            log.info("daemon_stopped")

    async def _acquire_shard_lock(self) -> tuple[psycopg.AsyncConnection[Any], UUID] | None:
        """The shard lock's connection and the life of the server it holds it in (the only
        one the daemon commits in until the lock is lost); None once stopping."""
        key = shard_lock_key(self.shard)
        waiting_logged = False
        while not self.stopping.is_set():
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await self._connect()
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                row = await cur.fetchone()
                if row and row[0]:
                    log.info("shard_lock_acquired", shard=str(self.shard))
                    return conn, await server_life(conn)
                await conn.close()
                if not waiting_logged:
                    log.info("standby_waiting_for_shard", shard=str(self.shard))
                    waiting_logged = True
            except (DatabaseUnavailable, psycopg.Error, OSError) as exc:
                log.warning("shard_lock_unavailable", error=str(exc))
                if conn is not None:  # lost as the lock was taken: the lock went with it
                    with contextlib.suppress(psycopg.Error, OSError):
                        await conn.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self.stopping.wait()
        return None

    async def _run_active(self, lock_conn: psycopg.AsyncConnection[Any], life: UUID) -> None:
        settings = self.settings
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            self.database_url, min_size=1, max_size=max(4, settings.gapfill_concurrency),
            open=False, kwargs={"autocommit": True}, name="amoca-indexer")
        await pool.open(wait=False)
        writes = writer_pool(self.database_url, synchronous_commit=settings.writer_synchronous_commit)
        await writes.open(wait=False)
        try:
            await self._serve(lock_conn, pool, writes, life=life)
        finally:  # an orderly shutdown closed them already, in order; this covers a failed start
            await writes.close()
            await pool.close()

    async def _serve(self, lock_conn: psycopg.AsyncConnection[Any], pool: AsyncConnectionPool[Any],
                     writes: AsyncConnectionPool[Any], *, life: UUID) -> None:
        settings = self.settings
        rate = settings.rpc_requests_per_second or None
        async with RpcClient(settings.rpc_urls, max_concurrency=settings.rpc_max_concurrency,
                             requests_per_second=rate, metrics=self.metrics,
                             commitment=settings.commitment, give_up_after=30.0) as rpc:
            wallet_registry = WalletRegistry(self._connect, self.shard)
            token_accounts: dict[str, set[str]] = {}  # agent wallet -> its token accounts

            def watched() -> frozenset[str]:
                return wallet_registry.wallets

            def on_token_account(owner: str, account: str) -> None:
                known = token_accounts.setdefault(owner, set())
                if account not in known and owner in wallet_registry.wallets:
                    known.add(account)
                    subs.add([account])

            # Commits in the shard lock's server life only: the cursors continue from what
            # was committed, and a failover's new server may lack it (sink.PostgresWriter).
            writer = PostgresWriter(writes, life=life)
            pipeline = Pipeline(source=rpc, writer=writer, watched=watched,
                                metrics=self.metrics, task_lookup=task_owner_lookup(pool),
                                on_token_account=on_token_account,
                                fetch_workers=settings.fetch_workers)
            filler = GapFiller(rpc=rpc, pipeline=pipeline, pool=pool)
            fill_queue: asyncio.Queue[str] = asyncio.Queue()
            queued: set[str] = set()

            def request_fill(wallets: frozenset[str]) -> None:
                for wallet in wallets:
                    if wallet not in queued:
                        queued.add(wallet)
                        fill_queue.put_nowait(wallet)

            def on_signature(wallet: str, signature: str, received: float) -> None:
                # A failed unit is logged by the pipeline; the next gap-fill fetches it again.
                pipeline.submit(WorkUnit((signature,), "live", received_at=received)).add_done_callback(
                    retrieved)

            async def discover_token_accounts(owners: Collection[str]) -> None:
                """Agents' SPL token accounts, watched like the wallets themselves."""
                ordered = sorted(owners)
                for start in range(0, len(ordered), 100):
                    part = ordered[start:start + 100]
                    try:
                        found = await rpc.get_token_accounts_by_owner(part)
                    except Exception as exc:  # retried at the next reconciliation
                        log.warning("token_account_discovery_failed", error=str(exc))
                        return
                    for owner, accounts in found.items():
                        for account in accounts:
                            on_token_account(owner, account)

            subs = SubscriptionManager(
                lambda: PubSubConnection.connect(settings.effective_ws_url),
                on_signature=on_signature, on_subscribed=request_fill, metrics=self.metrics,
                commitment=settings.commitment,
                max_per_connection=settings.max_subscriptions_per_connection,
                subscribe_rate=settings.subscribe_rate)
            self.pipeline, self.subs = pipeline, subs
            self.chain_slot = 0
            self.fills_running = 0
            self.fill_backlog = lambda: fill_queue.qsize() + self.fills_running
            self.indexed_slot = 0
            self.slot_lag = 0
            self.active.set()

            async def registry_loop() -> None:
                async for change in wallet_registry.changes():
                    gone = set(change.removed)
                    for wallet in change.removed:
                        gone |= token_accounts.pop(wallet, set())
                    subs.remove(gone)
                    subs.add(change.added)
                    if change.added:
                        await discover_token_accounts(change.added)

            fill_failures: dict[str, int] = {}  # wallet -> consecutive transient failures

            async def fill_worker() -> None:
                loop = asyncio.get_running_loop()
                while True:
                    wallet = await fill_queue.get()
                    queued.discard(wallet)
                    if wallet not in subs:
                        fill_failures.pop(wallet, None)
                        continue  # removed meanwhile
                    self.fills_running += 1
                    try:
                        await filler.fill(wallet)
                        fill_failures.pop(wallet, None)
                    except Exception as exc:
                        log.warning("gapfill_failed", wallet=wallet, error=first_line(exc))
                        if is_transient(exc):
                            # Left to the next reconciliation sweep, the gap (a resubscribe's,
                            # say) would hold rows back for minutes: retry soon, backing off
                            # per wallet so a long outage does not become a retry storm.
                            attempt = fill_failures[wallet] = fill_failures.get(wallet, 0) + 1
                            delay = min(30.0, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                            loop.call_later(delay, request_fill, frozenset((wallet,)))
                    finally:
                        self.fills_running -= 1

            async def reconcile_loop() -> None:
                """A rolling sweep: every watched wallet once per ``reconcile_interval``, at
                an even pace. Queueing 10,000 wallets at once would hold the event loop
                and the cluster for seconds, and live notifications would wait behind it."""
                while True:
                    wallets = sorted(subs.wallets)
                    if not wallets:
                        await asyncio.sleep(settings.reconcile_interval)
                        continue
                    step = max(1, len(wallets) // 1000)  # at most 1,000 pauses per sweep
                    pause = settings.reconcile_interval * step / len(wallets)
                    for start in range(0, len(wallets), step):
                        await asyncio.sleep(pause)
                        part = wallets[start:start + step]
                        await discover_token_accounts(
                            [w for w in part if w in wallet_registry.wallets])
                        request_fill(frozenset(part))

            async def slot_loop() -> None:
                heap_frozen = False
                while True:
                    if not heap_frozen and len(subs) and subs.settled and fill_queue.empty() \
                            and self.fills_running == 0:
                        heap_frozen = True  # start-up is done: wallets loaded, subscribed, filled
                        freeze_long_lived_objects()
                    with contextlib.suppress(Exception):
                        slot = await rpc.get_slot("confirmed")
                        self.chain_slot = slot
                        self.metrics.chain_slot.labels("confirmed").set(slot)
                        # Caught up = nothing queued anywhere while every socket is live: the
                        # chain's present is then indexed.
                        if pipeline.backlog == 0 and fill_queue.empty() and subs.connected:
                            self.indexed_slot = slot
                            self.metrics.indexed_slot.set(slot)
                        self.slot_lag = max(0, slot - self.indexed_slot)
                        self.metrics.slot_lag.set(self.slot_lag)
                    await asyncio.sleep(1.0)

            async def finality_loop() -> None:
                more = False
                while True:
                    try:
                        more = await self._finality_pass(pool, rpc, catching_up=more)
                    except Exception as exc:
                        more = False
                        log.warning("finality_pass_failed", error=str(exc))
                    # After a full batch that moved, the next comes soon: one batch of 1,000
                    # per interval would fall behind any rate above 500 tx/s. Soon, not at
                    # once: catching up must leave the database to the live writes too.
                    await asyncio.sleep(min(0.1, settings.finality_interval) if more
                                        else settings.finality_interval)

            async def lock_watch() -> None:
                """Returns when the shard lock's session is gone (the lock with it)."""
                while True:
                    await asyncio.sleep(LOCK_PROBE_INTERVAL)
                    try:
                        # Bounded: a peer that vanished without a FIN would hang it forever.
                        async with asyncio.timeout(LOCK_PROBE_TIMEOUT):
                            await lock_conn.execute("SELECT 1")
                    except (psycopg.Error, OSError, TimeoutError) as exc:
                        log.warning("shard_lock_lost", shard=str(self.shard),
                                    error=first_line(exc))
                        return

            intake: list[asyncio.Task[Any]] = []
            workers: list[asyncio.Task[Any]] = []
            lock_lost = False
            try:
                workers.append(asyncio.create_task(pipeline.run(), name="pipeline"))
                intake += [
                    asyncio.create_task(subs.run(), name="subscriptions"),
                    asyncio.create_task(registry_loop(), name="registry"),
                    asyncio.create_task(reconcile_loop(), name="reconcile"),
                    asyncio.create_task(slot_loop(), name="slots"),
                    asyncio.create_task(finality_loop(), name="finality"),
                    asyncio.create_task(run_scheduler(self._connect, self.metrics,
                                                      interval=settings.rankings_interval,
                                                      quiet=settings.rankings_quiet,
                                                      max_delay=settings.rankings_max_delay,
                                                      max_share=settings.rankings_max_share),
                                        name="rankings"),
                    asyncio.create_task(run_retention(self._connect, self.metrics,
                                                      interval=settings.retention_interval),
                                        name="retention"),
                    *(asyncio.create_task(fill_worker(), name=f"gapfill-{i}")
                      for i in range(settings.gapfill_concurrency)),
                ]
                watch = asyncio.create_task(lock_watch(), name="shard-lock")
                moved = asyncio.create_task(writer.moved.wait(), name="server-life")
                stop = asyncio.create_task(self.stopping.wait())
                done, _ = await asyncio.wait({stop, watch, moved, *intake, *workers},
                                             return_when=asyncio.FIRST_COMPLETED)
                if moved in done:  # before the lock's probe noticed: start over all the same
                    log.warning("shard_server_changed", shard=str(self.shard))
                lock_lost = watch in done or moved in done
                for task in done:
                    if task not in (stop, watch) and not task.cancelled() and task.exception():
                        log.error("daemon_task_failed", task=task.get_name(),
                                  error=repr(task.exception()))
                # Awaited: a lock probe cut short cancels its query, which must happen
                # before the lock's connection is closed (psycopg logged "query
                # cancellation failed: connection socket closed" at some shutdowns).
                # Cancelled again until they end, as the intake below.
                await _cancel_until_done({watch, moved, stop})
            finally:
                # Shutdown order: stop intake, drain the pipeline within the deadline,
                # then cancel the rest and close the pools. Without the shard lock nothing
                # more is written (a standby may own the shard by now): no drain. What was
                # in flight is not lost: no cursor passed it, the next gap-fill fetches it.
                # Cancelled again until they end: a gap-fill worker was seen waiting on its
                # queue after its cancellation had been swallowed somewhere in a fill. On
                # Python 3.11 asyncio.wait_for does that when the awaited work ends in the
                # same tick (python/cpython#86296); ours are gone (ruff bans it), but
                # psycopg_pool still waits for a connection with it.
                await _cancel_until_done(set(intake))
                if not lock_lost:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(settings.shutdown_timeout):
                            await pipeline.wait_idle()
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                await writes.close()
                await pool.close()

    async def _finality_pass(self, pool: AsyncConnectionPool[Any], rpc: RpcClient, *,
                             catching_up: bool = False, limit: int = 1000) -> bool:
        """One batch of pending rows moved on; True when the batch was full and moved, so
        more may be waiting (the next pass comes at once). ``catching_up``: the previous
        pass said so."""
        async with pool.connection() as conn:
            # The gauge counts every pending row (an index-only scan of them all): on every
            # pass when caught up, every few seconds while catching up (passes back to back).
            # Counted before any RPC call, so it stays true while the node is away.
            now = time.monotonic()
            if not catching_up or now - self._pending_counted_at >= PENDING_COUNT_INTERVAL:
                self._pending_counted_at = now
                pending = await finality.count_pending(conn)
                self.metrics.pending_rows.set(pending)
                waiting = pending > 0
            else:
                waiting = await finality.any_pending(conn)
        if not waiting:  # no RPC call at all
            return False
        finalized_slot = await rpc.get_slot("finalized")
        async with pool.connection() as conn:
            rows, full = await finality.pending_rows(conn, finalized_slot, limit=limit)
        if not rows:
            return False
        statuses = await rpc.get_signature_statuses([r.signature for r in rows])
        chain = {
            r.signature: (finality.ChainStatus(int(s.slot), s.err, s.confirmation_status)
                          if s is not None else None)
            for r, s in zip(rows, statuses, strict=True)
        }
        decisions = finality.decide(rows, chain, finalized_slot)
        if not (decisions.confirm or decisions.fail):
            return False
        async with pool.connection() as conn:
            started = time.monotonic()
            confirmed, failed = await finality.apply(conn, decisions)
            self.metrics.finality_update_seconds.observe(time.monotonic() - started)
        if confirmed:
            self.metrics.finality_transitions.labels("confirmed").inc(confirmed)
        if failed:
            self.metrics.finality_transitions.labels("failed").inc(failed)
        return full and confirmed + failed > 0

    async def _database_problem(self) -> str | None:
        try:
            async with asyncio.timeout(2.0):
                conn = await self._connect()
            await conn.close()
        except Exception as exc:
            return f"database: {exc}"
        return None

    async def _ready(self) -> tuple[bool, str]:
        if self.stopping.is_set():
            return False, "stopping"
        database = await self._database_problem()
        if not self.active.is_set():
            # A standby is ready when it could take over: it reaches the database. (An
            # unready standby would stall a rolling update and block every node drain.)
            if database is not None:
                return False, f"standby: {database}"
            return True, "standby: waiting for the shard lock"
        problems = [database] if database is not None else []
        if len(self.subs) and not self.subs.connected:
            problems.append("websocket: not connected")
        lag = self.slot_lag
        if lag > self.settings.readiness_max_slot_lag:
            problems.append(f"slot lag {lag} > {self.settings.readiness_max_slot_lag}")
        return (not problems, "; ".join(problems) or
                f"watching {len(self.subs)} wallets, lag {lag} slots, at {time.time():.0f}")
