"""The subscription manager: one `logsSubscribe {mentions:[wallet]}` per watched wallet,
spread over several websocket connections.

`logsSubscribe` accepts exactly one pubkey in `mentions`, so 10,000 agents are 10,000
subscriptions; providers cap subscriptions per connection, hence the slots: wallet ``w``
lives on connection slot ``k`` until it is removed, and each slot holds at most
``max_per_connection`` wallets.

Every slot runs a reconnect loop that RESUBSCRIBES everything on every new connection
(solana-py's client does not: that is the piece most indexers miss), resets its backoff
after a connection that stayed up, and reports the wallets it (re)subscribed so their gap
since the cursor is filled -- notifications sent while the socket was down are gone.
Subscribe requests are pipelined and paced (``subscribe_rate`` per second per slot).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import structlog

from indexer.errors import TransientError
from indexer.metrics import Metrics

log = structlog.get_logger(__name__)


class LogsNotification(Protocol):
    @property
    def subscription(self) -> int: ...
    @property
    def signature(self) -> str: ...


class PubSub(Protocol):
    async def subscribe_logs(self, mentions: str, commitment: str = ...) -> int: ...
    async def unsubscribe_logs(self, subscription: int) -> None: ...
    def notifications(self) -> AsyncIterator[LogsNotification]: ...
    async def close(self) -> None: ...


ConnectFactory = Callable[[], Awaitable[PubSub]]
OnSignature = Callable[[str, str, float], None]  # (wallet, signature, received monotonic time)
OnSubscribed = Callable[[frozenset[str]], None]


@dataclass(slots=True)
class _Slot:
    index: int
    wallets: set[str] = field(default_factory=set)
    commands: asyncio.Queue[tuple[str, str]] = field(default_factory=asyncio.Queue)
    connected: bool = False


def backoff_delays(initial: float, maximum: float, rng: random.Random) -> Iterable[float]:
    """Exponential backoff with full jitter: uniform(0, min(max, initial * 2**n))."""
    ceiling = initial
    while True:
        yield rng.uniform(0, ceiling)
        ceiling = min(maximum, ceiling * 2)


class SubscriptionManager:
    def __init__(
        self,
        connect: ConnectFactory,
        *,
        on_signature: OnSignature,
        on_subscribed: OnSubscribed,
        metrics: Metrics,
        commitment: str = "confirmed",
        max_per_connection: int = 1000,
        subscribe_rate: float = 500.0,
        backoff_initial: float = 0.2,
        backoff_max: float = 10.0,
        stable_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._connect = connect
        self.on_signature = on_signature
        self.on_subscribed = on_subscribed
        self.metrics = metrics
        self.commitment = commitment
        self.max_per_connection = max_per_connection
        self.subscribe_rate = subscribe_rate
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()
        self._slots: list[_Slot] = []
        self._slot_of: dict[str, _Slot] = {}
        self._group: asyncio.TaskGroup | None = None
        self._subscribed = 0

    # -- wallet set ---------------------------------------------------------------------
    @property
    def wallets(self) -> frozenset[str]:
        """A snapshot (a copy: O(wallets)); ask ``wallet in manager`` for one wallet."""
        return frozenset(self._slot_of)

    def __contains__(self, wallet: object) -> bool:
        return wallet in self._slot_of

    def __len__(self) -> int:
        return len(self._slot_of)

    @property
    def settled(self) -> bool:
        """Every wallet is subscribed on a live connection."""
        return self._subscribed >= len(self._slot_of) and self.connected

    @property
    def connected(self) -> bool:
        """Every slot holding wallets has a live connection."""
        return all(slot.connected for slot in self._slots if slot.wallets)

    def add(self, wallets: Iterable[str]) -> None:
        for wallet in wallets:
            if wallet in self._slot_of:
                continue
            slot = next((s for s in self._slots if len(s.wallets) < self.max_per_connection), None)
            if slot is None:
                slot = _Slot(len(self._slots))
                self._slots.append(slot)
                if self._group is not None:
                    self._group.create_task(self._run_slot(slot), name=f"ws-slot-{slot.index}")
            slot.wallets.add(wallet)
            self._slot_of[wallet] = slot
            slot.commands.put_nowait(("subscribe", wallet))
        self.metrics.watched_wallets.set(len(self._slot_of))

    def remove(self, wallets: Iterable[str]) -> None:
        for wallet in wallets:
            slot = self._slot_of.pop(wallet, None)
            if slot is not None:
                slot.wallets.discard(wallet)
                slot.commands.put_nowait(("unsubscribe", wallet))
        self.metrics.watched_wallets.set(len(self._slot_of))

    # -- connections --------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            self._group = group
            for slot in self._slots:
                group.create_task(self._run_slot(slot), name=f"ws-slot-{slot.index}")
            # Keep the group open for slots created later by add().
            await asyncio.Event().wait()

    async def _run_slot(self, slot: _Slot) -> None:
        delays = iter(backoff_delays(self.backoff_initial, self.backoff_max, self.rng))
        first = True
        while True:
            if not first:
                self.metrics.ws_reconnects.inc()
            first = False
            started = self.clock()
            try:
                await self._connection(slot)
            except Exception as exc:  # the loop must outlive any connection failure
                log.warning("ws_disconnected", slot=slot.index, error=str(exc),
                            transient=isinstance(exc, TransientError | OSError | TimeoutError))
            if self.clock() - started >= self.stable_after:
                delays = iter(backoff_delays(self.backoff_initial, self.backoff_max, self.rng))
            await self.sleep(next(delays))

    async def _connection(self, slot: _Slot) -> None:
        ws = await self._connect()
        subs: dict[int, str] = {}
        by_wallet: dict[str, int] = {}
        slot.connected = True
        self.metrics.ws_connections.inc()
        try:
            # Resubscribe everything; the command queue's backlog is superseded by it.
            while not slot.commands.empty():
                slot.commands.get_nowait()
            wallets = sorted(slot.wallets)
            ids = await self._subscribe_many(ws, wallets)
            for wallet, sub in zip(wallets, ids, strict=True):
                subs[sub] = wallet
                by_wallet[wallet] = sub
            self._set_subscribed(len(ids))
            log.info("ws_subscribed", slot=slot.index, wallets=len(wallets))
            self.on_subscribed(frozenset(wallets))
            # Not a TaskGroup: its ExceptionGroup would hide the TransientError that the
            # reconnect loop classifies. The command task dies with the connection.
            commands = asyncio.create_task(self._commands(ws, slot, subs, by_wallet))
            counted = self.metrics.child(self.metrics.notifications, "logs")
            try:
                async for note in ws.notifications():
                    received = self.clock()
                    counted.inc()
                    owner = subs.get(note.subscription)
                    if owner is not None:  # else: an unsubscribed wallet's late notification
                        self.on_signature(owner, note.signature, received)
                    if commands.done():
                        commands.result()  # a failed (un)subscribe means a broken connection
                raise TransientError("websocket closed")
            finally:
                commands.cancel()
        finally:
            slot.connected = False
            self.metrics.ws_connections.dec()
            self._set_subscribed(-len(subs))
            await ws.close()

    async def _commands(self, ws: PubSub, slot: _Slot, subs: dict[int, str],
                        by_wallet: dict[str, int]) -> None:
        while True:
            action, wallet = await slot.commands.get()
            if action == "subscribe" and wallet not in by_wallet and wallet in slot.wallets:
                (sub,) = await self._subscribe_many(ws, [wallet])
                subs[sub] = wallet
                by_wallet[wallet] = sub
                self._set_subscribed(1)
                self.on_subscribed(frozenset([wallet]))
            elif action == "unsubscribe" and wallet in by_wallet:
                sub = by_wallet.pop(wallet)
                subs.pop(sub, None)
                self._set_subscribed(-1)
                await ws.unsubscribe_logs(sub)

    async def _subscribe_many(self, ws: PubSub, wallets: list[str]) -> list[int]:
        """Pipelined subscribe requests, paced at ``subscribe_rate`` per second."""
        ids: list[int] = []
        window = max(1, int(self.subscribe_rate // 10))
        for start in range(0, len(wallets), window):
            part = wallets[start:start + window]
            began = self.clock()
            ids.extend(await asyncio.gather(*(ws.subscribe_logs(w, self.commitment) for w in part)))
            if start + window < len(wallets):
                pause = len(part) / self.subscribe_rate - (self.clock() - began)
                if pause > 0:
                    await self.sleep(pause)
        return ids

    def _set_subscribed(self, delta: int) -> None:
        self._subscribed += delta
        self.metrics.ws_subscriptions.set(self._subscribed)
