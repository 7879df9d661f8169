"""The server lives a unit's work was committed in (a small fake source and writer here;
the end-to-end failover test restarts a real PostgreSQL under a backfill)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import pytest
from prometheus_client import CollectorRegistry

from indexer.errors import ServerChanged
from indexer.metrics import Metrics
from indexer.pipeline import Pipeline, WorkUnit
from indexer.sink import Batch, WriteResult
from tests.unit.test_decode_rules import AGENT, USER, TxBuilder

OLD = UUID(int=1)  # the primary's life
NEW = UUID(int=2)  # the promoted standby's


class Server:
    """A node answering every signature with a transfer to AGENT, and a writer committing
    in ``life``."""

    def __init__(self) -> None:
        self.life = OLD
        self.refusing = False  # as a writer bound to a server life that has ended
        self.fetched: list[str] = []

    async def get_transactions(self, signatures: Sequence[str]) -> list[Any]:
        self.fetched.extend(signatures)
        return [TxBuilder(fee_payer=USER).sol(USER, AGENT, 1_000).render("json") for _ in signatures]

    async def write(self, batch: Batch) -> WriteResult:
        if self.refusing:
            raise ServerChanged("the database is in another server life")
        return WriteResult(server=self.life)


@pytest.fixture
async def served() -> AsyncIterator[tuple[Server, Pipeline]]:
    server = Server()
    pipeline = Pipeline(source=server, writer=server.write, watched=lambda: {AGENT},
                        metrics=Metrics(CollectorRegistry()))
    runner = asyncio.create_task(pipeline.run())
    yield server, pipeline
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_a_unit_rests_on_the_life_its_remembered_signatures_were_committed_in(
        served: tuple[Server, Pipeline]) -> None:
    server, pipeline = served
    first = await pipeline.process(WorkUnit(("a",), "backfill"))
    assert first.servers == {OLD}
    server.life = NEW  # a failover: the writer's batches now commit in the new life
    both = await pipeline.process(WorkUnit(("a", "b"), "backfill"))
    assert server.fetched == ["a", "b"]  # "a" was remembered as committed: not fetched again
    assert both.servers == {OLD, NEW}  # ... so the unit rests on the old life's commit too
    assert both.skipped_signatures == 1


async def test_a_batch_committed_in_a_new_life_forgets_what_the_old_one_committed(
        served: tuple[Server, Pipeline]) -> None:
    server, pipeline = served
    await pipeline.process(WorkUnit(("a", "b"), "backfill"))
    server.life = NEW
    await pipeline.process(WorkUnit(("c",), "backfill"))
    again = await pipeline.process(WorkUnit(("a",), "backfill"))
    assert server.fetched == ["a", "b", "c", "a"]  # fetched and written again
    assert again.servers == {NEW}


async def test_forgetting_what_was_committed_fetches_it_again(served: tuple[Server, Pipeline]) -> None:
    server, pipeline = served
    await pipeline.process(WorkUnit(("a",), "backfill"))
    await pipeline.process(WorkUnit(("a",), "backfill"))
    pipeline.forget_committed()
    await pipeline.process(WorkUnit(("a",), "backfill"))
    assert server.fetched == ["a", "a"]


async def test_a_write_refused_in_another_life_fails_its_units_as_a_server_change(
        served: tuple[Server, Pipeline]) -> None:
    server, pipeline = served
    server.refusing = True
    with pytest.raises(ServerChanged):
        await pipeline.process(WorkUnit(("a",), "live"))
    errors = {sample.labels["kind"]: sample.value for metric in pipeline.metrics.registry.collect()
              for sample in metric.samples if sample.name.endswith("db_errors_total")}
    assert errors == {"server_changed": 1.0}
