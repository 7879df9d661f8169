"""A backfill's stored progress, on real PostgreSQL (as the indexer's least-privileged
role), against a wallet whose history goes on between runs: a range without an until
bound is never final. Run again, done or interrupted, it first backfills what arrived
since the newest finalized signature it kept, then what is unfinished below.

The node and the fetch path are small fakes: a history listed as a node lists it
(newest first, pages, ``before`` and ``until`` exclusive) and a pipeline that commits a
unit at once, or fails it."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool
from structlog.testing import capture_logs

from indexer.backfill import (
    Bound,
    Discovered,
    Range,
    Stored,
    StoredProgress,
    WalletProgress,
    backfill_agent,
    backfill_wallet,
    forget_progress,
    load_progress,
)
from indexer.db.connection import server_life
from indexer.errors import RpcUnavailable
from indexer.pipeline import UnitResult, WorkUnit
from indexer.rpc.protocol import SignatureInfo

WALLET = "W"
WHOLE = Range()  # the whole history: no bound


def entry(signature: str, slot: int, status: str | None = "finalized") -> SignatureInfo:
    return SignatureInfo(signature, slot, err=None, memo=None, block_time=None, confirmation_status=status)


class History:
    """One wallet's history, listed in pages of ``size`` as a node lists it."""

    def __init__(self, size: int, first_slot: int = 1) -> None:
        self.size, self.first_slot = size, first_slot
        self.entries: list[SignatureInfo] = []  # newest first
        self.listings: list[tuple[str | None, str | None]] = []  # (until, before) asked

    def land(self, count: int, status: str = "finalized") -> list[str]:
        """``count`` new transactions on top, oldest first; their signatures."""
        slot = self.entries[0].slot + 1 if self.entries else self.first_slot
        new = [entry(f"tx{slot + i}", slot + i, status) for i in range(count)]
        self.entries[:0] = reversed(new)
        return [entry.signature for entry in new]

    def finalize(self) -> None:
        self.entries = [entry(e.signature, e.slot) for e in self.entries]

    async def iter_signatures(self, address: str, *, until: str | None = None,
                              before: str | None = None) -> AsyncIterator[Sequence[Any]]:
        self.listings.append((until, before))
        names = [entry.signature for entry in self.entries]
        start = 0 if before is None else names.index(before) + 1
        end = names.index(until) if until is not None else len(names)
        listed = self.entries[start:end]
        for first in range(0, len(listed), self.size):
            yield listed[first:first + self.size]


class Fetching:
    """A pipeline that commits every unit at once, but fails those holding ``failing``."""

    fetch_batch = 2

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.failing: set[str] = set()
        self.forgotten = 0  # forget_committed() calls: the server changed under a run

    def submit(self, unit: WorkUnit) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.submitted.extend(unit.signatures)
        if self.failing.intersection(unit.signatures):
            future.set_exception(RpcUnavailable("getTransaction: HTTP 503"))
        else:
            future.set_result(UnitResult())
        return future

    def forget_committed(self) -> None:
        self.forgotten += 1

    def taken(self) -> list[str]:
        """What was submitted since the last call, oldest first."""
        taken, self.submitted = self.submitted, []
        return sorted(taken, key=lambda s: int(s[2:]))


@pytest.fixture
def pool(indexer_login_url: str) -> AsyncConnectionPool[Any]:
    return AsyncConnectionPool(indexer_login_url, min_size=1, max_size=2, open=False,
                              kwargs={"autocommit": True})


async def run(history: History, fetching: Fetching, pool: AsyncConnectionPool[Any],
              window: Range = WHOLE) -> WalletProgress:
    return await backfill_wallet(WALLET, window, rpc=history, pipeline=fetching, pool=pool)


async def stored(pool: AsyncConnectionPool[Any], window: Range = WHOLE) -> Stored | None:
    return (await load_progress(pool, [WALLET], window)).get(WALLET)


def rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute("SELECT count(*) FROM backfill_progress").fetchone()
    assert found is not None
    return int(found[0])


async def test_a_finished_range_run_again_backfills_what_arrived_since(
        pool: AsyncConnectionPool[Any], indexer_login_url: str) -> None:
    history, fetching = History(size=3), Fetching()
    first = history.land(5)
    async with pool:
        await run(history, fetching, pool)
        assert fetching.taken() == first
        assert await stored(pool) == Stored(None, True, first[-1])

        later = history.land(4)
        progress = await run(history, fetching, pool)
        assert fetching.taken() == later  # nothing older listed again
        assert history.listings[-1] == (first[-1], None)
        assert (progress.done, progress.submitted, progress.newest) == (True, 4, later[-1])
        assert await stored(pool) == Stored(None, True, later[-1])
        assert rows(indexer_login_url) == 1  # the range since then was forgotten once adopted

        await run(history, fetching, pool)  # nothing new: one empty listing
        assert fetching.taken() == []
        assert await stored(pool) == Stored(None, True, later[-1])


async def test_signatures_not_yet_finalized_are_listed_again_until_they_are(
        pool: AsyncConnectionPool[Any]) -> None:
    """The kept signature is the newest finalized one: a node asked for ``until`` a
    signature forked away would list the whole history."""
    history, fetching = History(size=10), Fetching()
    final = history.land(3)
    recent = history.land(2, status="confirmed")
    async with pool:
        await run(history, fetching, pool)
        assert fetching.taken() == final + recent
        assert await stored(pool) == Stored(None, True, final[-1])
        history.finalize()
        await run(history, fetching, pool)
        assert fetching.taken() == recent  # written again, which writes nothing twice
        assert await stored(pool) == Stored(None, True, recent[-1])


async def test_an_interrupted_run_resumes_below_and_takes_what_arrived_above(
        pool: AsyncConnectionPool[Any]) -> None:
    history, fetching = History(size=2), Fetching()
    first = history.land(8)  # four pages: tx8 tx7 | tx6 tx5 | tx4 tx3 | tx2 tx1
    fetching.failing = {first[2]}  # tx3: the third page fails
    async with pool:
        with pytest.raises(RpcUnavailable):
            await run(history, fetching, pool)
        fetching.taken()
        assert await stored(pool) == Stored(first[4], False, first[-1])  # down to tx5, top tx8

        fetching.failing = set()
        later = history.land(3)
        progress = await run(history, fetching, pool)
        assert fetching.taken() == first[:4] + later  # tx1-tx4 below, tx9-tx11 above
        assert progress.done
        assert await stored(pool) == Stored(None, True, later[-1])


async def test_the_range_since_then_is_itself_resumable(pool: AsyncConnectionPool[Any],
                                                        indexer_login_url: str) -> None:
    history, fetching = History(size=2), Fetching()
    first = history.land(2)
    async with pool:
        await run(history, fetching, pool)
        fetching.taken()
        since_first = Range(since=Bound(signature=first[-1]))
        middle = history.land(6)  # tx3-tx8, three pages
        fetching.failing = {middle[2]}  # tx5: the second page of what arrived fails
        with pytest.raises(RpcUnavailable):
            await run(history, fetching, pool)
        fetching.taken()
        assert await stored(pool) == Stored(None, True, first[-1])  # the range: not moved
        assert await stored(pool, since_first) == Stored(middle[4], False, middle[-1])

        fetching.failing = set()
        last = history.land(2)
        await run(history, fetching, pool)
        assert fetching.taken() == middle[:4] + last  # tx3-tx6 below tx7, tx9-tx10 above tx8
        assert await stored(pool) == Stored(None, True, last[-1])
        assert rows(indexer_login_url) == 1


async def test_a_range_with_an_until_bound_is_complete_once_done(pool: AsyncConnectionPool[Any]) -> None:
    history, fetching = History(size=5), Fetching()
    first = history.land(4)
    window = Range(until=Bound(signature=first[-1]))  # exclusive: tx1-tx3
    async with pool:
        await run(history, fetching, pool, window)
        assert fetching.taken() == first[:3]
        assert await stored(pool, window) == Stored(None, True, None)
        history.land(2)
        listed = len(history.listings)
        await run(history, fetching, pool, window)
        assert len(history.listings) == listed  # nothing listed: the range cannot grow
        assert fetching.taken() == []


async def test_a_restart_forgets_the_range_and_the_catch_up_it_left_unfinished(
        pool: AsyncConnectionPool[Any], indexer_login_url: str) -> None:
    """``--restart`` deletes the range's progress and that of the range since its top that
    a stopped run left (else ``status`` shows it unfinished for ever); the next run lists
    the whole history from the top."""
    history, fetching = History(size=2), Fetching()
    first = history.land(2)
    async with pool:
        await run(history, fetching, pool)
        later = history.land(4)
        fetching.failing = {later[0]}  # the catch-up's second page fails
        with pytest.raises(RpcUnavailable):
            await run(history, fetching, pool)
        assert rows(indexer_login_url) == 2
        fetching.failing, _ = set(), fetching.taken()
        await forget_progress(pool, [WALLET], WHOLE)
        assert rows(indexer_login_url) == 0
        await run(history, fetching, pool)
        assert fetching.taken() == first + later
        assert await stored(pool) == Stored(None, True, later[-1])
        assert rows(indexer_login_url) == 1


class Histories:
    """Several addresses' histories, each listed as a node lists it."""

    def __init__(self, **histories: History) -> None:
        self.of = histories

    def iter_signatures(self, address: str, *, until: str | None = None,
                        before: str | None = None) -> AsyncIterator[Sequence[Any]]:
        return self.of[address].iter_signatures(address, until=until, before=before)


class Revealing(Fetching):
    """A pipeline that, as the decoder does, reports the agent's token account a unit's
    transactions show (``reveals``: signature -> account); it never commits a unit holding
    a ``held`` signature (a fetch that hangs until the run is stopped)."""

    def __init__(self, found: Discovered, reveals: dict[str, str]) -> None:
        super().__init__()
        self.found, self.reveals = found, reveals
        self.held: set[str] = set()

    def submit(self, unit: WorkUnit) -> asyncio.Future[Any]:
        if self.held.intersection(unit.signatures):
            self.submitted.extend(unit.signatures)
            return asyncio.get_running_loop().create_future()
        for signature in unit.signatures:
            if signature in self.reveals:
                self.found(WALLET, self.reveals[signature])
        return super().submit(unit)


async def test_a_token_account_found_by_an_interrupted_run_is_resumed_by_the_next(
        pool: AsyncConnectionPool[Any], indexer_login_url: str) -> None:
    """A token account no listing gives (closed) is found in the wallet's history. When
    the run stops before that account's history is done, the next run -- whose wallet
    range is done, so the wallet's history is not read again -- still finishes it: the
    account's progress names its owner."""
    wallet, account = History(size=10), History(size=2, first_slot=101)
    close = wallet.land(3)[-1]  # the agent's close of the account: its balances show it
    paid = account.land(6)  # tx106 tx105 | tx104 tx103 | tx102 tx101: payments into it
    first = Discovered()
    fetching = Revealing(first, {close: "T"})
    fetching.held = {paid[3]}  # the account's second page hangs
    histories = Histories(W=wallet, T=account)
    reports: list[int] = []
    stuck = asyncio.Event()

    def on_page(progress: WalletProgress) -> None:
        # All there is before the hang: the wallet's page, the wallet done, the account's
        # first page (each reported once its progress is stored).
        reports.append(progress.submitted)
        if len(reports) == 3:
            stuck.set()

    async with pool:
        run = asyncio.create_task(backfill_agent(WALLET, [], WHOLE, rpc=histories, pipeline=fetching,
                                                 pool=pool, on_page=on_page, discovered=first))
        async with asyncio.timeout(10):
            await stuck.wait()
        run.cancel()  # Ctrl-C
        with pytest.raises(asyncio.CancelledError):
            await run
        assert await load_progress(pool, [WALLET, "T"], WHOLE) == {
            WALLET: Stored(None, True, close), "T": Stored(paid[4], False, paid[-1], owner=WALLET)}
        assert first.accounts == {"T"}
        fetching.taken()

        again = Discovered()
        fetching = Revealing(again, {close: "T"})
        progress = await backfill_agent(WALLET, [], WHOLE, rpc=histories, pipeline=fetching,
                                        pool=pool, discovered=again)
        assert fetching.taken() == paid[:4]  # the account's two pages below the one committed
        assert (progress.done, again.accounts) == (True, {"T"})
        assert await load_progress(pool, [], WHOLE, owners=[WALLET]) == {
            "T": Stored(None, True, paid[-1], owner=WALLET)}

        await forget_progress(pool, [WALLET], WHOLE, owners=[WALLET])  # --restart
        assert rows(indexer_login_url) == 0


async def test_a_token_accounts_progress_stored_without_its_owner_gets_it(
        pool: AsyncConnectionPool[Any], indexer_login_url: str) -> None:
    """Progress stored before owners were kept (sql/0018) names none: the next run that
    lists the account records its owner, done range included (it is never saved again), so
    a later run finds the account once it is closed and no listing gives it."""
    wallet, account = History(size=10), History(size=10, first_slot=101)
    wallet.land(2)
    account.land(3)
    with psycopg.connect(indexer_login_url, autocommit=True) as conn:
        conn.execute("INSERT INTO backfill_progress (wallet_address, range_key, before_signature, done)"
                     " VALUES ('T', %s, NULL, true)", (WHOLE.key(),))
    async with pool:
        assert await load_progress(pool, [], WHOLE, owners=[WALLET]) == {}
        await backfill_agent(WALLET, ["T"], WHOLE, rpc=Histories(W=wallet, T=account),
                             pipeline=Fetching(), pool=pool)
        assert await load_progress(pool, [], WHOLE, owners=[WALLET]) == {
            "T": Stored(None, True, None, owner=WALLET)}


class Cutting(Fetching):
    """A pipeline that commits at once, and ends every other session of the database (a
    server restart, a proxy cutting connections) as the unit holding ``cut_at`` arrives."""

    def __init__(self, admin_url: str, cut_at: str) -> None:
        super().__init__()
        self.admin_url, self.cut_at = admin_url, cut_at
        self.cut = 0

    def submit(self, unit: WorkUnit) -> asyncio.Future[Any]:
        if self.cut_at in unit.signatures:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                self.cut = len(conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall())
        return super().submit(unit)


async def test_connections_lost_between_pages_are_ridden_out(pool: AsyncConnectionPool[Any],
                                                              db_url: str) -> None:
    """The progress of a page is saved through a lost connection as the writer writes
    through one: the run waits for the database, retries, and goes on -- it neither fails
    the wallet nor skips the page's progress."""
    history = History(size=2)
    landed = history.land(6)  # pages: tx6 tx5 | tx4 tx3 | tx2 tx1
    fetching = Cutting(db_url, cut_at=landed[3])  # the second page's first unit
    async with pool:
        await stored(pool)  # the pool's session is open, idle: the cut ends it
        with capture_logs() as logs:
            progress = await run(history, fetching, pool)
        assert fetching.cut >= 1
        assert (progress.done, progress.submitted) == (True, 6)
        assert fetching.taken() == landed  # each once
        assert await stored(pool) == Stored(None, True, landed[-1])
    assert ("db_retry", "backfill_progress") in [(e["event"], e.get("what")) for e in logs]


GONE = uuid.UUID(int=1)  # a server life that ended: a failover's old primary


class CommittedInLives(Fetching):
    """Units committed in the database's server life (``life``), but those holding
    ``earlier`` -- until the run forgets what it committed -- in the life that ended."""

    def __init__(self, life: uuid.UUID, earlier: set[str]) -> None:
        super().__init__()
        self.life, self.earlier = life, earlier

    def submit(self, unit: WorkUnit) -> asyncio.Future[Any]:
        self.submitted.extend(unit.signatures)
        gone = self.forgotten == 0 and bool(self.earlier.intersection(unit.signatures))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(UnitResult(servers=frozenset({GONE if gone else self.life})))
        return future


async def _life(pool: AsyncConnectionPool[Any]) -> uuid.UUID:
    async with pool.connection() as conn:
        return await server_life(conn)


async def test_a_page_committed_in_a_server_life_that_ended_is_written_again(
        pool: AsyncConnectionPool[Any]) -> None:
    """The second page's unit was committed before a failover (the server life that ended),
    the first page's progress saved after it: the second page's progress is not saved in
    the new life, which may lack its rows; the wallet starts over from the first page's."""
    history = History(size=2)
    landed = history.land(6)  # pages: tx6 tx5 | tx4 tx3 | tx2 tx1
    async with pool:
        fetching = CommittedInLives(await _life(pool), earlier={landed[3]})
        with capture_logs() as logs:
            progress = await run(history, fetching, pool)
        assert progress.done
        assert fetching.forgotten == 1
        # Again: what arrived since tx6 (nothing), then below tx5.
        assert history.listings == [(None, None), (landed[-1], None), (None, landed[4])]
        assert Counter(fetching.submitted) == Counter(landed + landed[:4])  # tx4-tx1 twice
        assert await stored(pool) == Stored(None, True, landed[-1])
    assert [e["address"] for e in logs if e["event"] == "backfill_server_changed"] == [WALLET]


async def test_a_save_the_database_makes_in_another_life_is_refused(
        pool: AsyncConnectionPool[Any]) -> None:
    """Progress read and pages committed in a life that ended: the database, in its new
    life, refuses the first save, and the wallet reads its progress again and starts over."""
    history = History(size=2)
    landed = history.land(4)
    async with pool:
        fetching = CommittedInLives(await _life(pool), earlier=set(landed))
        progress = await backfill_wallet(WALLET, WHOLE, rpc=history, pipeline=fetching, pool=pool,
                                         stored=StoredProgress({}, server=GONE))
        assert (progress.done, fetching.forgotten) == (True, 1)
        assert history.listings == [(None, None), (None, None)]  # nothing was saved: from the top
        assert Counter(fetching.submitted) == Counter(landed * 2)
        assert await stored(pool) == Stored(None, True, landed[-1])
