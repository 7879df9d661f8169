"""Backfill keeps several pages in flight, yet its progress moves in page order: a page
counts as done only once it and every newer page are committed, whatever order the
pipeline commits them in. A failed page stops the wallet with its progress before it.
An agent's addresses run at once; a transaction two of them list is submitted once."""

from __future__ import annotations

import asyncio
import bisect
import gc
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from indexer.backfill import (
    ANCHOR_BLOCKS,
    Bound,
    Discovered,
    InFlight,
    Range,
    Stored,
    StoredProgress,
    WalletProgress,
    backfill_agent,
    backfill_wallet,
    first_block_after,
    range_share,
    until_anchor,
)
from indexer.errors import RpcError, RpcUnavailable
from indexer.pipeline import UnitResult, WorkUnit


@dataclass(frozen=True)
class Info:
    signature: str
    slot: int
    block_time: int | None = None
    confirmation_status: str | None = "finalized"


class Pages:
    """A node listing ``count`` pages of ``size`` signatures, newest first."""

    def __init__(self, count: int, size: int) -> None:
        self.pages = [[Info(f"s{p}-{i}", 1000 - p * size - i) for i in range(size)] for p in range(count)]
        self.listed = 0

    async def iter_signatures(self, address: str, *, until: str | None = None,
                              before: str | None = None) -> AsyncIterator[Sequence[Any]]:
        for page in self.pages:
            self.listed += 1
            yield page


class Units:
    """A pipeline that commits only when the test says so."""

    fetch_batch = 2

    def __init__(self) -> None:
        self.units: dict[str, tuple[WorkUnit, asyncio.Future[Any]]] = {}
        self.arrived = asyncio.Event()

    def submit(self, unit: WorkUnit) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.units[unit.signatures[0]] = (unit, future)
        self.arrived.set()
        return future

    async def until_submitted(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.units) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def commit_page(self, page: int) -> None:
        for first, (_, future) in self.units.items():
            if first.startswith(f"s{page}-") and not future.done():
                future.set_result(UnitResult())

    def fail_page(self, page: int) -> None:
        for first, (_, future) in self.units.items():
            if first.startswith(f"s{page}-") and not future.done():
                future.set_exception(RpcUnavailable("getTransaction: HTTP 503"))


class Seen:
    """The progress reports (``scanned`` totals), awaitable by count."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.changed = asyncio.Event()

    def __call__(self, progress: WalletProgress) -> None:
        self.values.append(progress.scanned)
        self.changed.set()

    async def until(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.values) < count:
                self.changed.clear()
                await self.changed.wait()


async def test_pages_in_flight_commit_out_of_order_progress_moves_in_order() -> None:
    pages, units, seen = Pages(count=3, size=4), Units(), Seen()
    run = asyncio.create_task(backfill_wallet("W", Range(), rpc=pages, pipeline=units, pool=None,
                                              on_page=seen, pages_ahead=2))
    await units.until_submitted(4)  # two pages in flight, each in units of the fetch batch
    assert sorted(u.signatures for u, _ in units.units.values()) == [
        ("s0-0", "s0-1"), ("s0-2", "s0-3"), ("s1-0", "s1-1"), ("s1-2", "s1-3")]
    assert pages.listed == 3  # the third page is listed, and waits for the first to settle
    units.commit_page(1)
    for _ in range(5):
        await asyncio.sleep(0)  # let the run react, if it (wrongly) would
    assert seen.values == []  # the newer page is committed, the older is not: no progress
    units.commit_page(0)
    await seen.until(1)
    await units.until_submitted(6)
    await seen.until(2)
    assert seen.values == [4, 8]  # page 0, then page 1
    units.commit_page(2)
    progress = await asyncio.wait_for(run, 5)
    assert (progress.scanned, progress.submitted, progress.done) == (12, 12, True)
    assert seen.values == [4, 8, 12, 12]


async def test_a_failed_page_stops_the_wallet_before_it() -> None:
    pages, units, seen = Pages(count=3, size=2), Units(), Seen()
    run = asyncio.create_task(backfill_wallet("W", Range(), rpc=pages, pipeline=units, pool=None,
                                              on_page=seen, pages_ahead=2))
    await units.until_submitted(2)
    units.commit_page(0)
    units.fail_page(1)
    with pytest.raises(RpcUnavailable):
        await asyncio.wait_for(run, 5)
    assert seen.values == [2]  # page 0 done; page 1 (and what followed) is redone by the next run


class Histories:
    """Two addresses of one agent whose histories share transactions."""

    def __init__(self, pages: dict[str, list[list[str]]]) -> None:
        self.pages = pages

    async def iter_signatures(self, address: str, *, until: str | None = None,
                              before: str | None = None) -> AsyncIterator[Sequence[Any]]:
        for page in self.pages[address]:
            yield [Info(s, 1) for s in page]


async def test_an_agents_addresses_run_at_once_and_share_transactions() -> None:
    histories = Histories({"W": [["s0-a", "s0-b", "s0-c"]], "T": [["s0-b", "x-1"]]})
    units, seen = Units(), Seen()
    run = asyncio.create_task(backfill_agent("W", ["T"], Range(), rpc=histories, pipeline=units,
                                             pool=None, on_page=seen))
    await units.until_submitted(3)  # W's two units and T's own one; s0-b is not submitted twice
    assert sorted(u.signatures for u, _ in units.units.values()) == [
        ("s0-a", "s0-b"), ("s0-c",), ("x-1",)]
    units.units["x-1"][1].set_result(UnitResult())
    for _ in range(5):
        await asyncio.sleep(0)  # let the run react, if it (wrongly) would
    assert seen.values == []  # T's page also waits for s0-b, in W's unit
    units.commit_page(0)
    total = await asyncio.wait_for(run, 5)
    assert (total.scanned, total.submitted, total.done) == (5, 5, True)


async def test_an_account_found_while_the_agents_run_is_failing_is_not_started() -> None:
    """An address that fails stops its agent's run: the others are cancelled. An account
    of the agent found meanwhile (another unit's transaction shows it) is not started --
    the task group refuses it -- and its coroutine is closed, not left never awaited."""
    histories = Histories({"W": [["w-1"]], "T": [["t-1"]], "X": [["x-1"]]})
    units, discovered = Units(), Discovered()
    run = asyncio.create_task(backfill_agent("W", ["T"], Range(), rpc=histories, pipeline=units,
                                             pool=None, discovered=discovered))
    await units.until_submitted(2)
    # W's unit is cancelled with W's run, after T's failure began stopping the agent's.
    units.units["w-1"][1].add_done_callback(lambda _: discovered("W", "X"))
    units.units["t-1"][1].set_exception(RpcUnavailable("getTransaction: HTTP 503"))
    with pytest.raises(RpcUnavailable):
        await asyncio.wait_for(run, 5)
    assert units.units["w-1"][1].cancelled()
    assert discovered.accounts == set()
    assert "x-1" not in units.units
    gc.collect()  # a coroutine never awaited would warn now, failing this test


async def test_agents_backfilled_together_fetch_a_transaction_between_them_once() -> None:
    """A payment from one agent to another is in both agents' histories: agents run side
    by side with one table of units in flight, so it is fetched (and written) once."""
    histories = Histories({"A": [["a-1", "ab"]], "B": [["ab", "b-1"]]})
    units, shared = Units(), InFlight()
    runs = [asyncio.create_task(backfill_agent(agent, [], Range(), rpc=histories, pipeline=units,
                                               pool=None, shared=shared)) for agent in ("A", "B")]
    await units.until_submitted(2)
    assert sorted(u.signatures for u, _ in units.units.values()) == [("a-1", "ab"), ("b-1",)]
    units.units["b-1"][1].set_result(UnitResult())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not runs[1].done()  # B's page waits for "ab", in A's unit
    units.units["a-1"][1].set_result(UnitResult())  # A's unit: a-1 and ab
    totals = await asyncio.wait_for(asyncio.gather(*runs), 5)
    assert [(t.scanned, t.submitted) for t in totals] == [(2, 2), (2, 2)]
    assert shared == {}  # committed units leave the table


async def test_the_share_of_the_range_covered_grows_page_by_page() -> None:
    """With an oldest slot, each settled page tells how much of the range is covered: the
    progress bar's fraction and ETA."""
    pages, units = Pages(count=3, size=4), Units()  # slots 1000 (newest) .. 989
    shares: list[float | None] = []
    run = asyncio.create_task(backfill_wallet("W", Range(since=Bound(slot=989)), rpc=pages,
                                              pipeline=units, pool=None,
                                              on_page=lambda p: shares.append(p.share)))
    for page in range(3):
        await units.until_submitted(2 * (page + 1))
        units.commit_page(page)
    await asyncio.wait_for(run, 5)
    assert shares == pytest.approx([3 / 11, 7 / 11, 1.0, 1.0])


def test_range_share_by_slot_by_time_or_unknown() -> None:
    top, reached = Info("a", 1000, 1_700_000_100), Info("b", 900, 1_700_000_060)
    assert range_share(Range(since=Bound(slot=800)), top, reached) == pytest.approx(0.5)
    since = Bound(time=datetime.fromtimestamp(1_700_000_000, UTC))
    assert range_share(Range(since=since), top, reached) == pytest.approx(0.4)
    assert range_share(Range(since=Bound(slot=950)), top, reached) == 1.0  # past the bound
    assert range_share(Range(since=Bound(slot=1000)), top, top) == 1.0  # an empty span
    assert range_share(Range(), top, reached) is None  # history back to its first transaction
    assert range_share(Range(since=Bound(signature="x" * 88)), top, reached) is None
    assert range_share(Range(since=since), Info("a", 1000), reached) is None  # no block time


class SlotHistories:
    """Addresses with one page each, of (signature, slot) entries."""

    def __init__(self, pages: dict[str, list[tuple[str, int]]]) -> None:
        self.pages = pages

    async def iter_signatures(self, address: str, *, until: str | None = None,
                              before: str | None = None) -> AsyncIterator[Sequence[Any]]:
        yield [Info(signature, slot) for signature, slot in self.pages[address]]


async def test_an_agent_is_as_far_as_its_slowest_address() -> None:
    histories = SlotHistories({"W": [("w-1", 100), ("w-2", 90)], "T": [("t-1", 100), ("t-2", 50)]})
    units, reports = Units(), []
    run = asyncio.create_task(backfill_agent(
        "W", ["T"], Range(since=Bound(slot=0)), rpc=histories, pipeline=units, pool=None,
        on_page=lambda p: reports.append(p.share)))
    await units.until_submitted(2)
    units.units["t-1"][1].set_result(UnitResult())  # T: covered to slot 50 of 100..0, then done
    for _ in range(10):
        await asyncio.sleep(0)
    assert reports == [None, None]  # W has not reported: the agent's share is unknown
    units.units["w-1"][1].set_result(UnitResult())  # W: covered to slot 90, then done
    total = await asyncio.wait_for(run, 5)
    assert reports == [None, None, pytest.approx(0.1), 1.0]  # W's 0.1, not T's 1.0
    assert total.share == 1.0


async def test_an_address_done_in_an_earlier_run_counts_as_done(db_url: str) -> None:
    """Resumed: T finished before (stored progress says done), so it lists nothing and
    reports itself done at once; the agent's share is then W's alone."""
    from psycopg_pool import AsyncConnectionPool

    histories = SlotHistories({"W": [("w-1", 100), ("w-2", 90)]})  # T is never listed
    units, reports = Units(), []
    async with AsyncConnectionPool(db_url, min_size=1, max_size=2, open=False,
                                   kwargs={"autocommit": True}) as pool:
        run = asyncio.create_task(backfill_agent(
            "W", ["T"], Range(since=Bound(slot=0)), rpc=histories, pipeline=units, pool=pool,
            on_page=lambda p: reports.append(p.share),
            stored=StoredProgress({"T": Stored(None, True, None)})))
        await units.until_submitted(1)
        units.units["w-1"][1].set_result(UnitResult())  # W: covered to slot 90 of 100..0, then done
        total = await asyncio.wait_for(run, 5)
    assert reports == [None, pytest.approx(0.1), 1.0]  # T done first; W not reported yet
    assert total.share == 1.0
    assert total.done


class Committing:
    """A pipeline that commits each unit as it arrives."""

    fetch_batch = 100

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, unit: WorkUnit) -> asyncio.Future[Any]:
        self.submitted.extend(unit.signatures)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        future.set_result(UnitResult())
        return future


class Anchored:
    """A node that lists ``history`` (newest first, one slot each) before any of its
    signatures, or before ``ANCHOR`` -- a transaction of another address in slot 55 --
    as ``answer`` says: from there, nothing, or an error."""

    ANCHOR = "anchor"

    def __init__(self, answer: str = "from-there") -> None:
        self.history = [Info(f"s{slot}", slot) for slot in range(100, 0, -10)]  # slots 100 .. 10
        self.answer = answer
        self.asked: list[str | None] = []

    async def iter_signatures(self, address: str, *, until: str | None = None,
                              before: str | None = None) -> AsyncIterator[Sequence[Any]]:
        self.asked.append(before)
        if before == self.ANCHOR and self.answer == "refused":
            raise RpcError(-32602, "Invalid param: before", "getSignaturesForAddress")
        if before == self.ANCHOR:
            page = [] if self.answer == "nothing" else [i for i in self.history if i.slot < 55]
        else:
            page = self.history
        if page:
            yield page


@pytest.mark.parametrize(("answer", "asked", "scanned"), [
    ("from-there", [Anchored.ANCHOR], 5),  # slots 50 .. 10 only
    ("nothing", [Anchored.ANCHOR, None], 10),  # the node did not know it: from the top
    ("refused", [Anchored.ANCHOR, None], 10),
])
async def test_a_slot_bound_lists_from_its_anchor_or_else_from_the_top(answer: str, asked: list[str | None],
                                                                        scanned: int) -> None:
    rpc, units = Anchored(answer), Committing()
    progress = await backfill_wallet("W", Range(until=Bound(slot=50)), rpc=rpc, pipeline=units, pool=None,
                                     anchor=Anchored.ANCHOR)
    assert rpc.asked == asked
    assert (progress.scanned, progress.done) == (scanned, True)
    assert units.submitted == ["s50", "s40", "s30", "s20", "s10"]  # the range, whichever way


class Blocks:
    """A node's blocks from slot 51 on: ``empty`` of them without a transaction first."""

    def __init__(self, empty: int, *, failing: bool = False) -> None:
        self.empty, self.failing = empty, failing
        self.calls: list[tuple[str, int]] = []

    async def get_blocks_with_limit(self, start_slot: int, limit: int) -> list[int]:
        self.calls.append(("getBlocksWithLimit", start_slot))
        if self.failing:
            raise RpcError(-32009, "Slot 51 was skipped, or missing in long-term storage",
                           "getBlocksWithLimit")
        return list(range(start_slot, start_slot + limit))

    async def get_block_signatures(self, slot: int) -> list[str]:
        self.calls.append(("getBlock", slot))
        return [] if slot < 51 + self.empty else [f"first-of-{slot}", f"second-of-{slot}"]


async def test_the_anchor_is_the_first_signature_of_the_first_block_after_the_bound() -> None:
    blocks = Blocks(empty=2)
    assert await until_anchor(blocks, Range(until=Bound(slot=50))) == "first-of-53"
    assert blocks.calls == [("getBlocksWithLimit", 51), ("getBlock", 51), ("getBlock", 52), ("getBlock", 53)]
    for window in (Range(), Range(until=Bound(signature="5" * 88))):
        quiet = Blocks(empty=0)
        assert await until_anchor(quiet, window) is None
        assert quiet.calls == []  # a slot or a time bound has one (a signature is its own)
    assert await until_anchor(Blocks(empty=ANCHOR_BLOCKS), Range(until=Bound(slot=50))) is None
    assert await until_anchor(Blocks(empty=0, failing=True), Range(until=Bound(slot=50))) is None


class Chain:
    """A node's confirmed blocks: slot -> block time (slots absent were skipped), each block
    holding one transaction, ``tx<slot>``; getBlockTime answers ``timeless`` slots with null."""

    def __init__(self, times: dict[int, int], *, timeless: frozenset[int] = frozenset()) -> None:
        self.times, self.timeless = times, timeless
        self.slots = sorted(times)
        self.calls = 0

    async def get_slot(self, commitment: str = "confirmed") -> int:
        self.calls += 1
        return max(self.times)

    async def get_blocks_with_limit(self, start_slot: int, limit: int) -> list[int]:
        self.calls += 1
        first = bisect.bisect_left(self.slots, start_slot)
        return self.slots[first:first + limit]

    async def get_block_time(self, slot: int) -> int | None:
        self.calls += 1
        return None if slot in self.timeless else self.times[slot]

    async def get_block_signatures(self, slot: int) -> list[str]:
        self.calls += 1
        return [f"tx{slot}"]


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def _chain(seed: int, slots: int = 20_000) -> dict[int, int]:
    """Block times that never go back, a second holding 0 to 5 blocks, a slot skipped now
    and then, as a node's are."""
    rng = random.Random(seed)
    times, now = {}, 1_700_000_000
    for slot in range(slots):
        if rng.random() < 0.05:
            continue  # skipped
        now += rng.choice((0, 0, 0, 1, 1, 2))
        times[slot] = now
    return times


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_the_first_block_after_a_time_is_found_by_bisection(seed: int) -> None:
    times = _chain(seed)
    rng = random.Random(seed)
    for cutoff in [min(times.values()) - 5, *rng.sample(range(min(times.values()), max(times.values())), 40)]:
        chain = Chain(times)
        found = await first_block_after(chain, _moment(cutoff + 0.5 * rng.random()))
        assert found == min(slot for slot, time in times.items() if time > cutoff)
        assert chain.calls <= 2 + 4 * 17  # widening and bisecting over 20,000 slots
    at_the_top = Chain(times)
    assert await first_block_after(at_the_top, _moment(max(times.values()))) is None  # nothing after yet
    assert at_the_top.calls == 3


async def test_without_block_times_there_is_no_time_anchor() -> None:
    times = _chain(4, 2_000)
    middle = sorted(times)[1_000]
    newest_timeless = Chain(times, timeless=frozenset({max(times)}))
    assert await first_block_after(newest_timeless, _moment(times[middle])) is None
    assert await first_block_after(Chain(times), None) is None
    anchored = await until_anchor(Chain(times), Range(until=Bound(time=_moment(times[middle]))))
    assert anchored == f"tx{min(slot for slot, time in times.items() if time > times[middle])}"
