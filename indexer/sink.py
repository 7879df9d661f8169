"""The sink: decoded rows, cursor advances and dead letters, committed in ONE transaction.

Idempotent by construction: rows are keyed (transaction_signature, agent_id) and
inserted with ON CONFLICT DO NOTHING (or copied, when none of them is there yet), so
re-delivery (a reconnect's gap-fill, a backfill running beside the daemon, a restart
after SIGKILL) writes nothing twice.
Statuses are never written backwards here: a row is inserted as the decoder saw it
(pending or failed) and only the finality tracker moves it on. Cursors only move
forward (by slot). Counterparty wallets are upserted into ``users`` first, in their own
statement, so the row insert's snapshot sees users a concurrent writer just added.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID
from weakref import WeakKeyDictionary

import orjson
import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from indexer.db.connection import pooled, server_life, translate
from indexer.errors import ServerChanged

log = structlog.get_logger(__name__)


class RowLike(Protocol):
    """What the sink needs of a decoded row (``indexer.decode.TransferRow``)."""

    @property
    def signature(self) -> str: ...
    @property
    def agent_wallet(self) -> str: ...
    @property
    def counterparty_wallet(self) -> str | None: ...
    @property
    def transaction_type(self) -> str: ...
    @property
    def amount(self) -> Decimal: ...
    @property
    def mint(self) -> str | None: ...
    @property
    def decimals(self) -> int: ...
    @property
    def status(self) -> str: ...
    @property
    def task_id(self) -> UUID | None: ...
    @property
    def refund_of(self) -> str | None: ...
    @property
    def slot(self) -> int: ...
    @property
    def block_time(self) -> int | None: ...
    def metadata_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class CursorAdvance:
    """Every signature of ``wallet`` up to and including ``signature`` is processed."""

    wallet: str
    signature: str
    slot: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Input set aside with the reason it could not be processed."""

    stage: str
    reason: str
    error: str
    signature: str | None = None
    wallet: str | None = None
    payload: str | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    rows: tuple[RowLike, ...] = ()
    cursors: tuple[CursorAdvance, ...] = ()
    dead_letters: tuple[DeadLetter, ...] = ()

    def __len__(self) -> int:
        return len(self.rows) + len(self.cursors) + len(self.dead_letters)


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: Counter[tuple[str, str]] = field(default_factory=Counter)
    duplicates: int = 0
    without_agent: int = 0
    dead_letters: int = 0
    cursors: int = 0
    copied: bool = False  # the rows went straight into the table by COPY (``_write_copied``)
    server: UUID | None = None  # the life of the server it committed on (``server_life``)

    @property
    def inserted_total(self) -> int:
        return sum(self.inserted.values())


# Arrays go as binary parameters (``%(name)b``): psycopg's text format quotes an array's
# elements as needed, testing each with a regular expression in Python (2% of a
# backfill's CPU, for the wallets of every batch); the binary format needs no quoting.

# Only the wallets not there yet go to the insert: an insert's uniqueness check on a
# wallet whose row another transaction is updating waits for that transaction to end,
# and the finality tracker's updates move users' totals (its trigger), for as long as a
# pass of thousands of rows lasts. The NOT EXISTS reads the snapshot and waits for
# nothing. (Seen in bench_daemon: the writer blocked on a finality pass 24% of a run,
# p99 1.2 s.) A wallet a concurrent writer is adding still waits for it, briefly.
_UPSERT_USERS = """
INSERT INTO users (wallet_address)
SELECT DISTINCT w FROM unnest(%(wallets)b::text[]) AS w
WHERE NOT EXISTS (SELECT FROM users u WHERE u.wallet_address = w)
ON CONFLICT (wallet_address) DO NOTHING
"""

# The row columns as the sink sends them: a JSON document's record type for small
# batches, the staging table's columns for large ones (see write_batch).
_ROW_COLUMNS = """signature text, agent text, counterparty text, type text, amount numeric,
    mint text, decimals int2, status text, task uuid, refund_of text, slot int8,
    block_time int8, metadata jsonb"""

_INSERT_FROM = """
WITH v AS (
    SELECT v.*, (SELECT a.id FROM agents a WHERE a.wallet_address = v.agent) AS agent_id
    FROM {rows}
), ins AS (
    INSERT INTO transactions (
        transaction_signature, agent_id, user_id, amount, transaction_type, status,
        created_at, slot, task_id, mint, decimals, refund_of, metadata)
    SELECT v.signature, v.agent_id, (SELECT u.id FROM users u WHERE u.wallet_address = v.counterparty),
           v.amount, v.type, v.status,
           COALESCE(timezone('utc', to_timestamp(v.block_time)), timezone('utc', now())),
           v.slot, (SELECT t.id FROM tasks t WHERE t.id = v.task), v.mint, v.decimals, v.refund_of,
           v.metadata
    FROM v
    WHERE v.agent_id IS NOT NULL
    ON CONFLICT (transaction_signature, agent_id) DO NOTHING
    RETURNING transaction_type, status
)
SELECT '', '', count(*) FROM v WHERE agent_id IS NOT NULL
UNION ALL
SELECT transaction_type, status, count(*) FROM ins GROUP BY 1, 2
"""

_INSERT_ROWS = _INSERT_FROM.format(rows=f"jsonb_to_recordset(%(rows)s::jsonb) AS v({_ROW_COLUMNS})")

# A batch of at least this many rows is copied: COPY straight into ``transactions``, the
# agents', users' and tasks' ids looked up first in one pipelined round trip. PostgreSQL
# then inserts the rows as one COPY does (no speculative insertion, no second parse of
# each row): for the backfill's own batches of 2,000 rows, 66-111 ms of server time
# against 135-190 for the staged insert below, in alternating runs on one server.
# COPY cannot skip a row that is already there: a batch that meets one (a backfill
# beside the daemon, a rerun over indexed history) fails as a whole and is written
# again by the insert that skips such rows, and the writer stays with that insert while
# its batches keep meeting rows (``PostgresWriter``).
# The insert stages the rows: COPY into a temporary table of this session, then the same
# INSERT from there (3-17% less server CPU per row than the JSON document, 10-28% less
# time per batch, in three replays of 2,000-row batches).
# A smaller batch (live traffic: one to a few rows) keeps the document, which goes in
# the same pipelined round trip as the rest; staging takes six round trips, not two.
COPY_FROM_ROWS = 50

# The staging table is created by a session's first large batch, when its role may
# create temporary tables (a hardened database may deny TEMPORARY): in a DO block, so
# that neither case raises or sends a notice. It lives as long as the session, empty
# between transactions.
_PREPARE_STAGE = f"""
DO $$
BEGIN
    IF to_regclass('pg_temp.amoca_staged_rows') IS NULL
       AND has_database_privilege(current_database(), 'TEMPORARY') THEN
        CREATE TEMPORARY TABLE amoca_staged_rows ({_ROW_COLUMNS}) ON COMMIT DELETE ROWS;
    END IF;
END $$
"""
_STAGE_READY = "SELECT to_regclass('pg_temp.amoca_staged_rows') IS NOT NULL"
_COPY_TO_STAGE = "COPY pg_temp.amoca_staged_rows FROM STDIN"
_INSERT_STAGED = _INSERT_FROM.format(rows="pg_temp.amoca_staged_rows AS v")

# The direct COPY's lookups: what the insert's subqueries find, asked once per batch. The
# ids come back as text, which COPY writes as it is (psycopg dumps a UUID in Python, and
# hashes it in Python too); a task's id as the key the rows carry and as that text.
_AGENT_IDS = "SELECT wallet_address, id::text FROM agents WHERE wallet_address = ANY(%(keys)b::text[])"
_USER_IDS = "SELECT wallet_address, id::text FROM users WHERE wallet_address = ANY(%(keys)b::text[])"
_TASK_IDS = "SELECT id, id::text FROM tasks WHERE id = ANY(%(keys)b::uuid[])"
_NOW = "SELECT timezone('utc', now())"  # created_at of a row without a block time, as the insert
_COPY_ROWS = """COPY transactions (transaction_signature, agent_id, user_id, amount, transaction_type,
    status, created_at, slot, task_id, mint, decimals, refund_of, metadata) FROM STDIN"""
_EPOCH = datetime(1970, 1, 1)

_ADVANCE_CURSORS = """
INSERT INTO indexer_cursors AS c (wallet_address, signature, slot)
SELECT * FROM unnest(%(wallet)b::text[], %(signature)b::text[], %(slot)b::int8[])
ON CONFLICT (wallet_address) DO UPDATE
    SET signature = excluded.signature, slot = excluded.slot, updated_at = now()
    WHERE c.slot IS NULL OR excluded.slot >= c.slot
"""

_INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (stage, reason, error, signature, wallet_address, payload)
SELECT * FROM unnest(%(stage)b::text[], %(reason)b::text[], %(error)b::text[],
                     %(signature)b::text[], %(wallet)b::text[], %(payload)b::text[])
"""


def _newest_per_wallet(cursors: Iterable[CursorAdvance]) -> list[CursorAdvance]:
    newest: dict[str, CursorAdvance] = {}
    for cursor in cursors:
        current = newest.get(cursor.wallet)
        if current is None or cursor.slot >= current.slot:
            newest[cursor.wallet] = cursor
    return list(newest.values())


def rows_document(rows: Sequence[RowLike]) -> bytes:
    """The rows as one JSON array for ``jsonb_to_recordset`` (pure: testable without a
    database). One document instead of thirteen text arrays: orjson writes it in C,
    where psycopg would quote every array element in Python. Keys in jsonb's order
    (``indexer.decode.models.jsonb_key_order``): the server parses it as jsonb."""
    return orjson.dumps([
        {"mint": r.mint, "slot": r.slot, "task": r.task_id, "type": r.transaction_type,
         "agent": r.agent_wallet, "amount": str(r.amount), "status": r.status,
         "decimals": r.decimals, "metadata": r.metadata_dict(), "refund_of": r.refund_of,
         "signature": r.signature, "block_time": r.block_time, "counterparty": r.counterparty_wallet}
        for r in rows])


def staged_values(row: RowLike) -> tuple[Any, ...]:
    """A row as COPY writes it to the staging table: ``_ROW_COLUMNS``, in their order."""
    return (row.signature, row.agent_wallet, row.counterparty_wallet, row.transaction_type,
            row.amount, row.mint, row.decimals, row.status, row.task_id, row.refund_of, row.slot,
            row.block_time, orjson.dumps(row.metadata_dict()).decode())


async def write_batch(conn: psycopg.AsyncConnection[Any], batch: Batch, *,
                      copy: bool = True, known: KnownIds | None = None) -> WriteResult:
    """Commit ``batch`` in one transaction on ``conn``; psycopg errors are translated.

    A small batch goes in pipeline mode: BEGIN, every statement and COMMIT go out
    together and their answers come back together -- one round trip to the server
    whatever the batch holds. Live transfers come in batches of one or a few, and on a busy
    machine every round trip waits for the server process and then for us to be scheduled
    again. A large one (``COPY_FROM_ROWS``) is copied straight into the table (``copy``)
    and, when a row of it is already there, inserted from a staging table instead, which
    skips such rows. COPY cannot be pipelined: the users upsert and the lookups of what
    ``known`` lacks, pipelined (nothing, once every agent, user and task of the batch is
    known); then COPY, alone -- it commits itself on an autocommit connection -- or, when
    the batch has dead letters or cursors to commit with its rows, BEGIN, COPY, those,
    pipelined, and COMMIT. The staged insert: BEGIN; the upsert and the staging table's
    preparation, pipelined; COPY; the insert, dead letters and cursors, pipelined; COMMIT."""
    try:
        if len(batch.rows) < COPY_FROM_ROWS:
            return await _write_pipelined(conn, batch)
        if copy:
            known = KnownIds() if known is None else known
            try:
                return await _write_copied(conn, batch, known)
            except (psycopg.errors.UniqueViolation, psycopg.errors.ForeignKeyViolation,
                    _CannotCopy) as exc:
                # Rolled back: a row already there, or an agent, user or task deleted since
                # it was looked up. The insert skips the one and reads the others anew (and
                # judges a block time out of range).
                known.clear()
                log.debug("copy_conflict", error=str(exc).splitlines()[0][:200])
        async with conn.transaction():
            return await _write_staged(conn, batch)
    except psycopg.Error as exc:
        raise translate(exc) from exc


async def _write_pipelined(conn: psycopg.AsyncConnection[Any], batch: Batch) -> WriteResult:
    async with conn.cursor() as cur, conn.cursor() as counts:
        try:
            # Leaving the transaction queues COMMIT; leaving the pipeline then sends it all
            # and reads every answer.
            async with conn.pipeline(), conn.transaction():
                cursors = await _queue(cur, counts, batch, _INSERT_ROWS, _document(batch.rows))
        except psycopg.Error:
            # A statement failed: the server skipped the rest, COMMIT included, and holds
            # the transaction open and aborted. (The transaction block had closed before the
            # answers came, so it could not roll back itself.)
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with contextlib.suppress(psycopg.Error):
                    await conn.rollback()
            raise
        return await _result(batch, cursors, counts)


async def _write_staged(conn: psycopg.AsyncConnection[Any], batch: Batch) -> WriteResult:
    async with conn.pipeline(), conn.cursor() as cur, conn.cursor() as ready:
        await _upsert_users(cur, batch.rows)
        await cur.execute(_PREPARE_STAGE)
        await ready.execute(_STAGE_READY)
        staged = await ready.fetchone()
    if staged and staged[0]:
        async with conn.cursor() as cur, cur.copy(_COPY_TO_STAGE) as copy:
            for row in batch.rows:
                await copy.write_row(staged_values(row))
        insert, params = _INSERT_STAGED, None
    else:  # no TEMPORARY privilege: the document, in this transaction
        insert, params = _INSERT_ROWS, _document(batch.rows)
    async with conn.cursor() as cur, conn.cursor() as counts:
        async with conn.pipeline():
            cursors = await _queue(cur, counts, batch, insert, params, users=False)
        return await _result(batch, cursors, counts)


class KnownIds:
    """The ids the direct COPY has looked up, kept by its writer from one batch to the next:
    agents, users and tasks found to exist (a "not found" is never kept: a task or user the
    marketplace adds later must be found then). A catch-up's batches name the same agents,
    users and tasks again and again, and once all of them are known a batch needs no
    lookup. An id gone since (a user or task deleted) fails the COPY on its foreign key;
    the batch then goes to the insert, which looks everything up anew, and the writer
    forgets what it knew (``clear``). Emptied when ``capacity`` ids are held, before a
    batch works out what it lacks (``make_room``): never under a batch that relies on them."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self.agents: dict[str, str] = {}
        self.users: dict[str | None, str] = {}
        self.tasks: dict[UUID, str] = {}

    def clear(self) -> None:
        self.agents.clear()
        self.users.clear()
        self.tasks.clear()

    def make_room(self) -> None:
        if len(self.agents) + len(self.users) + len(self.tasks) >= self.capacity:
            self.clear()

    def add(self, agents: Iterable[tuple[str, str]], users: Iterable[tuple[str, str]],
            tasks: Iterable[tuple[UUID, str]]) -> None:
        self.agents.update(agents)
        self.users.update(users)
        self.tasks.update(tasks)


@dataclass(slots=True)
class _Unknown:
    """What ``KnownIds`` lacks of a batch's agents, users and tasks, and whether a row
    has no block time (it is stored with the database's ``now()``)."""

    agents: set[str]
    users: set[str]
    tasks: set[UUID]
    timeless: bool

    @classmethod
    def of(cls, rows: Sequence[RowLike], known: KnownIds) -> _Unknown:
        return cls({r.agent_wallet for r in rows}.difference(known.agents),
                   {r.counterparty_wallet for r in rows if r.counterparty_wallet}.difference(known.users),
                   {r.task_id for r in rows if r.task_id is not None}.difference(known.tasks),
                   any(r.block_time is None for r in rows))


async def _look_up_ids(conn: psycopg.AsyncConnection[Any], unknown: _Unknown,
                       known: KnownIds) -> datetime | None:
    """Look up (and upsert, for users) what ``known`` lacks, in one pipelined round trip
    -- none when it lacks nothing, and no statement for a kind it lacks none of; ``now()``
    when a row has no block time."""
    if not (unknown.agents or unknown.users or unknown.tasks or unknown.timeless):
        return None
    async with conn.pipeline(), conn.cursor() as cur:
        await _upsert_wallets(cur, unknown.users)  # before their lookup, in its own statement (module doc)
        agents = await _queue_lookup(conn, _AGENT_IDS, unknown.agents)
        users = await _queue_lookup(conn, _USER_IDS, unknown.users)
        tasks = await _queue_lookup(conn, _TASK_IDS, unknown.tasks)
        now = conn.cursor() if unknown.timeless else None
        if now is not None:
            await now.execute(_NOW)
        known.add(await _answer(agents), await _answer(users), await _answer(tasks))
        return (await _answer(now))[0][0] if now is not None else None


async def _queue_lookup(conn: psycopg.AsyncConnection[Any], query: str,
                        keys: Collection[Any]) -> psycopg.AsyncCursor[Any] | None:
    """``query`` for ``keys`` (its ``keys`` parameter), queued in the pipeline; None for none."""
    if not keys:
        return None
    cursor = conn.cursor()
    await cursor.execute(query, {"keys": sorted(keys)})
    return cursor


async def _answer(cursor: psycopg.AsyncCursor[Any] | None) -> list[Any]:
    if cursor is None:
        return []
    async with cursor:
        return await cursor.fetchall()


async def _write_copied(conn: psycopg.AsyncConnection[Any], batch: Batch, known: KnownIds) -> WriteResult:
    rows = batch.rows
    known.make_room()
    unknown = _Unknown.of(rows, known)
    # A batch that writes nothing but its rows (no user to add, no dead letter, no cursor)
    # is the COPY alone, which commits itself on an autocommit connection; anything else
    # commits with the rows, in one transaction.
    alone = conn.autocommit and not (unknown.users or batch.dead_letters or batch.cursors)
    async with contextlib.nullcontext() if alone else conn.transaction():
        started = await _look_up_ids(conn, unknown, known)
        agent_ids, user_ids, task_ids = known.agents, known.users, known.tasks
        seen: set[tuple[str, str]] = set()
        copied: list[tuple[Any, ...]] = []
        kept: list[RowLike] = []
        without_agent = 0
        for row in rows:
            agent = agent_ids.get(row.agent_wallet)
            if agent is None:
                without_agent += 1
                continue
            key = (row.signature, agent)
            if key in seen:  # the insert keeps the first of the two
                continue
            seen.add(key)
            kept.append(row)
            copied.append((
                row.signature, agent, user_ids.get(row.counterparty_wallet), row.amount,
                row.transaction_type, row.status,
                started if row.block_time is None else _utc(row.block_time), row.slot,
                None if row.task_id is None else task_ids.get(row.task_id), row.mint, row.decimals,
                row.refund_of, orjson.dumps(row.metadata_dict()).decode()))
        async with conn.cursor() as cur, cur.copy(_COPY_ROWS) as copy:
            for values in copied:
                await copy.write_row(values)
        cursors: list[CursorAdvance] = []
        if batch.dead_letters or batch.cursors:  # leaving even an empty pipeline is a round trip
            async with conn.pipeline(), conn.cursor() as cur:
                cursors = await _queue_letters_and_cursors(cur, batch)
    return WriteResult(inserted=Counter((row.transaction_type, row.status) for row in kept),
                       duplicates=len(rows) - without_agent - len(seen),
                       without_agent=without_agent, dead_letters=len(batch.dead_letters),
                       cursors=len(cursors), copied=True)


class _CannotCopy(Exception):
    """A value the insert must judge (it raises the database's own error for it)."""


def _utc(block_time: int) -> datetime:
    """A block time as the insert stores it: ``timezone('utc', to_timestamp(t))``."""
    try:
        return _EPOCH + timedelta(seconds=block_time)
    except OverflowError:  # past year 9999: PostgreSQL's error, from the insert
        raise _CannotCopy(f"block time {block_time}") from None


def _document(rows: Sequence[RowLike]) -> dict[str, Any]:
    """``_INSERT_ROWS``'s parameters."""
    return {"rows": rows_document(rows).decode()}


async def _upsert_users(cur: psycopg.AsyncCursor[Any], rows: Sequence[RowLike]) -> None:
    await _upsert_wallets(cur, {r.counterparty_wallet for r in rows if r.counterparty_wallet})


async def _upsert_wallets(cur: psycopg.AsyncCursor[Any], wallets: Iterable[str]) -> None:
    """Add ``wallets`` to users (those not there yet); nothing is sent for none."""
    if wallets := sorted(wallets):
        await cur.execute(_UPSERT_USERS, {"wallets": wallets})


async def _queue(cur: psycopg.AsyncCursor[Any], counts: psycopg.AsyncCursor[Any], batch: Batch,
                 insert: str, params: dict[str, Any] | None, *, users: bool = True) -> list[CursorAdvance]:
    """The batch's statements, the rows' ``insert`` on ``counts`` (``users``: upsert the
    counterparties first); in pipeline mode they are only queued. The cursors advanced."""
    if batch.rows:
        if users:
            await _upsert_users(cur, batch.rows)
        await counts.execute(insert, params)
    return await _queue_letters_and_cursors(cur, batch)


async def _queue_letters_and_cursors(cur: psycopg.AsyncCursor[Any], batch: Batch) -> list[CursorAdvance]:
    """The batch's dead letters and cursor advances (queued, in pipeline mode); the
    cursors advanced."""
    if batch.dead_letters:
        letters = batch.dead_letters
        await cur.execute(_INSERT_DEAD_LETTERS, {
            "stage": [d.stage for d in letters], "reason": [d.reason for d in letters],
            "error": [d.error for d in letters], "signature": [d.signature for d in letters],
            "wallet": [d.wallet for d in letters], "payload": [d.payload for d in letters],
        })
    cursors = _newest_per_wallet(batch.cursors)
    if cursors:
        await cur.execute(_ADVANCE_CURSORS, {
            "wallet": [c.wallet for c in cursors], "signature": [c.signature for c in cursors],
            "slot": [c.slot for c in cursors],
        })
    return cursors


async def _result(batch: Batch, cursors: Sequence[CursorAdvance],
                  counts: psycopg.AsyncCursor[Any]) -> WriteResult:
    """The insert's answer on ``counts`` (rows matched to an agent, then inserted by type
    and status), read once the pipeline has synced."""
    inserted: Counter[tuple[str, str]] = Counter()
    matched = 0
    for type_, status, count in await counts.fetchall() if batch.rows else ():
        if type_ == "":
            matched = int(count)
        else:
            inserted[(type_, status)] += int(count)
    total = sum(inserted.values())
    return WriteResult(
        inserted=inserted,
        duplicates=matched - total,
        without_agent=len(batch.rows) - matched,
        dead_letters=len(batch.dead_letters),
        cursors=len(cursors),
    )


WRITER_APPLICATION_NAME = "amoca-indexer writer"  # how pg_stat_activity shows the writer


def writer_pool(url: str, *, synchronous_commit: bool = True) -> AsyncConnectionPool[Any]:
    """The writer's own connection: a pool of one, which replaces it after an outage.
    Without ``synchronous_commit`` its commits do not wait for the WAL flush (safe because
    whatever goes on from a commit checks its server life: README, "Asynchronous commit").

    A pipeline has one writer. Through the shared pool its batches went round-robin to
    every idle connection (psycopg_pool hands out the longest idle first), and each
    backend warmed up anew: catalog caches, prepared statements, its own staging table.
    On one connection they stay warm: in a 10,000-transaction backfill, 6 interleaved
    runs each, PostgreSQL's CPU per transaction fell from 60 to 52 us and throughput
    rose 7%. Opened by the caller (``await pool.open()``), closed after the pipeline."""
    async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
        if not synchronous_commit:
            await conn.execute("SET synchronous_commit = off")
        await _warm_up(conn)

    return AsyncConnectionPool(url, min_size=1, max_size=1, open=False, name="amoca-indexer-writer",
                               kwargs={"autocommit": True, "application_name": WRITER_APPLICATION_NAME},
                               configure=configure)


async def _warm_up(conn: psycopg.AsyncConnection[Any]) -> None:
    """A backend's first COPY into ``transactions`` loads the table's catalog entries and
    compiles its statement triggers: 100 rows took 9.3 ms against 3.5 ms for the next 100.
    An empty COPY, done as the writer's connection opens (while the pipeline is still
    listing signatures), pays most of that before the first batch: it then took 5.6 ms.
    It writes nothing, and no trigger acts on an empty statement. (It no longer has to be
    the first call that plans the stats trigger's statements: sql/0016 makes their plans
    go by key whatever that call held.)"""
    async with conn.cursor() as cur, cur.copy(_COPY_ROWS):
        pass


class PostgresWriter:
    """Writes batches through a connection pool (``writer_pool``), retrying while the
    database is away.

    A transient failure (connection lost, server restarting, deadlock) is retried with
    exponential backoff and jitter until ``give_up_after`` seconds (None: forever), so a
    database outage stalls the pipeline -- back-pressure -- instead of dropping work.

    Each result names the life of the server the batch committed on (``server_life``, read
    once a connection), so that work continuing from it can tell when a failover or a
    crash may have lost it. The ids the COPYs looked up on another life are forgotten.
    With ``life``, batches commit in that life only: in another, nothing is written, the
    batch fails with ServerChanged and ``moved`` is set (the daemon: its cursors continue
    from what it committed, and it starts over from the database's).
    """

    def __init__(self, pool: AsyncConnectionPool[Any], *, give_up_after: float | None = None,
                 max_backoff: float = 5.0, life: UUID | None = None) -> None:
        self.pool = pool
        self.life = life
        self.moved = asyncio.Event()
        self.give_up_after = give_up_after
        self.max_backoff = max_backoff
        # Copy large batches while they meet no row already written; once one does, insert
        # (skipping such rows) until a batch meets none again. A rerun over indexed history
        # then pays one failed COPY, not one a batch.
        self.copy = True
        self.known = KnownIds()  # what the COPYs have looked up (``write_batch``)
        self.server: UUID | None = None  # the life the last batch was written in
        self._lives: WeakKeyDictionary[psycopg.AsyncConnection[Any], UUID] = WeakKeyDictionary()

    async def __call__(self, batch: Batch) -> WriteResult:
        async def write(conn: psycopg.AsyncConnection[Any]) -> WriteResult:
            life = self._lives.get(conn)
            if life is None:
                life = self._lives[conn] = await server_life(conn)
            if self.life is not None and life != self.life:
                self.moved.set()
                raise ServerChanged(f"the database is in server life {life}, not the one this writer "
                                    f"commits in ({self.life}): it may lack what was committed there")
            if life != self.server:
                if self.server is not None:  # a user or task looked up there may be gone
                    log.warning("db_server_changed", was=str(self.server), now=str(life))
                    self.known.clear()
                self.server = life
            return replace(await write_batch(conn, batch, copy=self.copy, known=self.known), server=life)

        result = await pooled(self.pool, write, what="transactions", event="db_write_retry",
                              give_up_after=self.give_up_after, max_backoff=self.max_backoff)
        if len(batch.rows) >= COPY_FROM_ROWS:
            self.copy = result.copied or result.duplicates == 0
        return result
