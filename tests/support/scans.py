"""How many rows a statement read by sequential scan: the tests' check that a write
finds what it needs by key, however large the tables it looks into."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg.abc import Params

_SEQ_TUP_READ = ("SELECT relname, coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables"
                 " WHERE relname = ANY(%s)")


def _seq_tup_read(conn: psycopg.Connection, tables: Sequence[str]) -> dict[str, int]:
    rows = conn.execute(_SEQ_TUP_READ, (list(tables),)).fetchall()
    return {str(name): int(count) for name, count in rows}


async def _seq_tup_read_async(conn: psycopg.AsyncConnection[Any], tables: Sequence[str]) -> dict[str, int]:
    rows = await (await conn.execute(_SEQ_TUP_READ, (list(tables),))).fetchall()
    return {str(name): int(count) for name, count in rows}


def rows_scanned(conn: psycopg.Connection, tables: Sequence[str], statement: str,
                 params: Params | None = None) -> dict[str, int]:
    """Rows of each of ``tables`` that sequential scans read while ``statement`` ran, in a
    transaction of its own. The counters are this backend's not yet flushed to the
    statistics, earlier work included: only the difference across the statement is its."""
    with conn.transaction():
        before = _seq_tup_read(conn, tables)
        conn.execute(statement, params)
        after = _seq_tup_read(conn, tables)
    return {table: after.get(table, 0) - before.get(table, 0) for table in tables}


@contextlib.asynccontextmanager
async def rows_scanned_during(conn: psycopg.AsyncConnection[Any], tables: Sequence[str]
                              ) -> AsyncIterator[dict[str, int]]:
    """``rows_scanned`` for what the block does on ``conn`` (code that runs its own
    statements: a write, a finality pass), in a transaction of its own; the dict it yields
    holds the figures once the block has ended."""
    scanned: dict[str, int] = {}
    async with conn.transaction():
        before = await _seq_tup_read_async(conn, tables)
        yield scanned
        after = await _seq_tup_read_async(conn, tables)
    scanned.update({table: after.get(table, 0) - before.get(table, 0) for table in tables})
