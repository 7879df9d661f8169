"""Backfill: a wallet's history, by `getSignaturesForAddress` pages, through the same
fetch → decode → sink pipeline as the daemon.

Pages run newest → oldest (the order nodes list them), `limit` 1000 with `before`; each
page's transactions go through the pipeline as one unit, and only once that unit is
committed is the page's oldest signature stored as the wallet's progress for this
range. A stopped or crashed backfill run again with the same range resumes after the
last committed page; a page interrupted half-way is redone, which writes nothing twice
(rows are idempotent). Backfill never moves the daemon's cursors.

An agent's SPL token accounts have histories of their own: a token transfer to an agent
names its token account, never its wallet. ``backfill_agent`` therefore pages the wallet
and then each of its token accounts, with progress kept per address.

Range bounds are a slot, a signature or a time. Times need no slot lookup: every entry
of a signature page carries its `blockTime`, so they filter as they stream.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from psycopg_pool import AsyncConnectionPool

from indexer.decode.base58 import b58decode
from indexer.errors import ConfigError
from indexer.pipeline import Pipeline, WorkUnit


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a range: a slot, a signature or a UTC time."""

    slot: int | None = None
    signature: str | None = None
    time: datetime | None = None

    def __str__(self) -> str:
        if self.slot is not None:
            return f"slot:{self.slot}"
        if self.signature is not None:
            return f"sig:{self.signature}"
        assert self.time is not None
        return f"time:{self.time.isoformat()}"


_SLOT = re.compile(r"^\d{1,12}$")


def parse_bound(text: str) -> Bound:
    """A slot (digits), a base58 signature, or an ISO date/time (UTC when no zone)."""
    text = text.strip()
    if _SLOT.match(text):
        return Bound(slot=int(text))
    if 64 <= len(text) <= 88:
        try:
            if len(b58decode(text)) == 64:
                return Bound(signature=text)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{text!r} is not a slot, a transaction signature or a date/time (e.g. 2026-11-01T12:00)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Bound(time=moment)


@dataclass(frozen=True, slots=True)
class Range:
    since: Bound | None = None  # oldest included
    until: Bound | None = None  # newest included

    def key(self) -> str:
        return hashlib.sha256(f"{self.since}|{self.until}".encode()).hexdigest()[:16]

    def check(self) -> None:
        since, until = self.since, self.until
        if since is None or until is None:
            return
        if since.slot is not None and until.slot is not None and since.slot > until.slot:
            raise ConfigError(f"--since slot {since.slot} is after --until slot {until.slot}")
        if since.time is not None and until.time is not None and since.time > until.time:
            raise ConfigError(f"--since {since.time.isoformat()} is after --until {until.time.isoformat()}")


class SignatureInfoLike(Protocol):
    signature: str
    slot: int
    block_time: int | None


def _newer_than_until(info: SignatureInfoLike, until: Bound | None) -> bool:
    if until is None:
        return False
    if until.slot is not None:
        return info.slot > until.slot
    if until.time is not None and info.block_time is not None:
        return info.block_time > until.time.timestamp()
    return False


def _older_than_since(info: SignatureInfoLike, since: Bound | None) -> bool:
    if since is None:
        return False
    if since.slot is not None:
        return info.slot < since.slot
    if since.time is not None and info.block_time is not None:
        return info.block_time < since.time.timestamp()
    return False


def select(page: Sequence[SignatureInfoLike], window: Range) -> tuple[list[str], bool]:
    """The page's signatures inside the window, and whether the listing can stop (pure)."""
    chosen: list[str] = []
    for info in page:
        if _older_than_since(info, window.since):
            return chosen, True
        if not _newer_than_until(info, window.until):
            chosen.append(info.signature)
    return chosen, False


class PageSource(Protocol):
    def iter_signatures(self, address: str, *, until: str | None = None,
                        before: str | None = None) -> AsyncIterator[Sequence[Any]]: ...


@dataclass(slots=True)
class WalletProgress:
    wallet: str
    scanned: int = 0
    submitted: int = 0
    done: bool = False


_LOAD = """
SELECT before_signature, done FROM backfill_progress
WHERE wallet_address = %s AND range_key = %s
"""
_SAVE = """
INSERT INTO backfill_progress (wallet_address, range_key, before_signature, done)
VALUES (%s, %s, %s, %s)
ON CONFLICT (wallet_address, range_key) DO UPDATE
SET before_signature = excluded.before_signature, done = excluded.done, updated_at = now()
"""


async def backfill_wallet(
    wallet: str,
    window: Range,
    *,
    rpc: PageSource,
    pipeline: Pipeline,
    pool: AsyncConnectionPool[Any] | None,
    on_page: Callable[[WalletProgress], None] = lambda _: None,
) -> WalletProgress:
    """Backfill one wallet over ``window``; resumes from stored progress when ``pool``."""
    progress = WalletProgress(wallet)
    range_key = window.key()
    before = window.until.signature if window.until else None
    if pool is not None:
        async with pool.connection() as conn:
            row = await (await conn.execute(_LOAD, (wallet, range_key))).fetchone()
        if row is not None:
            if row[1]:
                progress.done = True
                return progress
            before = row[0] or before
    until = window.since.signature if window.since else None
    async for page in rpc.iter_signatures(wallet, until=until, before=before):
        if not page:
            break
        chosen, stop = select(page, window)
        progress.scanned += len(page)
        if chosen:
            await pipeline.process(WorkUnit(tuple(chosen), "backfill"))
            progress.submitted += len(chosen)
        oldest = page[-1].signature
        if pool is not None:
            await _save(pool, wallet, range_key, oldest, done=False)
        on_page(progress)
        if stop:
            break
    progress.done = True
    if pool is not None:
        await _save(pool, wallet, range_key, None, done=True)
    on_page(progress)
    return progress


async def _save(pool: AsyncConnectionPool[Any], wallet: str, range_key: str,
                before: str | None, *, done: bool) -> None:
    async with pool.connection() as conn:
        await conn.execute(_SAVE, (wallet, range_key, before, done))


async def backfill_agent(
    wallet: str,
    token_accounts: Sequence[str],
    window: Range,
    *,
    rpc: PageSource,
    pipeline: Pipeline,
    pool: AsyncConnectionPool[Any] | None,
    on_page: Callable[[WalletProgress], None] = lambda _: None,
) -> WalletProgress:
    """Backfill ``wallet`` and its token accounts over ``window``; one total for all."""
    total = WalletProgress(wallet)
    before_scanned = before_submitted = 0

    def on_address_page(part: WalletProgress) -> None:
        total.scanned = before_scanned + part.scanned
        total.submitted = before_submitted + part.submitted
        on_page(total)

    for address in (wallet, *sorted(set(token_accounts) - {wallet})):
        part = await backfill_wallet(address, window, rpc=rpc, pipeline=pipeline, pool=pool,
                                     on_page=on_address_page)
        before_scanned += part.scanned
        before_submitted += part.submitted
    total.scanned, total.submitted, total.done = before_scanned, before_submitted, True
    return total
