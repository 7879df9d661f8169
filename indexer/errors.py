"""The one exception tree of amoca-indexer.

Every error the indexer raises on purpose is an :class:`IndexerError`. The tree is
split at the root by what the caller should do about it:

``IndexerError``
    ``TransientError`` -- worth retrying after a backoff: the world may change.
        ``RpcUnavailable``    network error, 5xx, node behind, connection refused.
        ``RpcRateLimited``    HTTP 429 / -32005; carries ``retry_after`` seconds.
        ``DatabaseUnavailable`` connection lost, server shutting down, serialization
                              failure or deadlock (classified by SQLSTATE).
    ``PermanentError`` -- retrying the same input gives the same answer.
        ``ConfigError``       bad configuration; the CLI prints one line, exits 2.
        ``DecodeError``       an RPC payload we cannot decode; carries a ``reason`` code
                              and is dead-lettered with the raw payload.
        ``RpcError``          a JSON-RPC error object that is not transient
                              (invalid params, unsupported transaction version...);
                              carries the object's ``code`` and ``data``.
        ``DatabaseError``     a constraint violation or other non-retryable SQLSTATE;
                              names the constraint when there is one.
        ``MigrationError``    a migration file changed after it was applied, or failed.
        ``ServerChanged``     the database is served by another server (or the same one
                              restarted) than earlier commits were: they may be lost, and
                              work that continues from them must start over from what the
                              database holds, not retry.

Third-party exceptions are translated at the boundary with ``raise X(...) from exc``;
:func:`is_transient` is the single retry classifier used by every retry policy.
"""

from __future__ import annotations

from typing import Any


class IndexerError(Exception):
    """Root of every error the indexer raises on purpose."""


class TransientError(IndexerError):
    """Retry after a backoff: the same operation may succeed later."""


class PermanentError(IndexerError):
    """Do not retry: dead-letter the input or fail fast."""


class ConfigError(PermanentError):
    """The configuration (file, environment or flags) is invalid."""


class DecodeError(PermanentError):
    """An RPC payload could not be decoded. ``reason`` is a short snake_case code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class RpcError(PermanentError):
    """A JSON-RPC error answer that retrying will not change. ``data`` is the error
    object's own ``data`` member (sendTransaction's simulation result, for one), if any."""

    def __init__(self, code: int, message: str, method: str = "", data: Any = None) -> None:
        self.code = code
        self.method = method
        self.data = data
        super().__init__(f"{method or 'rpc'} failed with {code}: {message}")


class RpcUnavailable(TransientError):
    """The endpoint could not answer now (network error, 5xx, node behind)."""


class RpcRateLimited(RpcUnavailable):
    """The endpoint asked us to slow down (HTTP 429 or JSON-RPC -32005)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DatabaseUnavailable(TransientError):
    """The database cannot be reached or asked us to retry (by SQLSTATE class)."""


class ServerChanged(PermanentError):
    """Work that continues from earlier commits met a server other than the one they were
    made on (``indexer.db.connection.server_life``): a standby promoted in a failover, or a
    server restarted, may lack them. Retrying the same statement in the new life gives the
    same answer; the work reads what the database now holds and starts over from there."""


class DatabaseError(PermanentError):
    """A database error retrying will not fix; names the constraint when there is one."""

    def __init__(self, message: str, sqlstate: str | None = None, constraint: str | None = None):
        self.sqlstate = sqlstate
        self.constraint = constraint
        super().__init__(message)


class MigrationError(PermanentError):
    """A migration could not be applied, or an applied one was changed."""


def is_transient(exc: BaseException) -> bool:
    """The one retry classifier: True when retrying ``exc`` may succeed."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, PermanentError):
        return False
    # Untranslated network-level failures are transient by nature.
    return isinstance(exc, (ConnectionError, TimeoutError))


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type's name when empty), for one-line logs."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
