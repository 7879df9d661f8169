"""Gap-fill: bring one wallet from its cursor up to the chain's present.

Used on every (re)subscribe, by the periodic reconciliation poll (which catches
notifications a provider silently dropped), and for a newly watched wallet (whose
missing cursor means "its whole history").

`getSignaturesForAddress(until=cursor)` is paged newest → oldest with `before`; the
signatures are then processed oldest first, in chunks, each chunk committing its rows
together with the cursor advance to its newest signature.

The cursor only ever points at a FINALIZED signature. A confirmed signature can still be
forked away, and `until=<a signature the node no longer knows>` would make the node page
through the wallet's entire history. Signatures newer than the finalized slot are
processed all the same (their rows are written); they are just not yet covered by the
cursor, so the next pass lists them again (and skips re-fetching them: the pipeline
remembers committed signatures).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg
from psycopg_pool import AsyncConnectionPool

from indexer.db.connection import translate
from indexer.pipeline import Pipeline, WorkUnit
from indexer.sink import CursorAdvance


class SignaturePage(Protocol):
    signature: str
    slot: int


class SignatureLister(Protocol):
    def iter_signatures(self, address: str, *, until: str | None = None,
                        before: str | None = None) -> AsyncIterator[Sequence[Any]]: ...

    async def get_slot(self, commitment: str = ...) -> int: ...


@dataclass(frozen=True, slots=True)
class Cursor:
    signature: str
    slot: int


@dataclass(frozen=True, slots=True)
class Chunk:
    signatures: tuple[str, ...]
    cursor: CursorAdvance | None


def plan_chunks(wallet: str, newest_first: Sequence[tuple[str, int]], size: int,
                finalized_slot: int) -> list[Chunk]:
    """Oldest-first chunks of (signature, slot) as listed newest-first by the node; each
    carries the cursor advance to its newest FINALIZED signature (pure).

    The node lists by slot, so the finalized signatures are a prefix of the oldest-first
    order: a chunk's cursor is the last signature of that prefix it contains.
    """
    oldest_first = list(reversed(newest_first))
    final_prefix = 0
    while final_prefix < len(oldest_first) and oldest_first[final_prefix][1] <= finalized_slot:
        final_prefix += 1
    chunks: list[Chunk] = []
    for start in range(0, len(oldest_first), size):
        end = min(start + size, len(oldest_first))
        last_final = min(end, final_prefix) - 1
        cursor = None
        if last_final >= start:
            signature, slot = oldest_first[last_final]
            cursor = CursorAdvance(wallet, signature, slot)
        chunks.append(Chunk(tuple(sig for sig, _ in oldest_first[start:end]), cursor))
    return chunks


async def read_cursors(conn: psycopg.AsyncConnection[Any],
                       wallets: Sequence[str] | None = None) -> dict[str, Cursor]:
    if wallets is None:
        cur = await conn.execute("SELECT wallet_address, signature, slot FROM indexer_cursors")
    else:
        cur = await conn.execute(
            "SELECT wallet_address, signature, slot FROM indexer_cursors"
            " WHERE wallet_address = ANY(%s)", (list(wallets),))
    return {w: Cursor(s, int(slot)) for w, s, slot in await cur.fetchall() if s is not None}


class GapFiller:
    """Fills wallets' gaps through the pipeline; one fill per wallet at a time."""

    def __init__(self, *, rpc: SignatureLister, pipeline: Pipeline,
                 pool: AsyncConnectionPool[Any], chunk_size: int = 250,
                 source: str = "gapfill") -> None:
        self.rpc = rpc
        self.pipeline = pipeline
        self.pool = pool
        self.chunk_size = chunk_size
        self.source = source
        self._locks: dict[str, asyncio.Lock] = {}
        self._finalized: tuple[int, float] = (0, float("-inf"))  # (slot, when asked)

    async def finalized_slot(self) -> int:
        """The finalized slot, asked at most once a second: a start-up or reconciliation
        pass fills thousands of wallets, and one answer serves them all."""
        slot, asked = self._finalized
        now = asyncio.get_running_loop().time()
        if now - asked > 1.0:
            slot = await self.rpc.get_slot("finalized")
            self._finalized = (slot, now)
        return slot

    async def fill(self, wallet: str) -> int:
        """Process every signature newer than the wallet's cursor; returns how many."""
        lock = self._locks.setdefault(wallet, asyncio.Lock())
        async with lock:
            try:
                async with self.pool.connection() as conn:
                    cursor = (await read_cursors(conn, [wallet])).get(wallet)
            except psycopg.Error as exc:  # a dead session or an outage: transient, by SQLSTATE
                raise translate(exc) from exc
            finalized_slot = await self.finalized_slot()
            listed: list[tuple[str, int]] = []
            async for page in self.rpc.iter_signatures(
                    wallet, until=cursor.signature if cursor else None):
                listed.extend((info.signature, int(info.slot)) for info in page)
            for chunk in plan_chunks(wallet, listed, self.chunk_size, finalized_slot):
                await self.pipeline.process(WorkUnit(chunk.signatures, self.source, chunk.cursor))
            return len(listed)
