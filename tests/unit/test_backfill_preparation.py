"""The backfill command prepares agents a batch at a time (token accounts listed, stored
progress read): an agent's run waits for its own batch only, the next batch is prepared
while one runs, each batch once, and a batch that fails fails only its own agents."""

from __future__ import annotations

import asyncio

import pytest

from indexer.commands.backfill import _Preparation, _Prepared
from indexer.errors import RpcUnavailable


class Batches:
    """A ``prepare`` that records what it was asked for and answers when the test says."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []
        self.release: dict[str, asyncio.Event] = {}  # first wallet of a batch -> its answer's go
        self.failing: set[str] = set()

    async def prepare(self, batch: list[str], listed: dict[str, set[str]] | None) -> _Prepared:
        self.asked.append(batch)
        await self.release.setdefault(batch[0], asyncio.Event()).wait()
        if batch[0] in self.failing:
            raise RpcUnavailable("getTokenAccountsByOwner: HTTP 503")
        accounts = listed if listed is not None else {wallet: {f"{wallet}-usdc"} for wallet in batch}
        return _Prepared(accounts, None)

    def answer(self, first: str) -> None:
        self.release.setdefault(first, asyncio.Event()).set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_an_agent_waits_for_its_own_batch_and_the_next_is_prepared_meanwhile() -> None:
    batches = Batches()
    preparation = _Preparation(["a", "b", "c", "d", "e"], 2, batches.prepare)
    preparation.start(0, {"a": {"a-listed"}, "b": set()})  # the first batch, listed beside the probe
    first = asyncio.create_task(preparation.of("a"))
    await settle()
    assert batches.asked == [["a", "b"], ["c", "d"]]  # its own, and the next one meanwhile
    batches.answer("a")
    assert (await asyncio.wait_for(first, 5)).token_accounts == {"a": {"a-listed"}, "b": set()}
    assert (await asyncio.wait_for(preparation.of("b"), 5)).token_accounts["b"] == set()
    third = asyncio.create_task(preparation.of("c"))
    await settle()
    assert batches.asked == [["a", "b"], ["c", "d"], ["e"]]  # each batch asked for once
    assert not third.done()  # "c" waits for its own batch, not for "e"'s
    batches.answer("c")
    assert (await asyncio.wait_for(third, 5)).token_accounts == {"c": {"c-usdc"}, "d": {"d-usdc"}}
    await preparation.close()  # the last batch, never answered, is cancelled
    assert preparation.token_accounts() == 3  # what the batches that answered listed


async def test_a_batch_that_fails_fails_only_its_own_agents() -> None:
    batches = Batches()
    batches.failing = {"c"}
    preparation = _Preparation(["a", "b", "c"], 2, batches.prepare)
    for first in ("a", "c"):
        batches.answer(first)
    with pytest.raises(RpcUnavailable):
        await asyncio.wait_for(preparation.of("c"), 5)
    assert (await asyncio.wait_for(preparation.of("a"), 5)).token_accounts["a"] == {"a-usdc"}
    assert preparation.token_accounts() == 2
    await preparation.close()
