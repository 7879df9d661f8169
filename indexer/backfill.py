"""Backfill: a wallet's history, by `getSignaturesForAddress` pages, through the same
fetch → decode → sink pipeline as the daemon.

Pages run newest → oldest (the order nodes list them), `limit` 1000 with `before`. A
page's transactions go through the pipeline in units of the pipeline's fetch batch, and
only once every unit of the page -- and of every newer page -- is committed is the
page's oldest signature stored as the wallet's progress for this range. Up to
``pages_ahead`` pages are in flight at once, so listing the next page, fetching, decoding
and writing overlap; progress still moves in page order. A stopped or crashed backfill
run again with the same range resumes after the last page stored; a page interrupted
half-way is redone, which writes nothing twice (rows are idempotent). Backfill never
moves the daemon's cursors.

A range without an ``until`` bound is never final: the wallet goes on. A run that lists
from the top keeps the newest FINALIZED signature it listed; the same range run again --
done, or resuming after a crash -- first backfills what arrived since, as a range of its
own (``since`` that signature, exclusive: resumable like any other), adopts that range's
newest signature and forgets its progress, then resumes what is unfinished below.

An agent's SPL token accounts have histories of their own: a token transfer to an agent
names its token account, never its wallet. ``backfill_agent`` therefore pages the wallet
and each of its token accounts, side by side, with progress kept per address; a
transaction two of them list is submitted once. Agents backfilled together share that
table too, so a transfer between two of them is fetched and written once. A token
account's progress names the wallet that owns it, so a run of that wallet lists every
account an earlier run found, one it has since closed included.

Range bounds are a slot, a signature or a time. Times need no slot lookup: every entry
of a signature page carries its `blockTime`, so they filter as they stream.

Progress is only ever saved in the life of the server the page's rows were committed in
(``indexer.db.connection.server_life``), and in the life of the address's previous save:
within one life commits are kept in order, so a save kept keeps the rows it vouches for.
A failover to a standby that lacks the last commits, or a crash that lost them, is a
new life: the address's next save is refused (``ServerChanged``), and the address starts
over from the progress the database now holds -- its pages since then written again,
which writes nothing twice. Without this a run riding the outage out would save its next
page's progress past rows the new server never got.

A newest bound given as a slot or a time starts the listing there instead of at the top
of each history (``until_anchor``): a signature of the first block after it (for a time,
the first block whose time is after it: :func:`first_block_after`), as ``before``. A
node bounds ``before`` by where that transaction stands in the ledger, whichever
addresses it touches; an address whose listing from there is empty -- nothing older, or
a node that does not know the anchor -- is listed from its top, as without one. Pages
newer than the bound are still filtered out, so an anchor that lists too much costs
time, never rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from indexer.db.connection import SERVER_LIFE, pooled, server_life
from indexer.decode.base58 import is_signature
from indexer.errors import ConfigError, IndexerError, PermanentError, ServerChanged
from indexer.pipeline import UnitResult, WorkUnit, retrieved

log = structlog.get_logger(__name__)


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
    if is_signature(text):
        return Bound(signature=text)
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

    def check(self, slots: Mapping[str, int] | None = None) -> None:
        """Refuse a range whose oldest bound is after its newest: slots and times compare as
        given, a signature by its slot in ``slots`` (the node's answer, once asked)."""
        since, until = self.since, self.until
        if since is None or until is None:
            return
        since_slot, until_slot = _slot_of(since, slots), _slot_of(until, slots)
        if since_slot is not None and until_slot is not None and since_slot > until_slot:
            raise ConfigError(f"--since {_described(since, since_slot)} is after "
                              f"--until {_described(until, until_slot)}")
        if since.time is not None and until.time is not None and since.time > until.time:
            raise ConfigError(f"--since {since.time.isoformat()} is after --until {until.time.isoformat()}")


def _slot_of(bound: Bound, slots: Mapping[str, int] | None) -> int | None:
    if bound.signature is not None:
        return None if slots is None else slots.get(bound.signature)
    return bound.slot


def _described(bound: Bound, slot: int) -> str:
    return f"slot {slot}" if bound.signature is None else f"{bound.signature} (slot {slot})"


class SignatureInfoLike(Protocol):
    signature: str
    slot: int
    block_time: int | None
    confirmation_status: str | None


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
    if window.since is None and window.until is None:  # the whole history: every entry
        return [info.signature for info in page], False
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


class BlockSource(Protocol):
    async def get_slot(self, commitment: str = "confirmed") -> int: ...
    async def get_blocks_with_limit(self, start_slot: int, limit: int) -> list[int]: ...
    async def get_block_time(self, slot: int) -> int | None: ...
    async def get_block_signatures(self, slot: int) -> list[str]: ...


# Blocks looked at for an anchor: a mainnet block holds hundreds of transactions (votes
# included), so the first will do; a quiet local cluster has empty ones.
ANCHOR_BLOCKS = 16


async def until_anchor(rpc: BlockSource, window: Range) -> str | None:
    """A signature to list from when the range's newest bound is a slot or a time: the
    first of the first block after it (:func:`first_block_after`, for a time) that holds a
    transaction; None when there is none to be had (the bound not reached yet, blocks the
    node no longer keeps or keeps without a time, empty blocks)."""
    until = window.until
    if until is None or (until.slot is None and until.time is None):
        return None
    try:
        start = until.slot + 1 if until.slot is not None else await first_block_after(rpc, until.time)
        if start is None:
            return None
        for slot in await rpc.get_blocks_with_limit(start, ANCHOR_BLOCKS):
            if signatures := await rpc.get_block_signatures(slot):
                return signatures[0]
    except IndexerError as exc:  # an anchor only saves listing: go without
        log.info("backfill_anchor_unavailable", until=str(until), error=str(exc))
    return None


SLOT_SECONDS = 0.4  # a slot's target length: the first guess of how far back a time lies


async def first_block_after(rpc: BlockSource, moment: datetime | None) -> int | None:
    """The slot of the first block whose time is after ``moment``; None when the node's
    newest confirmed block is not (nothing after it yet) or a block has no time.

    A block's time never goes back along the chain (agave clamps a bank's clock to its
    parent's; Firedancer does the same), so the blocks after ``moment`` are a suffix of the
    chain and a binary search finds where it starts: from a lower bound guessed from the
    slot length and widened until its block is not after ``moment``, about 2 x log2(slots
    between them) calls."""
    if moment is None:
        return None
    cutoff = moment.timestamp()

    async def block_at_or_after(slot: int) -> tuple[int, int] | None:
        """The first block at or after ``slot`` and its time; None: none yet, or no time."""
        found = await rpc.get_blocks_with_limit(slot, 1)
        if not found:
            return None
        time = await rpc.get_block_time(found[0])
        return None if time is None else (found[0], time)

    # Over slots s: is the first block at or after s after the moment? False, then true.
    high = await rpc.get_slot("confirmed")
    first = await block_at_or_after(high)
    if first is None or first[1] <= cutoff:
        return None
    answer = first[0]  # the first block at or after ``high``: after the moment
    back = max(1, round((first[1] - cutoff) / SLOT_SECONDS))
    while True:  # a slot whose first block is not after the moment
        low = max(0, high - back)
        probe = await block_at_or_after(low)
        if probe is None:
            return None
        if probe[1] <= cutoff:
            low = probe[0]
            break
        high, answer = low, probe[0]
        if low == 0:  # the moment is before the first block
            return answer
        back *= 2
    while high - low > 1:
        middle = (low + high) // 2
        probe = await block_at_or_after(middle)
        if probe is None:
            return None
        if probe[1] > cutoff:
            high, answer = middle, probe[0]
        else:
            low = probe[0]  # before ``high``: the first block at or after it is later
    return answer


class UnitSink(Protocol):
    """Where a page's signatures go (``indexer.pipeline.Pipeline``)."""

    fetch_batch: int

    def submit(self, unit: WorkUnit) -> asyncio.Future[UnitResult]: ...

    def forget_committed(self) -> None: ...


@dataclass(slots=True)
class WalletProgress:
    wallet: str
    scanned: int = 0
    submitted: int = 0  # transactions of settled pages: committed (written or already there)
    done: bool = False
    share: float | None = None  # of the range covered (see range_share); 1.0 once done
    newest: str | None = None  # the newest finalized signature covered (open-ended ranges)
    server: UUID | None = None  # the life of the server its progress was last saved in


def range_share(window: Range, top: SignatureInfoLike, reached: SignatureInfoLike) -> float | None:
    """The share of ``window`` covered, pages running from its newest entry ``top`` back
    to ``reached`` (the oldest entry committed so far), by slot or by block time as the
    range's oldest bound is given (pure). None when that bound is a signature or absent:
    a history's length is not known before its first transaction is reached."""
    since = window.since
    span: float
    covered: float
    if since is None:
        return None
    if since.slot is not None:
        span, covered = top.slot - since.slot, top.slot - reached.slot
    elif since.time is not None and top.block_time is not None and reached.block_time is not None:
        span, covered = top.block_time - since.time.timestamp(), top.block_time - reached.block_time
    else:
        return None
    return 1.0 if span <= 0 else min(1.0, max(0.0, covered / span))


@dataclass(frozen=True, slots=True)
class Stored:
    """An address's stored progress over a range."""

    before: str | None  # the oldest signature of the last page committed (unfinished)
    done: bool
    newest: str | None  # the newest finalized signature the range covers (no until bound)
    owner: str | None = None  # the agent wallet owning this token account; None: a wallet


class StoredProgress(Mapping[str, Stored]):
    """Addresses' stored progress over a range, read-only, with the token accounts each
    wallet owns indexed once: every agent's run asks for its own, and with all the agents
    of ``--all`` in one mapping a scan each would cost agents x rows."""

    __slots__ = ("_by_address", "_by_owner", "server")

    def __init__(self, by_address: Mapping[str, Stored] | None = None, *,
                 server: UUID | None = None) -> None:
        self._by_address: dict[str, Stored] = dict(by_address or {})
        self.server = server  # the life of the server it was read in; None: not known
        self._by_owner: dict[str, set[str]] = {}
        for address, kept in self._by_address.items():
            if kept.owner is not None:
                self._by_owner.setdefault(kept.owner, set()).add(address)

    def __getitem__(self, address: str) -> Stored:
        return self._by_address[address]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_address)

    def __len__(self) -> int:
        return len(self._by_address)

    def owned_by(self, wallet: str) -> frozenset[str]:
        """The token accounts of ``wallet`` that have progress here."""
        return frozenset(self._by_owner.get(wallet, ()))


_LOAD = """
SELECT wallet_address, before_signature, done, newest_signature, owner_wallet FROM backfill_progress
WHERE (wallet_address = ANY(%s) OR owner_wallet = ANY(%s)) AND range_key = %s
"""
# Saved only in the life given (any, for NULL); the life it was saved in comes back.
_SAVE = f"""
INSERT INTO backfill_progress (wallet_address, range_key, before_signature, done, newest_signature,
                               owner_wallet)
SELECT %(address)s::text, %(key)s::text, %(before)s::text, %(done)s::boolean, %(newest)s::text,
       %(owner)s::text
WHERE %(life)s::uuid IS NULL OR {SERVER_LIFE} = %(life)s::uuid
ON CONFLICT (wallet_address, range_key) DO UPDATE
SET before_signature = excluded.before_signature, done = excluded.done,
    newest_signature = excluded.newest_signature,
    owner_wallet = coalesce(excluded.owner_wallet, backfill_progress.owner_wallet), updated_at = now()
RETURNING {SERVER_LIFE}
"""
# A token account's progress stored without its owner (before sql/0018) gets it from the
# next run that lists the account: an unfinished range's next save names it, but a done
# range is never saved again, and only an owner lets a later run find the account once it
# is closed (``StoredProgress.owned_by``).
_CLAIM = """
UPDATE backfill_progress SET owner_wallet = %s
WHERE wallet_address = %s AND range_key = %s AND owner_wallet IS NULL
"""
# What arrived since, once backfilled: the range takes its newest signature, and that
# range's own progress goes (one transaction: a crash between the two leaves neither half).
_ADOPT = """
UPDATE backfill_progress SET newest_signature = %s, updated_at = now()
WHERE wallet_address = %s AND range_key = %s
"""
_FORGET = "DELETE FROM backfill_progress WHERE wallet_address = %s AND range_key = %s"


@dataclass(slots=True)
class _Page:
    task: asyncio.Future[Any] | None  # the page's units, committed; None: nothing chosen
    oldest: SignatureInfoLike
    scanned: int
    submitted: int


InFlight = dict[str, "asyncio.Future[Any]"]  # signature -> its unit, until committed


async def load_progress(pool: AsyncConnectionPool[Any], addresses: Sequence[str],
                        window: Range, *, owners: Sequence[str] = ()) -> StoredProgress:
    """The stored progress of ``addresses`` and of the token accounts ``owners`` own over
    ``window``, in one query (an address without any is absent). A run loads every address
    up front: one query each kept the shared pool busy opening connections while the
    first batches waited for it."""
    async def load(conn: psycopg.AsyncConnection[Any]) -> StoredProgress:
        life = await server_life(conn)
        cur = await conn.execute(_LOAD, (list(addresses), list(owners), window.key()))
        return StoredProgress({address: Stored(*kept) for address, *kept in await cur.fetchall()},
                              server=life)

    return await pooled(pool, load, what="backfill_progress")


_FORGET_RANGES = """
DELETE FROM backfill_progress p
WHERE (p.wallet_address, p.range_key) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
   OR (p.owner_wallet = ANY(%s) AND p.range_key = %s)
RETURNING p.wallet_address, p.newest_signature
"""


async def forget_progress(pool: AsyncConnectionPool[Any], addresses: Sequence[str], window: Range,
                          *, owners: Sequence[str] = ()) -> None:
    """Delete the stored progress of ``addresses`` and of the token accounts ``owners`` own
    over ``window`` (``--restart``), and that of the ranges since their newest signatures,
    which a run stopped while catching up leaves (and theirs in turn): nothing of the range
    is left unfinished in ``status``."""
    async def forget(conn: psycopg.AsyncConnection[Any]) -> None:
        wanted, owned = [(address, window.key()) for address in addresses], list(owners)
        async with conn.transaction():
            while wanted or owned:
                cur = await conn.execute(_FORGET_RANGES, ([a for a, _ in wanted], [k for _, k in wanted],
                                                          owned, window.key()))
                owned = []
                wanted = [(address, Range(since=Bound(signature=newest)).key())
                          for address, newest in await cur.fetchall() if newest is not None]

    await pooled(pool, forget, what="backfill_progress")


def _submit(pipeline: UnitSink, signatures: list[str], shared: InFlight | None) -> asyncio.Future[Any]:
    """The page as units of the pipeline's fetch batch; done when all are committed.

    With ``shared`` (the units an agent's other addresses have in flight), a signature
    already there is not submitted again: the page waits for that unit instead."""
    size = max(1, pipeline.fetch_batch)
    waits: dict[int, asyncio.Future[Any]] = {}
    fresh = signatures
    if shared is not None:
        for signature in signatures:
            if (other := shared.get(signature)) is not None:
                waits[id(other)] = other
        fresh = [s for s in signatures if s not in shared]
    units = []
    for start in range(0, len(fresh), size):
        chunk = tuple(fresh[start:start + size])
        unit = pipeline.submit(WorkUnit(chunk, "backfill"))
        if shared is not None:
            shared.update(dict.fromkeys(chunk, unit))
            unit.add_done_callback(functools.partial(_forget, shared, chunk))
        units.append(unit)
    return asyncio.gather(*units, *waits.values())


def _forget(shared: InFlight, signatures: Sequence[str], _: asyncio.Future[Any]) -> None:
    # Committed now: the pipeline skips these signatures if another page names them again.
    for signature in signatures:
        shared.pop(signature, None)


async def backfill_wallet(
    wallet: str,
    window: Range,
    *,
    rpc: PageSource,
    pipeline: UnitSink,
    pool: AsyncConnectionPool[Any] | None,
    on_page: Callable[[WalletProgress], None] = lambda _: None,
    pages_ahead: int = 2,
    shared: InFlight | None = None,
    stored: StoredProgress | None = None,
    owner: str | None = None,
    anchor: str | None = None,
) -> WalletProgress:
    """Backfill one wallet over ``window``; resumes from stored progress when ``pool``
    (``stored``: that progress, loaded already; else it is loaded here). ``owner``: the
    agent wallet whose token account ``wallet`` is, kept with the progress. ``anchor``:
    where to start listing instead of the top (:func:`until_anchor`), unless the stored
    progress says where. When the database's server changes under the run (a failover, a
    crash), the wallet starts over from the progress the database then holds (the
    module doc); its counts start over too."""
    while True:
        try:
            return await _backfill_wallet(wallet, window, rpc=rpc, pipeline=pipeline, pool=pool,
                                          on_page=on_page, pages_ahead=pages_ahead, shared=shared,
                                          stored=stored, owner=owner, anchor=anchor)
        except ServerChanged as exc:
            log.warning("backfill_server_changed", address=wallet, error=str(exc))
            pipeline.forget_committed()  # committed in the old life: maybe gone
            stored = None  # read again, from the server now serving


async def _backfill_wallet(
    wallet: str,
    window: Range,
    *,
    rpc: PageSource,
    pipeline: UnitSink,
    pool: AsyncConnectionPool[Any] | None,
    on_page: Callable[[WalletProgress], None],
    pages_ahead: int,
    shared: InFlight | None,
    stored: StoredProgress | None,
    owner: str | None,
    anchor: str | None,
) -> WalletProgress:
    progress = WalletProgress(wallet)
    range_key = window.key()
    before = window.until.signature if window.until else None
    life: UUID | None = None  # the server life the wallet's progress stands on
    if pool is not None:
        if stored is None:
            stored = await load_progress(pool, [wallet], window)
        life = stored.server
        row = stored.get(wallet)
        if row is not None:
            progress.newest = row.newest
            if row.newest is not None and window.until is None:
                life = await _since_then(wallet, window, row.newest, progress, rpc=rpc,
                                         pipeline=pipeline, pool=pool, on_page=on_page,
                                         pages_ahead=pages_ahead, shared=shared, owner=owner)
            if row.done:  # nothing older to list, reported as done
                progress.done, progress.share, progress.server = True, 1.0, life
                on_page(progress)
                if owner is not None and row.owner is None:  # stored before sql/0018 named owners
                    await _claim(pool, wallet, range_key, owner)
                return progress
            before = row.before or before
    anchor = anchor if before is None else None
    # Listed from the top of an open-ended range: its newest finalized entry is kept.
    keeps_newest = pool is not None and window.until is None and before is None
    until = window.since.signature if window.since else None
    in_flight: deque[_Page] = deque()
    top: SignatureInfoLike | None = None  # the newest entry of the range listed

    async def settle_oldest() -> None:
        nonlocal life
        oldest = in_flight[0]
        results = await oldest.task if oldest.task is not None else []
        in_flight.popleft()
        if pool is not None:
            life = await _save(pool, wallet, range_key, oldest.oldest.signature, done=False,
                               newest=progress.newest, owner=owner, life=_one_life(wallet, life, results))
        progress.scanned += oldest.scanned
        progress.submitted += oldest.submitted
        if top is not None:
            progress.share = range_share(window, top, oldest.oldest)
        on_page(progress)

    try:
        async for page in _pages(rpc, wallet, until=until, before=before, anchor=anchor):
            if not page:
                break
            if keeps_newest and progress.newest is None:
                progress.newest = _newest_finalized(page)
            chosen, stop = select(page, window)
            if top is None and chosen:
                top = next(i for i in page if not _newer_than_until(i, window.until))
            while len(in_flight) >= max(1, pages_ahead):  # the next page is listed meanwhile
                await settle_oldest()
            in_flight.append(_Page(_submit(pipeline, chosen, shared) if chosen else None,
                                   page[-1], len(page), len(chosen)))
            if stop:
                break
        while in_flight:
            await settle_oldest()
    finally:
        for unsettled in in_flight:  # a failure: units already submitted finish on their own
            if unsettled.task is not None:
                unsettled.task.add_done_callback(retrieved)
    progress.done = True
    progress.share = 1.0
    if pool is not None:
        progress.server = await _save(pool, wallet, range_key, None, done=True, newest=progress.newest,
                                      owner=owner, life=life)
    on_page(progress)
    return progress


def _one_life(address: str, life: UUID | None, results: Sequence[UnitResult]) -> UUID | None:
    """The one server life a page's save must be made in: that of the address's progress
    and of every commit of the page's units (pure). None: any (nothing committed yet)."""
    lives = {server for result in results for server in result.servers}
    if life is not None:
        lives.add(life)
    if len(lives) > 1:
        raise ServerChanged(f"{address}: a page was committed in another server life than its progress")
    return next(iter(lives), None)


async def _pages(rpc: PageSource, address: str, *, until: str | None, before: str | None,
                 anchor: str | None) -> AsyncIterator[Sequence[Any]]:
    """``address``'s pages from ``anchor`` when there is one; from ``before`` (the top, for
    None) when the anchor lists nothing or the node refuses it (the module doc)."""
    if anchor is not None:
        listed = False
        try:
            async for page in rpc.iter_signatures(address, until=until, before=anchor):
                listed = listed or bool(page)
                yield page
        except PermanentError as exc:
            if listed:
                raise
            log.info("backfill_anchor_refused", address=address, error=str(exc))
        if listed:
            return
    async for page in rpc.iter_signatures(address, until=until, before=before):
        yield page


def _newest_finalized(page: Sequence[SignatureInfoLike]) -> str | None:
    """The newest finalized entry of a page listed newest first (pure)."""
    return next((info.signature for info in page if info.confirmation_status == "finalized"), None)


async def _since_then(wallet: str, window: Range, newest: str, progress: WalletProgress, *,
                      rpc: PageSource, pipeline: UnitSink, pool: AsyncConnectionPool[Any],
                      on_page: Callable[[WalletProgress], None], pages_ahead: int,
                      shared: InFlight | None, owner: str | None) -> UUID:
    """Backfill what ``wallet`` listed after ``newest`` (an earlier run's top), as the range
    since it, then make its newest signature the range's own (``progress.newest``), in the
    server life that range was saved in; that life. Its pages count in ``progress``."""
    since_then = Range(since=Bound(signature=newest))

    def counted(part: WalletProgress) -> None:
        progress.scanned, progress.submitted = part.scanned, part.submitted
        on_page(progress)

    caught_up = await backfill_wallet(wallet, since_then, rpc=rpc, pipeline=pipeline, pool=pool,
                                      on_page=counted, pages_ahead=pages_ahead, shared=shared,
                                      owner=owner)
    progress.newest = caught_up.newest or newest  # nothing finalized since: the same top
    async def adopt(conn: psycopg.AsyncConnection[Any]) -> UUID | None:
        async with conn.transaction():
            life = await server_life(conn)
            if caught_up.server is not None and life != caught_up.server:
                return None
            if progress.newest != newest:  # else the range's progress stands as it was
                await conn.execute(_ADOPT, (progress.newest, wallet, window.key()))
            await conn.execute(_FORGET, (wallet, since_then.key()))
        return life

    adopted = await pooled(pool, adopt, what="backfill_progress")
    if adopted is None:
        raise ServerChanged(f"{wallet}: what arrived since was saved in another server life")
    return adopted


async def _claim(pool: AsyncConnectionPool[Any], account: str, range_key: str, owner: str) -> None:
    await _execute(pool, _CLAIM, (owner, account, range_key))


async def _execute(pool: AsyncConnectionPool[Any], statement: str, params: tuple[Any, ...]) -> None:
    """One statement that may run again (an upsert, a conditional update), retried through
    database outages like the writer's batches: a run waits for the database instead of
    failing a wallet at its next page."""
    async def run(conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(statement, params)

    await pooled(pool, run, what="backfill_progress")


async def _save(pool: AsyncConnectionPool[Any], wallet: str, range_key: str, before: str | None, *,
                done: bool, newest: str | None, owner: str | None, life: UUID | None) -> UUID:
    """Save ``wallet``'s progress in server life ``life`` (None: any, but one); the life
    it was saved in. ServerChanged when the database is in another."""
    params = {"address": wallet, "key": range_key, "before": before, "done": done, "newest": newest,
              "owner": owner, "life": life}

    async def save(conn: psycopg.AsyncConnection[Any]) -> UUID | None:
        row = await (await conn.execute(_SAVE, params)).fetchone()
        return None if row is None else row[0]

    saved = await pooled(pool, save, what="backfill_progress")
    if saved is None:
        raise ServerChanged(f"{wallet}: its progress would be saved in another server life than "
                            "its rows were committed in")
    return saved


class Discovered:
    """Token accounts the decoder finds an agent being backfilled owns, handed to that
    agent's run (the pipeline's ``on_token_account``). The agent's wallet history names
    every account of its own it signed for -- a transfer out, the close -- so an account
    it has since closed, which no ``getTokenAccountsByOwner`` lists, is found and listed
    too: transfers into it from others never name the wallet."""

    def __init__(self) -> None:
        self._runs: dict[str, Callable[[str], None]] = {}
        self.accounts: set[str] = set()  # no listing gave: found by this run or one before

    def __call__(self, owner: str, account: str) -> None:
        add = self._runs.get(owner)
        if add is not None:
            add(account)

    @contextlib.contextmanager
    def listening(self, owner: str, add: Callable[[str], None]) -> Iterator[None]:
        self._runs[owner] = add
        try:
            yield
        finally:
            del self._runs[owner]


async def backfill_agent(
    wallet: str,
    token_accounts: Sequence[str],
    window: Range,
    *,
    rpc: PageSource,
    pipeline: UnitSink,
    pool: AsyncConnectionPool[Any] | None,
    on_page: Callable[[WalletProgress], None] = lambda _: None,
    shared: InFlight | None = None,
    stored: StoredProgress | None = None,
    discovered: Discovered | None = None,
    anchor: str | None = None,
) -> WalletProgress:
    """Backfill ``wallet`` and its token accounts over ``window``, all at once; one total.

    A transaction in two of the histories (a token transfer the agent signed) is fetched
    once: the second address's page waits for the first one's unit. Pass the same
    ``shared`` to agents run together (the pipeline decodes each transaction for every
    watched agent at once) and that holds across agents too. With ``discovered``, a
    token account of the agent's that its histories reveal joins the run while it lasts
    (its progress loaded on its own). Token accounts ``stored`` names the agent the owner
    of (an earlier run found them) are listed too: pass ``stored`` loaded with the agent
    among its ``owners``. ``anchor``: every address's listing starts there
    (:func:`until_anchor`)."""
    total = WalletProgress(wallet)
    parts: dict[str, WalletProgress] = {}
    addresses: list[str] = []

    def on_address_page(part: WalletProgress) -> None:
        parts[part.wallet] = part
        total.scanned = sum(p.scanned for p in parts.values())
        total.submitted = sum(p.submitted for p in parts.values())
        # The agent is as far as its slowest address; unknown while any address is.
        shares = [p.share for p in parts.values()]
        total.share = (min(s for s in shares if s is not None)
                       if len(parts) == len(addresses) and None not in shares else None)
        on_page(total)

    if shared is None:
        shared = {}
    if pool is not None and stored is None:
        stored = await load_progress(pool, [wallet, *token_accounts], window, owners=[wallet])
    # Found by a run before: ``stored`` says the agent owns them.
    remembered = (stored.owned_by(wallet) if stored is not None else frozenset()) - set(token_accounts)
    if discovered is not None:
        discovered.accounts |= remembered
    listed = (wallet, *sorted((set(token_accounts) | remembered) - {wallet}))
    group = asyncio.TaskGroup()

    def start(address: str, known: StoredProgress | None) -> None:
        run = backfill_wallet(address, window, rpc=rpc, pipeline=pipeline, pool=pool,
                              on_page=on_address_page, shared=shared, stored=known,
                              owner=None if address == wallet else wallet, anchor=anchor)
        try:
            group.create_task(run)
        except RuntimeError:
            run.close()  # never started: closed, so it is not reported as never awaited
            raise
        addresses.append(address)

    def found(account: str) -> None:
        if discovered is None or account in addresses:
            return
        try:
            start(account, None)
        except RuntimeError:  # the agent's run has just ended (another agent's unit found it)
            return
        discovered.accounts.add(account)

    try:
        with contextlib.nullcontext() if discovered is None else discovered.listening(wallet, found):
            async with group:
                for address in listed:
                    start(address, stored)
    except BaseExceptionGroup as failed:
        # One address failed (the others were stopped): report its error, as one.
        raise first_failure(failed) from None
    total.done, total.share = True, 1.0
    return total


def first_failure(failed: BaseExceptionGroup[BaseException]) -> BaseException:
    """The first error of a task group's failure: what a user is told, as one error."""
    first = failed.exceptions[0]
    while isinstance(first, BaseExceptionGroup):
        first = first.exceptions[0]
    return first
