"""The ingest pipeline: signatures in, committed rows out.

    WorkUnit ──▶ fetch workers ──▶ decode (pure) ──▶ writer ──▶ one DB transaction
    (signatures,  (JSON-RPC batches   (+ task check)    (coalesces     (rows, dead letters,
     cursor?)      of getTransaction)                    units)          cursor advances)

A unit is the grain of the no-loss contract: its rows, its dead letters and its cursor
advance (when it carries one) commit in the same transaction, so a cursor never passes a
signature whose row is not committed. Live notifications are units without a cursor;
gap-fill and backfill chunks carry the cursor of their newest signature.

Batching is natural rather than timed: each stage takes one item, then whatever else
is already waiting, up to a bound. Live traffic therefore flows in batches of one or two
(low latency) and a catch-up flows in large batches (high throughput).

Signatures committed recently are remembered (a bounded LRU) so a live notification
followed by the reconciliation poll does not fetch the same transaction twice. Only
committed signatures are remembered: a signature merely in flight is fetched again
rather than risk a cursor passing an uncommitted row.

A unit's result names the lives of the servers its work was committed on (the writer's
``WriteResult.server``; that of an earlier commit for a signature it skipped as
remembered): work that continues from the unit (a backfill's progress) can tell a
failover or a crash that may have lost it. A batch committed on a new life forgets
what the LRU remembers: the old life's commits may be gone.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import orjson
import structlog

from indexer.decode import DecodedTransaction, decode_transaction
from indexer.errors import DecodeError, IndexerError, ServerChanged, TransientError
from indexer.metrics import Metrics
from indexer.sink import Batch, CursorAdvance, DeadLetter, WriteResult

log = structlog.get_logger(__name__)


class TransactionSource(Protocol):
    async def get_transactions(self, signatures: Sequence[str]) -> Sequence[Any]:
        """getTransaction results in order: a result object, None (unknown) or an exception."""
        ...


Writer = Callable[[Batch], Awaitable[WriteResult]]
TaskLookup = Callable[[Sequence[UUID]], Awaitable[dict[UUID, str]]]

# Decoding a fetched batch yields to the event loop after every this many transactions.
# A batch of 100 takes ~4 ms of CPU; held that long, every round trip of the writer (the
# stage that limits a catch-up) waits behind it. Measured on a 10,000-transaction
# backfill, interleaved runs: 15-25% more transactions per second with 5 than with no
# yield (3 and 10 did less well).
DECODE_SLICE = 5


# Task owners remembered (task id -> its agent's wallet). Emptied when full: a
# long-running daemon sees ever new tasks, and a forgotten one costs one lookup.
TASK_OWNERS_KEPT = 100_000
# "No such task" is remembered this long only: the marketplace may insert a task just
# after a payment for it was sent, and the next payment must then find it. Until then a
# memo naming it costs no lookup (a flood of made-up task ids: one query per id and
# period). A payment decoded while its task was unknown is written as a funding.
UNKNOWN_TASK_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class WorkUnit:
    signatures: tuple[str, ...]
    source: str  # live | gapfill | backfill
    cursor: CursorAdvance | None = None
    received_at: float | None = None  # monotonic time a live notification arrived


@dataclass(slots=True)
class UnitResult:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    skipped_signatures: int = 0
    servers: frozenset[UUID] = frozenset()  # the lives its work was committed in


@dataclass(slots=True)
class _Pending:
    unit: WorkUnit
    future: asyncio.Future[UnitResult]
    attempts: int = 0


@dataclass(slots=True)
class _Decoded:
    pending: _Pending
    rows: list[Any] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    processed: list[str] = field(default_factory=list)
    earlier: set[UUID] = field(default_factory=set)  # lives of the remembered ones skipped


class CommittedSignatures(OrderedDict[str, "UUID | None"]):
    """A bounded LRU of signatures whose processing is committed, each with the life of the
    server it was committed on (None: unknown). An OrderedDict itself, so that ``in`` --
    asked of every signature fetched -- is the dict's own, in C."""

    def __init__(self, capacity: int = 200_000) -> None:
        super().__init__()
        self.capacity = capacity

    def add_all(self, signatures: Sequence[str], server: UUID | None = None) -> None:
        for signature in signatures:
            self[signature] = server
            self.move_to_end(signature)
        while len(self) > self.capacity:
            self.popitem(last=False)


def retrieved(future: asyncio.Future[Any]) -> None:
    """A done callback for units nobody awaits any more: their failure (logged by the
    pipeline) is retrieved, so asyncio does not report it again when they are collected."""
    if not future.cancelled():
        future.exception()


class Pipeline:
    """Fetch, decode and write work units; ``run()`` drives the workers."""

    def __init__(
        self,
        *,
        source: TransactionSource,
        writer: Writer,
        watched: Callable[[], Container[str]],
        metrics: Metrics,
        task_lookup: TaskLookup | None = None,
        on_token_account: Callable[[str, str], None] | None = None,
        fetch_workers: int = 4,
        fetch_batch: int = 100,
        write_batch_rows: int = 2000,
        not_found_retries: int = 5,
        retry_delay: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.writer = writer
        self.watched = watched
        self.metrics = metrics
        self.task_lookup = task_lookup
        self.on_token_account = on_token_account
        self.fetch_workers = fetch_workers
        self.fetch_batch = fetch_batch
        self.write_batch_rows = write_batch_rows
        self.not_found_retries = not_found_retries
        self.retry_delay = retry_delay
        self.clock = clock
        self.wall_clock = wall_clock
        self.committed = CommittedSignatures()
        self.server: UUID | None = None  # the life the last batch was committed in
        self._fetch_q: asyncio.Queue[_Pending] = asyncio.Queue()
        self._write_q: asyncio.Queue[_Decoded] = asyncio.Queue()
        self._task_owners: dict[UUID, str] = {}
        self._unknown_tasks: dict[UUID, float] = {}  # task id -> when "no such task" expires
        self._in_flight = 0
        # One fetched batch is decoded at a time (the slices still let the writer and the
        # sockets in). Interleaved, the fetch workers' batches all finished together, late:
        # the writer waited for the first of them (at a backfill's start, ~80 ms).
        self._decoding = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()

    # -- intake ---------------------------------------------------------------------------
    def submit(self, unit: WorkUnit) -> asyncio.Future[UnitResult]:
        future: asyncio.Future[UnitResult] = asyncio.get_running_loop().create_future()
        self.metrics.child(self.metrics.signatures_seen, unit.source).inc(len(unit.signatures))
        self._in_flight += 1
        self._idle.clear()
        self._fetch_q.put_nowait(_Pending(unit, future))
        return future

    async def process(self, unit: WorkUnit) -> UnitResult:
        return await self.submit(unit)

    def forget_committed(self) -> None:
        """Forget every signature remembered as committed: the server they were committed
        on is gone, and they must be fetched and written again."""
        self.committed.clear()

    async def wait_idle(self) -> None:
        """Until every submitted unit is committed or failed."""
        await self._idle.wait()

    @property
    def backlog(self) -> int:
        return self._in_flight

    def _finish(self, pending: _Pending, result: UnitResult | BaseException) -> None:
        if not pending.future.done():
            if isinstance(result, BaseException):
                pending.future.set_exception(result)
            else:
                pending.future.set_result(result)
        self._in_flight -= 1
        if self._in_flight == 0:
            self._idle.set()

    # -- workers --------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for index in range(self.fetch_workers):
                group.create_task(self._fetch_loop(), name=f"fetch-{index}")
            group.create_task(self._write_loop(), name="writer")

    async def _fetch_loop(self) -> None:
        while True:
            first = await self._fetch_q.get()
            units = [first]
            count = len(first.unit.signatures)
            while count < self.fetch_batch and not self._fetch_q.empty():
                nxt = self._fetch_q.get_nowait()
                units.append(nxt)
                count += len(nxt.unit.signatures)
            try:
                await self._fetch_and_decode(units)
            except Exception as exc:  # a unit must never be left unresolved
                log.exception("fetch_failed", error=str(exc))
                for pending in units:
                    self._finish(pending, exc)

    async def _fetch_and_decode(self, units: list[_Pending]) -> None:
        wanted = sorted({s for p in units for s in p.unit.signatures if s not in self.committed})
        raws = await self.source.get_transactions(wanted) if wanted else []
        by_signature = dict(zip(wanted, raws, strict=True))
        decoded_by_sig: dict[str, DecodedTransaction] = {}
        failures: dict[str, BaseException] = {}
        letters: dict[str, DeadLetter] = {}
        not_found: set[str] = set()
        watched = self.watched()
        # Task owners come from a cache; a transaction whose memo names a task not cached
        # yet is decoded again once the owners are looked up (one query per batch).
        missed: list[UUID] = []
        recheck: list[str] = []
        task_owner = self._cached_owner(missed) if self.task_lookup is not None else None
        async with self._decoding:
            for position, (signature, raw) in enumerate(by_signature.items(), 1):
                if position % DECODE_SLICE == 0:
                    await asyncio.sleep(0)  # see DECODE_SLICE
                if isinstance(raw, Exception):
                    failures[signature] = raw
                elif raw is None:
                    not_found.add(signature)
                else:
                    try:
                        asked = len(missed)
                        decoded_by_sig[signature] = decode_transaction(raw, watched, task_owner=task_owner)
                        if len(missed) > asked:
                            recheck.append(signature)
                    except DecodeError as exc:
                        self.metrics.decode_errors.labels(exc.reason).inc()
                        log.warning("decode_error", signature=signature, reason=exc.reason)
                        letters[signature] = DeadLetter(
                            stage="decode", reason=exc.reason, error=str(exc), signature=signature,
                            payload=orjson.dumps(raw, default=str).decode())
        if recheck:
            await self._check_tasks(decoded_by_sig, recheck, missed, by_signature, watched)
        retry: list[_Pending] = []
        kinds: Counter[tuple[str, str]] = Counter()  # decoded rows by (type, status)
        for pending in units:
            sigs = pending.unit.signatures
            failed = [s for s in sigs if s in failures] if failures else None
            if failed:
                # Transient trouble that outlived the RPC client's retries: the unit fails
                # as a whole; its cursor does not move and a later pass fetches it again.
                self._finish(pending, failures[failed[0]])
                continue
            missing = [s for s in sigs if s in not_found] if not_found else None
            if missing and pending.attempts < self.not_found_retries:
                pending.attempts += 1
                retry.append(pending)
                continue
            item = _Decoded(pending)
            for signature in sigs:
                if signature in decoded_by_sig:
                    self._account(decoded_by_sig[signature], item)
                elif signature in letters:
                    item.dead_letters.append(letters[signature])
                elif signature in not_found:
                    self.metrics.decode_errors.labels("transaction_not_found").inc()
                    item.dead_letters.append(DeadLetter(
                        stage="fetch", reason="transaction_not_found", signature=signature,
                        error=f"getTransaction returned null {pending.attempts + 1} times"))
                else:  # remembered as committed, not fetched: the unit rests on that commit
                    if (life := self.committed.get(signature)) is not None:
                        item.earlier.add(life)
                    continue
                item.processed.append(signature)
            kinds.update((row.transaction_type, row.status) for row in item.rows)
            self._write_q.put_nowait(item)
        for (type_, status), count in kinds.items():  # once per kind: inc() takes a lock
            self.metrics.child(self.metrics.decoded, type_, status).inc(count)
        for pending in retry:
            # A node behind its peers (load-balanced providers) may not have it yet.
            delay = self.retry_delay * pending.attempts
            asyncio.get_running_loop().call_later(delay, self._fetch_q.put_nowait, pending)

    def _account(self, decoded: DecodedTransaction, item: _Decoded) -> None:
        if self.on_token_account is not None:
            # A token account of a watched agent: transfers to it do not mention the
            # agent's wallet, so it must be watched (listed) itself.
            for account, owner in decoded.owned_token_accounts:
                self.on_token_account(owner, account)
        if decoded.memo_rejection is not None:
            self.metrics.child(self.metrics.memo_rejections, decoded.memo_rejection.reason).inc()
        for skipped in decoded.skipped:
            self.metrics.child(self.metrics.skipped_legs, getattr(skipped, "reason", "skipped")).inc()
        conflicts = getattr(decoded, "conflicts", ())
        if conflicts:
            item.dead_letters.append(DeadLetter(
                stage="decode", reason="multiple_rows_per_agent", signature=decoded.signature,
                error=f"{len(conflicts)} agents with more than one row"))
        item.rows.extend(decoded.rows)

    def remember_task_owners(self, owners: Mapping[UUID, str]) -> None:
        """Seed the task owners (a backfill loads its agents' tasks before it starts: its
        first batches would otherwise each wait for a lookup while the writer idles)."""
        for task_id, wallet in owners.items():
            self._remember_owner(task_id, wallet)

    def _remember_owner(self, task_id: UUID, wallet: str | None) -> None:
        if wallet is None:
            if len(self._unknown_tasks) >= TASK_OWNERS_KEPT:
                self._unknown_tasks.clear()
            self._unknown_tasks[task_id] = self.clock() + UNKNOWN_TASK_SECONDS
            return
        if len(self._task_owners) >= TASK_OWNERS_KEPT:
            self._task_owners.clear()
        self._task_owners[task_id] = wallet
        self._unknown_tasks.pop(task_id, None)

    def _known(self, task_id: UUID, now: float) -> bool:
        """Whether the cache answers for ``task_id``: an owner, or a fresh "no such task"."""
        return task_id in self._task_owners or self._unknown_tasks.get(task_id, now) > now

    def _cached_owner(self, missed: list[UUID]) -> Callable[[UUID], str | None]:
        owners = self._task_owners
        now = self.clock()

        def owner(task_id: UUID) -> str | None:
            if task_id in owners:
                return owners[task_id]
            if not self._known(task_id, now):
                missed.append(task_id)
            return None
        return owner

    async def _check_tasks(self, decoded: dict[str, DecodedTransaction], signatures: list[str],
                           missed: list[UUID], raws: dict[str, Any], watched: Container[str]) -> None:
        """Look up the task owners not cached yet; decode ``signatures`` again with them."""
        assert self.task_lookup is not None
        answered: dict[UUID, str | None] = {}  # kept here too: the cache may be emptied meanwhile
        now = self.clock()
        unknown = [t for t in dict.fromkeys(missed) if not self._known(t, now)]
        if unknown:
            found = await self.task_lookup(unknown)
            for task_id in unknown:
                answered[task_id] = found.get(task_id)
                self._remember_owner(task_id, answered[task_id])
        cached = self._task_owners

        def owner(task_id: UUID) -> str | None:
            return answered[task_id] if task_id in answered else cached.get(task_id)

        for signature in signatures:
            decoded[signature] = decode_transaction(raws[signature], watched, task_owner=owner)

    async def _write_loop(self) -> None:
        while True:
            first = await self._write_q.get()
            items = [first]
            rows = len(first.rows)
            while rows < self.write_batch_rows and not self._write_q.empty():
                nxt = self._write_q.get_nowait()
                items.append(nxt)
                rows += len(nxt.rows)
            await self._write(items)

    async def _write(self, items: list[_Decoded]) -> None:
        batch = Batch(
            rows=tuple(r for i in items for r in i.rows),
            cursors=tuple(i.pending.unit.cursor for i in items if i.pending.unit.cursor is not None),
            dead_letters=tuple(d for i in items for d in i.dead_letters),
        )
        started = self.clock()
        try:
            result = await self.writer(batch)
        except IndexerError as exc:
            # server_changed: a writer bound to a server life met another (the daemon
            # starts over from its cursors), neither an outage nor a bad batch.
            kind = ("server_changed" if isinstance(exc, ServerChanged)
                    else "transient" if isinstance(exc, TransientError) else "permanent")
            self.metrics.db_errors.labels(kind).inc()
            (log.warning if kind == "server_changed" else log.error)(
                "write_failed", error=str(exc), kind=kind, rows=len(batch.rows))
            for item in items:
                self._finish(item.pending, exc)
            return
        if result.server != self.server:
            if self.server is not None:  # what the old life committed may be gone
                self.forget_committed()
            self.server = result.server
        now = self.clock()
        self.metrics.db_batch_rows.observe(len(batch.rows))
        self.metrics.db_batch_seconds.observe(now - started)
        for (type_, status), count in result.inserted.items():
            self.metrics.written.labels(type_, status).inc(count)
        self.metrics.duplicates.inc(result.duplicates)
        for letter in batch.dead_letters:
            self.metrics.dead_letters.labels(letter.stage, letter.reason).inc()
        wall = self.wall_clock()
        for item in items:
            unit = item.pending.unit
            if unit.source != "backfill":  # history's age is not our lag
                for row in item.rows:
                    if row.block_time is not None:
                        self.metrics.block_to_commit.observe(max(0.0, wall - row.block_time))
            self.committed.add_all(item.processed, result.server)
            if unit.received_at is not None:
                self.metrics.ingest_latency.labels(unit.source).observe(now - unit.received_at)
            servers = item.earlier if result.server is None else {result.server, *item.earlier}
            self._finish(item.pending, UnitResult(
                rows=len(item.rows), dead_letters=len(item.dead_letters),
                skipped_signatures=len(unit.signatures) - len(item.processed),
                servers=frozenset(servers)))
        if batch.rows:
            self.metrics.indexed_slot.set(max(row.slot for row in batch.rows))
