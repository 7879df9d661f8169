"""A batch is one database transaction, sent in pipeline mode (every statement at once):
all of it commits, or -- when any statement fails -- none of it does, the error comes back
translated, and the connection is clean for the next batch."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from indexer import sink
from indexer.decode.models import TransferRow
from indexer.errors import DatabaseError
from indexer.sink import Batch, CursorAdvance, DeadLetter, write_batch
from tests.db.test_schema import make_agent

NEW_USER = "NewUserWa11et1111111111111111111111111111"


def _row(conn: psycopg.Connection, n: int, *, status: str = "pending") -> TransferRow:
    wallet = conn.execute("SELECT wallet_address FROM agents ORDER BY created_at LIMIT 1").fetchone()
    assert wallet is not None
    return TransferRow(
        signature=str(n) * 88, agent_wallet=wallet[0], counterparty_wallet=NEW_USER,
        transaction_type="funding", direction="in", amount_raw=5, amount=Decimal("0.000000005"),
        mint=None, decimals=9, status=status, task_id=None,  # type: ignore[arg-type]
        refund_of=None, period=None, memo=None, memo_rejection=None, legs=(), slot=100 + n,
        block_time=1_767_225_600, fee_payer=NEW_USER)


def _state(conn: psycopg.Connection) -> dict[str, Any]:
    def count(table: str) -> int:
        row = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else -1
    return {table: count(table) for table in ("transactions", "users", "dead_letters", "indexer_cursors")}


def _batch(conn: psycopg.Connection, n: int, status: str = "pending") -> Batch:
    return Batch(rows=(_row(conn, n, status=status),),
                 cursors=(CursorAdvance(NEW_USER, str(n) * 88, 100 + n),),
                 dead_letters=(DeadLetter(stage="decode", reason="test", error="e", signature="x"),))


@pytest.mark.parametrize("path", ["document", "staged", "copied"])
async def test_a_failing_statement_leaves_nothing_and_the_connection_usable(
        conn: psycopg.Connection, db_url: str, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Staged: the failed transaction also took the staging table it created with it; the
    # next batch on the same connection creates it again.
    monkeypatch.setattr(sink, "COPY_FROM_ROWS", 10**9 if path == "document" else 1)
    copy = path == "copied"
    make_agent(conn, 1)
    before = _state(conn)
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as aconn:
        # The row insert (second statement) fails; the users upsert before it and the dead
        # letter and cursor after it were sent in the same pipeline.
        with pytest.raises(DatabaseError) as failure:
            await write_batch(aconn, _batch(conn, 1, status="bogus"), copy=copy)
        assert failure.value.sqlstate == "23514"  # check_violation: permanent, not retried
        assert _state(conn) == before
        assert aconn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE

        result = await write_batch(aconn, _batch(conn, 2), copy=copy)
    assert result.inserted == Counter({("funding", "pending"): 1})
    assert (result.dead_letters, result.cursors) == (1, 1)
    after = _state(conn)
    assert {t: after[t] - before[t] for t in after} == {
        "transactions": 1, "users": 1, "dead_letters": 1, "indexer_cursors": 1}
