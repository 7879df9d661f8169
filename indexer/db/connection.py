"""Connections to PostgreSQL and the translation of its errors into the indexer's tree.

Errors are classified by SQLSTATE (psycopg's ``diag.sqlstate``), never by message text:
connection loss, shutdown, serialization failures and deadlocks are transient; the rest
(constraint violations above all) are permanent and name the constraint.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

import psycopg
import structlog
from psycopg import conninfo, sql
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    stop_never,
    wait_random_exponential,
)

from indexer.config import Settings, redact_url
from indexer.errors import (
    ConfigError,
    DatabaseError,
    DatabaseUnavailable,
    IndexerError,
    first_line,
    is_transient,
)
from indexer.retries import retried

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

_log = structlog.get_logger(__name__)

# SQLSTATE classes and codes worth retrying: the same statement may succeed later.
# Classes: 08 connection exception, 53 insufficient resources, 57 operator intervention.
_TRANSIENT_CLASSES = ("08", "53", "57")
# Codes: 40001 serialization failure, 40P01 deadlock, 55P03 lock not available.
_TRANSIENT_CODES = frozenset({"40001", "40P01", "55P03"})
EMBEDDED_DATABASE = "amoca"


def translate(exc: psycopg.Error) -> IndexerError:
    """The indexer error for a psycopg error, classified by SQLSTATE."""
    sqlstate = exc.sqlstate
    if sqlstate is None or sqlstate[:2] in _TRANSIENT_CLASSES or sqlstate in _TRANSIENT_CODES:
        if sqlstate is None and not isinstance(exc, psycopg.OperationalError):
            return DatabaseError(str(exc).strip())
        return DatabaseUnavailable(first_line(exc))
    constraint = exc.diag.constraint_name
    message = first_line(exc)
    if constraint and constraint not in message:
        message = f"{message} (constraint {constraint})"
    return DatabaseError(message, sqlstate=sqlstate, constraint=constraint)


# A server's life (``sql/0019_server_life.sql``): a token that lasts while no commit the
# server acknowledged can have been lost. A crash (of the server, or of one backend, which
# resets shared memory: commits made with synchronous_commit off may be lost) or a
# failover to a standby that lacks the last commits starts a new one; so does any restart
# (conservatively: a clean one loses nothing). Within one life commits are kept in the
# order they were made, so a later one kept keeps every earlier one. Work that continues
# from what it committed (a backfill's progress, the daemon's cursors) asks that its next
# commit be in the same life. A connection stays in the life it opened in (a direct
# connection or session pooling; transaction pooling is not supported, as the writer's
# staging table is not): no life ends without ending every session.
SERVER_LIFE = "indexer_server_life()"


async def server_life(conn: psycopg.AsyncConnection[Any]) -> UUID:
    """The life of the server ``conn`` is on (:data:`SERVER_LIFE`; the first to ask in a
    new life draws it)."""
    cur = await conn.execute(f"SELECT {SERVER_LIFE}")
    row = await cur.fetchone()
    assert row is not None
    life: UUID = row[0]
    return life


def validate_url(url: str) -> None:
    """Reject a URL libpq cannot parse, with one line that does not echo secrets."""
    try:
        conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError(f"AMOCA_DATABASE_URL is not a valid libpq URL: {redact_url(url)}") from None


def connect(url: str, *, autocommit: bool = True, connect_timeout: int = 10) -> psycopg.Connection:
    """A connection, or DatabaseUnavailable naming the (redacted) server."""
    validate_url(url)
    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise _unreachable(url, exc) from None


async def connect_async(url: str, *, autocommit: bool = True,
                        connect_timeout: int = 10) -> psycopg.AsyncConnection[Any]:
    """:func:`connect` for asyncio."""
    validate_url(url)
    try:
        return await psycopg.AsyncConnection.connect(url, autocommit=autocommit,
                                                     connect_timeout=connect_timeout)
    except psycopg.Error as exc:
        raise _unreachable(url, exc) from None


def _unreachable(url: str, exc: psycopg.Error) -> DatabaseUnavailable:
    return DatabaseUnavailable(f"cannot connect to PostgreSQL at {redact_url(url)}: {_reason(exc)}")


def database_retrying(*, give_up_after: float | None = None, max_backoff: float = 5.0,
                      before_sleep: Callable[[RetryCallState], None] | None = None) -> AsyncRetrying:
    """The retry policy of database work: transient errors (:func:`is_transient`) are
    retried with jittered exponential backoff until ``give_up_after`` seconds (None:
    forever), so an outage stalls the caller -- back-pressure -- instead of losing work."""
    return AsyncRetrying(
        retry=retry_if_exception(is_transient),
        wait=wait_random_exponential(multiplier=0.1, max=max_backoff),
        stop=stop_after_delay(give_up_after) if give_up_after is not None else stop_never,
        reraise=True,
        before_sleep=before_sleep,
    )


T = TypeVar("T")


async def pooled(pool: AsyncConnectionPool[Any], work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T]],
                 *, what: str, give_up_after: float | None = None, max_backoff: float = 5.0,
                 event: str = "db_retry") -> T:
    """``work`` on a connection of ``pool``, psycopg's errors translated, transient ones
    retried with :func:`database_retrying` (backoff up to ``max_backoff``) until
    ``give_up_after`` seconds (None: as long as the outage lasts) -- back-pressure -- each
    retry logged as ``event`` with ``what``. ``work`` must be safe to run again (a read, an
    upsert, a transaction of its own). The writer's batches, a backfill's progress and the
    task-owner lookups go through it."""
    async def attempt() -> T:
        try:
            async with pool.connection() as conn:
                return await work(conn)
        except psycopg.Error as exc:  # the pool's own too (PoolTimeout: no connection)
            raise translate(exc) from exc

    def log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        _log.warning(event, what=what, attempt=state.attempt_number, error=str(exc))

    def policy(left: float | None) -> AsyncRetrying:
        return database_retrying(give_up_after=left, max_backoff=max_backoff, before_sleep=log_retry)

    return await retried(attempt, policy, give_up_after=give_up_after)


def _reason(exc: psycopg.Error) -> str:
    """libpq's reason, without the host/port details it repeats (those may carry secrets)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    return lines[0].rsplit("failed: ", 1)[-1]


def database_url(settings: Settings, *, announce: bool = True) -> str:
    """The URL to use: AMOCA_DATABASE_URL, or the embedded server (started on demand)."""
    if settings.database_url:
        validate_url(settings.database_url)
        return settings.database_url
    from indexer.db import embedded

    data_dir = Path(settings.data_dir) / "pg"
    server = embedded.start(data_dir)
    ensure_database(server.url(), EMBEDDED_DATABASE)
    if announce:
        print(f"using embedded PostgreSQL in {data_dir} ({server.url(EMBEDDED_DATABASE)})",
              file=sys.stderr)
    return server.url(EMBEDDED_DATABASE)


def ensure_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    """Create database ``name`` unless it exists."""
    with connect(admin_url) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        try:
            conn.execute(query)
        except psycopg.errors.DuplicateDatabase:
            return
