"""The wallet registry: which agent wallets this replica watches, kept live.

The set is `agents.wallet_address` filtered by this replica's shard. Changes arrive as
`pg_notify('amoca_agents_changed', ...)` from a trigger on `agents`; rather than apply
each payload, a notification (or a burst of them, debounced) triggers a re-read of the
whole set and a diff. That is cheap (one indexed scan of a few thousand rows), handles
inserts, deletes and changed wallets alike, and cannot drift: notifications lost while
the LISTEN connection was down are covered by the re-read done on every reconnect.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
import structlog

from indexer.errors import ConfigError, DatabaseUnavailable, first_line

CHANNEL = "amoca_agents_changed"
log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Shard:
    """Replica ``index`` of ``count`` watches wallets with hash(wallet) mod count == index."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        try:
            index_text, count_text = text.split("/")
            shard = cls(int(index_text), int(count_text))
        except ValueError:
            raise ConfigError(f"shard must look like i/N (e.g. 0/2), got {text!r}") from None
        if shard.count < 1 or not 0 <= shard.index < shard.count:
            raise ConfigError(f"shard {text!r} is out of range: need 0 <= i < N")
        return shard

    def owns(self, wallet: str) -> bool:
        return self.count == 1 or wallet_hash(wallet) % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def wallet_hash(wallet: str) -> int:
    """A hash stable across processes and versions (Python's hash() is salted)."""
    return int.from_bytes(hashlib.blake2b(wallet.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True, slots=True)
class WalletChange:
    added: frozenset[str]
    removed: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed)


def diff(current: frozenset[str], wanted: frozenset[str]) -> WalletChange:
    return WalletChange(added=wanted - current, removed=current - wanted)


async def load_wallets(conn: psycopg.AsyncConnection[Any], shard: Shard) -> frozenset[str]:
    cur = await conn.execute("SELECT wallet_address FROM agents")
    return frozenset(w for (w,) in await cur.fetchall() if shard.owns(w))


class WalletRegistry:
    """Emits the watched set's changes: first everything, then every change, live."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        shard: Shard = Shard(),
        *,
        debounce: float = 0.05,
        retry_delay: float = 1.0,
    ) -> None:
        self._connect = connect
        self.shard = shard
        self.debounce = debounce
        self.retry_delay = retry_delay
        self.wallets: frozenset[str] = frozenset()

    async def changes(self) -> AsyncIterator[WalletChange]:
        """Yield changes forever; survives database outages by reconnecting and re-reading."""
        while True:
            try:
                async for change in self._listen_once():
                    yield change
            except (psycopg.OperationalError, DatabaseUnavailable, OSError) as exc:
                log.warning("registry_listen_lost", error=first_line(exc))
                await asyncio.sleep(self.retry_delay)

    async def _listen_once(self) -> AsyncIterator[WalletChange]:
        # Two connections: one sits in LISTEN (its notifies() generator owns it), the
        # other runs the re-reads, so a re-read never waits behind the listener.
        listener = await self._connect()
        reader = await self._connect()
        changed = asyncio.Event()

        async def pump() -> None:
            async for _ in listener.notifies():
                changed.set()

        pump_task: asyncio.Task[None] | None = None
        try:
            await listener.set_autocommit(True)
            await reader.set_autocommit(True)
            await listener.execute(f"LISTEN {CHANNEL}")
            pump_task = asyncio.create_task(pump(), name="registry-listen")
            change = await self._reload(reader)  # covers anything missed while not listening
            if change:
                yield change
            while True:
                waiter = asyncio.create_task(changed.wait())
                await asyncio.wait({waiter, pump_task}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if pump_task.done():
                    pump_task.result()  # re-raises the listener's failure
                    raise DatabaseUnavailable("LISTEN connection closed")
                # Coalesce a burst of notifications (a bulk insert of agents) into one re-read.
                await asyncio.sleep(self.debounce)
                changed.clear()
                change = await self._reload(reader)
                if change:
                    yield change
        finally:
            if pump_task is not None:
                pump_task.cancel()
            await listener.close()
            await reader.close()

    async def _reload(self, conn: psycopg.AsyncConnection[Any]) -> WalletChange:
        wanted = await load_wallets(conn, self.shard)
        change = diff(self.wallets, wanted)
        self.wallets = wanted
        if change:
            log.info("wallets_changed", added=len(change.added), removed=len(change.removed),
                     watched=len(wanted))
        return change
