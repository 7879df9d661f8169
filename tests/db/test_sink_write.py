"""The sink's row insert against a real PostgreSQL: every column of a row arrives as the
decoder made it (exact amounts, block time as UTC, task only when known, metadata), and
writing the same batch again changes nothing -- whether the batch goes as one JSON
document (small batches), is copied straight into the table or staged with COPY (large
ones)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import orjson
import psycopg
import pytest
from structlog.testing import capture_logs

from indexer import sink
from indexer.decode.models import Leg, TransferRow, jsonb_key_order
from indexer.errors import DatabaseError, ServerChanged
from indexer.sink import _INSERT_ROWS, _INSERT_STAGED, Batch, rows_document, staged_values, write_batch
from tests.db.test_schema import add_agents_and_users, wallet
from tests.db.test_schema import signature as a_signature
from tests.support.scans import rows_scanned, rows_scanned_during

AGENT = "AgentWa11et1111111111111111111111111111111"
OTHER_AGENT = "AgentWa11et2222222222222222222222222222222"  # not in the database
PAYER = "PayerWa11et111111111111111111111111111111"
NEW_USER = "NewUserWa11et1111111111111111111111111111"  # not a user yet: the sink adds it
TASK = uuid.UUID("00000000-0000-4000-8000-000000000001")
UNKNOWN_TASK = uuid.UUID("00000000-0000-4000-8000-000000000002")


def _row(n: int, *, signature: str | None = None, agent: str = AGENT, counterparty: str = PAYER,
         amount: str = "1.234567891", task: uuid.UUID | None = TASK, block_time: int | None = 1_767_225_600,
         memo: str | None = 'amoca:1:payment:{"t":"x"}') -> TransferRow:
    raw = int(Decimal(amount) * 10**9)
    return TransferRow(
        signature=signature or str(n) * 88, agent_wallet=agent, counterparty_wallet=counterparty,
        transaction_type="payment", direction="in", amount_raw=raw, amount=Decimal(amount),
        mint=None, decimals=9, status="pending", task_id=task, refund_of=None, period=None,
        memo=memo, memo_rejection=None, legs=(), slot=100 + n, block_time=block_time,
        fee_payer=counterparty)


def _register(conn: psycopg.Connection) -> None:
    conn.execute("INSERT INTO users (wallet_address) VALUES (%s)", (PAYER,))
    conn.execute("""
        INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address, status)
        VALUES ('a-1', 'Agent', 'Tagline', 'Description', 'https://example.invalid/a.png', %s,
                'available')""", (AGENT,))
    conn.execute("""
        INSERT INTO tasks (id, user_id, agent_id, title, description, status, budget)
        SELECT %s, u.id, a.id, 'Task', 'Description', 'in_progress', 5
        FROM users u, agents a WHERE u.wallet_address = %s AND a.wallet_address = %s""",
                 (TASK, PAYER, AGENT))


@pytest.fixture(params=["document", "staged", "copied"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test of a write runs three ways: every batch large (copied, or staged), or none."""
    monkeypatch.setattr(sink, "COPY_FROM_ROWS", 10**9 if request.param == "document" else 1)
    return str(request.param)


async def test_rows_arrive_column_for_column_and_twice_is_once(conn: psycopg.Connection,
                                                               db_url: str, path: str) -> None:
    _register(conn)
    rows = (
        _row(1),
        _row(2, amount="0.000000001", task=UNKNOWN_TASK, block_time=None, memo=None),
        _row(3, counterparty=NEW_USER, amount="123456789.5"),
        _row(4, agent=OTHER_AGENT),
    )
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        first = await write_batch(aconn, Batch(rows=rows), copy=path == "copied")
        again = await write_batch(aconn, Batch(rows=rows), copy=path == "copied")
    assert first.copied == (path == "copied")
    assert not again.copied  # a copy meeting rows already there is inserted instead
    assert first.inserted == Counter({("payment", "pending"): 3})
    assert (first.duplicates, first.without_agent) == (0, 1)
    assert (again.inserted_total, again.duplicates, again.without_agent) == (0, 3, 1)

    stored = {r[0]: r[1:] for r in conn.execute("""
        SELECT t.transaction_signature, t.amount, t.created_at, t.slot, t.task_id, u.wallet_address,
               t.decimals, t.mint, t.metadata, t.created_at > timezone('utc', now()) - interval '1 hour'
        FROM transactions t LEFT JOIN users u ON u.id = t.user_id""").fetchall()}
    assert set(stored) == {"1" * 88, "2" * 88, "3" * 88}
    amount, created, slot, task, user, decimals, mint, metadata, _ = stored["1" * 88]
    assert (amount, created, slot, task, user, decimals, mint) == (
        Decimal("1.234567891"), datetime(2026, 1, 1), 101, TASK, PAYER, 9, None)
    assert metadata == rows[0].metadata_dict()
    amount, _, _, task, _, _, _, metadata, recent = stored["2" * 88]
    assert (amount, task, recent) == (Decimal("0.000000001"), None, True)  # unknown task; no block time
    assert metadata == rows[1].metadata_dict()
    amount, _, _, _, user, _, _, _, _ = stored["3" * 88]
    assert (amount, user) == (Decimal("123456789.5"), NEW_USER)


def _register_among_many(conn: psycopg.Connection) -> None:
    """``_register``'s rows among 2,000 other agents and 2,000 other users, analyzed."""
    _register(conn)
    conn.execute("""
        INSERT INTO agents (agent_id, name, tagline, description, avatar_url, wallet_address)
        SELECT 'bulk-' || g, 'A', 'T', 'D', 'https://example.invalid/a.png',
               'Bu1kAgent' || translate(g::text, '0', 'z') || repeat('x', 30)
        FROM generate_series(1, 2000) g""")
    conn.execute("INSERT INTO users (wallet_address)"
                 " SELECT 'Bu1kUser' || translate(g::text, '0', 'z') || repeat('x', 30)"
                 " FROM generate_series(1, 2000) g")
    conn.execute("ANALYZE agents")
    conn.execute("ANALYZE users")


def test_jsonb_documents_come_with_their_keys_in_the_order_postgresql_stores_them(
        conn: psycopg.Connection) -> None:
    """Converting text to jsonb sorts each object's keys; PostgreSQL's sort returns at
    once on keys already in order, so what the sink sends as jsonb is built that way."""
    leg = Leg("system", "transfer", PAYER, AGENT, PAYER, AGENT, 5, None, 9, False, 0, None)
    row = replace(_row(1), legs=(leg,))
    documents = {"metadata": row.metadata_dict(), "leg": row.metadata_dict()["legs"][0],
                 "row document": orjson.loads(rows_document([row]))[0]}
    for name, document in documents.items():
        stored = conn.execute("SELECT array(SELECT jsonb_object_keys(%s::jsonb))",
                              (orjson.dumps(document).decode(),)).fetchone()
        assert stored == (list(document),), name
        assert list(document) == sorted(document, key=jsonb_key_order), name


def test_a_small_write_reads_no_whole_table(conn: psycopg.Connection) -> None:
    """A live write of a few rows finds its agent, user and task by their keys, whatever
    the size of agents and users (a hash join on the row document's 100-row guess read
    all 10,000 agents on every live write, 1.7 ms of a 2.7 ms insert)."""
    _register_among_many(conn)
    document = rows_document([_row(1), _row(2, agent=OTHER_AGENT)]).decode()
    assert rows_scanned(conn, ["agents", "users", "tasks"], _INSERT_ROWS, {"rows": document}) == {
        "agents": 0, "users": 0, "tasks": 0}
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (1,)


def test_a_staged_write_reads_no_whole_table(conn: psycopg.Connection) -> None:
    """The staged insert finds agent, user and task by their keys too (the staging table
    has no statistics: the plan must not depend on them)."""
    _register_among_many(conn)
    with conn.transaction():
        conn.execute(sink._PREPARE_STAGE)
        with conn.cursor().copy(sink._COPY_TO_STAGE) as copy:
            for row in (_row(1), _row(2, agent=OTHER_AGENT)):
                copy.write_row(staged_values(row))
        scanned = rows_scanned(conn, ["agents", "users", "tasks"], _INSERT_STAGED)
        assert scanned == {"agents": 0, "users": 0, "tasks": 0}
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (1,)
    assert conn.execute("SELECT count(*) FROM pg_temp.amoca_staged_rows").fetchone() == (0,)  # emptied


@pytest.mark.parametrize("copy", [True, False], ids=["copied", "fallback"])
async def test_without_the_temporary_privilege_a_large_batch_is_written_all_the_same(
        conn: psycopg.Connection, db_url: str, copy: bool) -> None:
    """A hardened database may deny TEMPORARY to the indexer's role: a large batch is
    copied, which needs no staging table, and one that cannot be copied goes as a
    document instead of being staged."""
    _register(conn)
    database = conn.execute("SELECT current_database()").fetchone()
    assert database is not None
    conn.execute(f'REVOKE TEMPORARY ON DATABASE "{database[0]}" FROM PUBLIC')
    rows = tuple(_row(n, signature=a_signature(n)) for n in range(1, sink.COPY_FROM_ROWS + 1))
    async with await psycopg.AsyncConnection.connect(db_url) as aconn:
        await aconn.execute("SET ROLE amoca_indexer")
        await aconn.commit()
        result = await write_batch(aconn, Batch(rows=rows), copy=copy)
        staging = await (await aconn.execute("SELECT to_regclass('pg_temp.amoca_staged_rows')")).fetchone()
    assert result.copied == copy
    assert result.inserted == Counter({("payment", "pending"): len(rows)})
    assert staging == (None,)
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (len(rows),)


async def test_a_copy_meeting_a_row_already_written_is_inserted_skipping_it(
        conn: psycopg.Connection, db_url: str) -> None:
    """COPY fails as a whole on a row already there (a backfill beside the daemon): the
    batch is rolled back and inserted instead, skipping that row; nothing is lost or
    written twice. The same row twice in one batch is copied once. The stats triggers see
    each row once, either way."""
    _register(conn)
    # Confirmed (the sink takes any status; the decoder makes pending or failed rows): such
    # rows move the stats at once.
    rows = [replace(_row(n, signature=a_signature(n)), status=cast(Any, "confirmed"))
            for n in range(1, 2 * sink.COPY_FROM_ROWS + 1)]
    half = sink.COPY_FROM_ROWS
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        first = await write_batch(aconn, Batch(rows=(*rows[:half], rows[0])))
        second = await write_batch(aconn, Batch(rows=tuple(rows[half // 2:])))
    assert (first.copied, first.inserted_total, first.duplicates) == (True, half, 1)
    assert (second.copied, second.inserted_total, second.duplicates) == (False, len(rows) - half, half // 2)
    stored = conn.execute("SELECT count(*), count(DISTINCT transaction_signature) FROM transactions")
    assert stored.fetchone() == (len(rows), len(rows))
    earned = conn.execute("SELECT s.total_earnings, u.total_spent FROM agent_stats s, users u"
                          " WHERE u.wallet_address = %s", (PAYER,)).fetchone()
    assert earned == (Decimal("1.234567891") * len(rows),) * 2


def _batch_of(first: int, count: int, **fields: Any) -> Batch:
    return Batch(rows=tuple(_row(n, signature=a_signature(n), **fields) for n in range(first, first + count)))


async def test_a_batch_whose_agents_users_and_tasks_are_known_is_the_copy_alone(
        conn: psycopg.Connection, db_url: str) -> None:
    """The writer keeps the ids its COPYs looked up (``KnownIds``): a later batch naming
    the same agent, user and task is the COPY alone, without the users upsert or any
    lookup. Shown with a role that may only insert into transactions: it writes such a
    batch, and fails on one whose ids are not known yet (it may not look them up)."""
    _register(conn)
    size = sink.COPY_FROM_ROWS
    known = sink.KnownIds()
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        first = await write_batch(aconn, _batch_of(1, size), known=known)
    assert first.copied
    assert known.agents == dict(conn.execute("SELECT wallet_address, id::text FROM agents").fetchall())
    assert known.users == dict(conn.execute("SELECT wallet_address, id::text FROM users").fetchall())
    assert known.tasks == {TASK: str(TASK)}

    role = f"insert_only_{uuid.uuid4().hex[:8]}"  # a role is the server's, not the database's:
    conn.execute(f'CREATE ROLE "{role}"')  # dropped below, or a server of the user's keeps it
    try:
        conn.execute(f'GRANT INSERT ON transactions TO "{role}"')
        async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
            await aconn.execute(f'SET ROLE "{role}"')
            second = await write_batch(aconn, _batch_of(size + 1, size), known=known)
            with pytest.raises(DatabaseError) as refused:
                await write_batch(aconn, _batch_of(2 * size + 1, size), known=sink.KnownIds())
    finally:
        conn.execute(f'REVOKE ALL ON transactions FROM "{role}"')
        conn.execute(f'DROP ROLE "{role}"')
    assert (second.copied, second.inserted_total) == (True, size)
    assert refused.value.sqlstate == "42501"  # insufficient_privilege: the lookup
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (2 * size,)


async def test_known_ids_are_emptied_when_full_before_a_batch_relies_on_them(
        conn: psycopg.Connection, db_url: str) -> None:
    """Full, the known ids are emptied before a batch works out what it lacks, never while
    it relies on them: a batch with a new user, after one that filled them, still finds
    its agent, and every row is written."""
    _register(conn)
    size = sink.COPY_FROM_ROWS
    known = sink.KnownIds(capacity=2)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        first = await write_batch(aconn, _batch_of(1, size), known=known)
        second = await write_batch(aconn, _batch_of(size + 1, size, counterparty=NEW_USER), known=known)
    assert (first.inserted_total, second.inserted_total) == (size, size)
    assert (second.copied, second.without_agent) == (True, 0)
    assert set(known.users) == {NEW_USER}
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (2 * size,)


async def test_a_task_deleted_since_it_was_known_sends_the_batch_to_the_insert(
        conn: psycopg.Connection, db_url: str) -> None:
    """A task the writer knew is deleted: the next COPY fails on the foreign key and is
    rolled back, the insert writes the batch with that task unknown (NULL), as it would
    have from the start, and the writer forgets the ids it knew."""
    _register(conn)
    size = sink.COPY_FROM_ROWS
    known = sink.KnownIds()
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        await write_batch(aconn, _batch_of(1, size), known=known)
        conn.execute("DELETE FROM tasks WHERE id = %s", (TASK,))
        result = await write_batch(aconn, _batch_of(size + 1, size), known=known)
    assert not result.copied
    assert result.inserted_total == size
    assert (known.agents, known.users, known.tasks) == ({}, {}, {})
    tasks = conn.execute("SELECT count(*), count(task_id) FROM transactions").fetchone()
    assert tasks == (2 * size, 0)  # the first batch's tasks were emptied by the deletion


async def test_a_user_deleted_since_it_was_known_is_added_again(conn: psycopg.Connection,
                                                                db_url: str) -> None:
    """A counterparty the writer knew is deleted: the next COPY fails on the foreign key,
    and the insert adds the wallet to users again and writes the batch with its new id."""
    _register(conn)
    size = sink.COPY_FROM_ROWS
    known = sink.KnownIds()
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        await write_batch(aconn, _batch_of(1, size, counterparty=NEW_USER), known=known)
        conn.execute("DELETE FROM users WHERE wallet_address = %s", (NEW_USER,))
        result = await write_batch(aconn, _batch_of(size + 1, size, counterparty=NEW_USER), known=known)
    assert not result.copied
    assert result.inserted_total == size
    user = conn.execute("SELECT id FROM users WHERE wallet_address = %s", (NEW_USER,)).fetchone()
    assert user is not None
    second = conn.execute("SELECT DISTINCT user_id FROM transactions WHERE slot > %s", (100 + size,))
    assert second.fetchall() == [user]


async def test_a_block_time_python_cannot_hold_is_left_to_the_insert(
        conn: psycopg.Connection, db_url: str) -> None:
    """A block time past Python's year 9999 (a malformed answer) cannot be copied as a
    timestamp; the batch goes to the insert, which stores what PostgreSQL makes of it,
    as before large batches were copied."""
    _register(conn)
    far = 10**12  # seconds: the year 33658, within PostgreSQL's timestamps
    rows = tuple(_row(n, signature=a_signature(n), block_time=far if n == 1 else 1_767_225_600)
                 for n in range(1, sink.COPY_FROM_ROWS + 1))
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        result = await write_batch(aconn, Batch(rows=rows))
    assert not result.copied
    assert result.inserted_total == len(rows)
    stored = conn.execute("SELECT extract(year FROM created_at) FROM transactions"
                          " WHERE transaction_signature = %s", (a_signature(1),)).fetchone()
    assert stored == (Decimal(33658),)


async def test_the_writer_inserts_while_its_batches_meet_rows_already_written(
        conn: psycopg.Connection, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rerun over indexed history pays one failed COPY, not one a batch; once a batch
    meets no row already there, the writer copies again."""
    _register(conn)
    copies: list[bool] = []
    copy_rows = sink._write_copied

    async def observed(aconn: psycopg.AsyncConnection, batch: Batch,
                       known: sink.KnownIds) -> sink.WriteResult:
        copies.append(True)
        return await copy_rows(aconn, batch, known)

    monkeypatch.setattr(sink, "_write_copied", observed)
    size = sink.COPY_FROM_ROWS
    batches = [tuple(_row(n, signature=a_signature(n)) for n in range(start, start + size))
               for start in (1, 1 + size, 1 + 2 * size, 1 + 3 * size)]
    pool = sink.writer_pool(db_url)
    await pool.open()
    try:
        writer = sink.PostgresWriter(pool, give_up_after=5)
        results = []
        for rows in (batches[0], batches[0], batches[1], batches[2]):
            # written; again (copy fails, inserted); new rows inserted; new rows copied
            results.append(await writer(Batch(rows=rows)))
    finally:
        await pool.close()
    assert [r.copied for r in results] == [True, False, False, True]
    assert [r.inserted_total for r in results] == [size, 0, size, size]
    assert len(copies) == 3  # the third batch went straight to the insert
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (3 * size,)


async def test_the_writers_connection_warms_up_writing_nothing_and_telling_nobody(
        conn: psycopg.Connection, db_url: str) -> None:
    """The writer's connection opens with an empty COPY into ``transactions`` (its first
    batch then finds the catalog entries loaded and the triggers compiled): no row, no
    stats change, no notification for the daemon's rankings scheduler."""
    _register(conn)
    stats = conn.execute("SELECT * FROM agent_stats ORDER BY agent_id").fetchall()
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN amoca_stats_changed")
        pool = sink.writer_pool(db_url)
        await pool.open(wait=True)
        try:
            async with pool.connection() as writer:
                assert (await (await writer.execute("SELECT application_name FROM pg_stat_activity"
                                                    " WHERE pid = pg_backend_pid()")).fetchone()
                        == (sink.WRITER_APPLICATION_NAME,))
        finally:
            await pool.close()
        listener.execute("SELECT 1")  # a round trip: any notification sent has arrived
        assert list(listener.notifies(timeout=0)) == []
    assert conn.execute("SELECT count(*) FROM transactions").fetchone() == (0,)
    assert conn.execute("SELECT * FROM agent_stats ORDER BY agent_id").fetchall() == stats


async def test_after_a_large_first_batch_the_writers_small_writes_still_go_by_key(
        conn: psycopg.Connection, db_url: str) -> None:
    """PL/pgSQL keeps each trigger statement's plan for the session. Planned for the
    transition table of a catch-up batch, the stats trigger's agent_stats and users
    updates hash-joined both tables whole, and then did so for every later write whose
    rows move a total (a confirmed row: a daemon at finalized commitment). Their plans
    now go by key whatever the session's first batch held (sql/0016; tables large enough
    for an index to be the cheaper way)."""
    agents = [wallet(20_000 + i) for i in range(10_000)]
    add_agents_and_users(conn, agents, [wallet(9000 + i) for i in range(10_000)])
    conn.execute("ANALYZE agents, agent_stats, users")
    first = tuple(_row(n, signature=a_signature(n), agent=agents[n], counterparty=wallet(9000 + n),
                       task=None) for n in range(400))
    pool = sink.writer_pool(db_url)
    await pool.open(wait=True)
    try:
        async with pool.connection() as aconn:
            assert (await write_batch(aconn, Batch(rows=first))).copied
            live = replace(_row(500, signature=a_signature(500), agent=agents[7],
                                counterparty=wallet(9007), task=None), status="confirmed")
            async with rows_scanned_during(aconn, ["agent_stats", "users"]) as scanned:
                assert (await write_batch(aconn, Batch(rows=(live,)))).inserted_total == 1
    finally:
        await pool.close()
    assert scanned == {"agent_stats": 0, "users": 0}


async def test_a_payer_a_finality_pass_is_moving_does_not_hold_the_writer(
        conn: psycopg.Connection, db_url: str, path: str) -> None:
    """A finality pass confirms rows in one transaction, and its stats trigger updates the
    payers' totals: their rows stay locked until it commits. The writer's users upsert
    must not wait for it (an insert's uniqueness check on a row being updated does), so
    a known payer is not inserted at all. Here the pass is held open while the writer
    writes with a lock timeout: waiting would fail the write."""
    _register(conn)
    with psycopg.connect(db_url) as finality:  # a transaction, as a pass is
        finality.execute("UPDATE users SET total_spent = total_spent + 1 WHERE wallet_address = %s", (PAYER,))
        async with await psycopg.AsyncConnection.connect(db_url, options="-c lock_timeout=1000") as aconn:
            written = await write_batch(aconn, Batch(rows=(_row(1), _row(2, counterparty=NEW_USER))),
                                        copy=path == "copied")
        assert written.inserted_total == 2
    assert conn.execute("SELECT count(*) FROM users WHERE wallet_address IN (%s, %s)",
                        (PAYER, NEW_USER)).fetchone() == (2,)


async def test_each_batch_names_the_server_life_it_was_committed_in(conn: psycopg.Connection,
                                                                     db_url: str) -> None:
    """A connection lost and made again to the same server is the same life: nothing it
    committed was lost."""
    _register(conn)
    life = conn.execute("SELECT indexer_server_life()").fetchone()
    pool = sink.writer_pool(db_url)
    await pool.open()
    try:
        writer = sink.PostgresWriter(pool, give_up_after=5)
        first = await writer(Batch(rows=(_row(1, signature=a_signature(1)),)))
        cut = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND application_name = %s",
                           (sink.WRITER_APPLICATION_NAME,)).fetchall()
        with capture_logs() as logs:
            second = await writer(Batch(rows=(_row(2, signature=a_signature(2)),)))
    finally:
        await pool.close()
    assert cut == [(True,)]
    assert life == (first.server,) == (second.server,)
    assert [e["event"] for e in logs] == ["db_write_retry"]  # retried; not a server change


async def test_a_writer_bound_to_a_server_life_writes_in_no_other(conn: psycopg.Connection,
                                                                  db_url: str) -> None:
    """The daemon's writer commits in the shard lock's server life only: in another (a
    failover's standby), nothing is written and the writer says it moved."""
    _register(conn)
    (life,) = conn.execute("SELECT indexer_server_life()").fetchone() or (None,)
    pool = sink.writer_pool(db_url)
    await pool.open()
    try:
        elsewhere = sink.PostgresWriter(pool, give_up_after=5, life=uuid.uuid4())
        with pytest.raises(ServerChanged):
            await elsewhere(Batch(rows=(_row(1, signature=a_signature(1)),)))
        assert elsewhere.moved.is_set()
        here = sink.PostgresWriter(pool, give_up_after=5, life=life)
        written = await here(Batch(rows=(_row(2, signature=a_signature(2)),)))
    finally:
        await pool.close()
    assert (written.inserted_total, here.moved.is_set()) == (1, False)
    assert conn.execute("SELECT transaction_signature FROM transactions").fetchall() == [(a_signature(2),)]


async def test_the_writers_sessions_commit_asynchronously_when_told(conn: psycopg.Connection,
                                                                     db_url: str) -> None:
    """Told nothing, the writer's sessions keep the server's setting (the test servers may
    run without durability)."""
    servers = conn.execute("SHOW synchronous_commit").fetchone()
    assert servers is not None
    for synchronous, shown in ((True, servers[0]), (False, "off")):
        pool = sink.writer_pool(db_url, synchronous_commit=synchronous)
        await pool.open()
        try:
            async with pool.connection() as session:
                setting = await (await session.execute("SHOW synchronous_commit")).fetchone()
        finally:
            await pool.close()
        assert setting == (shown,)
