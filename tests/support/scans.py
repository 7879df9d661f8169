"""How many rows a statement read by sequential scan: the tests' check that a write
finds what it needs by key, however large the tables it looks into."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg
from psycopg.abc import Params


def _seq_tup_read(conn: psycopg.Connection, tables: Sequence[str]) -> dict[str, int]:
    rows = conn.execute("SELECT relname, coalesce(seq_tup_read, 0) FROM pg_stat_xact_user_tables"
                        " WHERE relname = ANY(%s)", (list(tables),)).fetchall()
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
