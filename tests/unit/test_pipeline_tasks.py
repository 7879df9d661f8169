"""The pipeline's task owners: a payment memo applies only to its task's agent, and the
owner of a task comes from a lookup the pipeline makes once per task (a small fake
source and writer here; the end-to-end tests run it against the localnet and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import pytest
from prometheus_client import CollectorRegistry

from indexer import pipeline as pipeline_module
from indexer.metrics import Metrics
from indexer.pipeline import Pipeline, WorkUnit
from indexer.sink import Batch, WriteResult
from tests.unit.test_decode_rules import AGENT, AGENT_B, USER, TxBuilder

TASK_A = UUID("00000000-0000-4000-8000-00000000000a")  # a task of AGENT
TASK_B = UUID("00000000-0000-4000-8000-00000000000b")  # a task of AGENT_B
OWNERS = {TASK_A: AGENT, TASK_B: AGENT_B}


def payment(task: UUID) -> dict[str, Any]:
    builder = TxBuilder(fee_payer=USER).sol(USER, AGENT, 1_000).memo(f"amoca:1:payment;task={task}")
    return builder.render("json")


class Harness:
    def __init__(self, results: dict[str, dict[str, Any]]) -> None:
        self.results = results
        self.lookups: list[list[UUID]] = []
        self.rows: list[Any] = []

    async def get_transactions(self, signatures: Sequence[str]) -> list[Any]:
        return [self.results[s] for s in signatures]

    async def lookup(self, task_ids: Sequence[UUID]) -> dict[UUID, str]:
        self.lookups.append(list(task_ids))
        return {t: OWNERS[t] for t in task_ids if t in OWNERS}

    async def write(self, batch: Batch) -> WriteResult:
        self.rows.extend(batch.rows)
        return WriteResult()


@pytest.fixture
async def harness() -> AsyncIterator[tuple[Harness, Pipeline]]:
    results = {"own": payment(TASK_A), "own-again": payment(TASK_A), "other": payment(TASK_B),
               "unknown": payment(UUID(int=7))}
    fake = Harness(results)
    pipeline = Pipeline(source=fake, writer=fake.write, watched=lambda: {AGENT},
                        metrics=Metrics(CollectorRegistry()), task_lookup=fake.lookup)
    runner = asyncio.create_task(pipeline.run())
    yield fake, pipeline
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)


async def test_each_task_is_looked_up_once(harness: tuple[Harness, Pipeline]) -> None:
    fake, pipeline = harness
    for signature in ("own", "other", "unknown", "own-again", "other", "unknown"):
        pipeline.committed = pipeline_module.CommittedSignatures()  # fetch again, as if new
        await pipeline.process(WorkUnit((signature,), "backfill"))
    assert fake.lookups == [[TASK_A], [TASK_B], [UUID(int=7)]]
    kinds = [(row.transaction_type, row.task_id, row.memo_rejection) for row in fake.rows]
    assert kinds == [("payment", TASK_A, None), ("funding", None, "task_agent_mismatch"),
                     ("funding", None, "unknown_task"), ("payment", TASK_A, None),
                     ("funding", None, "task_agent_mismatch"), ("funding", None, "unknown_task")]


async def test_owners_remembered_up_front_need_no_lookup(harness: tuple[Harness, Pipeline]) -> None:
    fake, pipeline = harness
    pipeline.remember_task_owners(OWNERS)
    await pipeline.process(WorkUnit(("own", "other"), "backfill"))
    assert fake.lookups == []
    assert [row.transaction_type for row in fake.rows] == ["payment", "funding"]


async def test_a_full_cache_is_emptied_and_stays_right(harness: tuple[Harness, Pipeline],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake, pipeline = harness
    monkeypatch.setattr(pipeline_module, "TASK_OWNERS_KEPT", 1)
    await pipeline.process(WorkUnit(("own", "other"), "backfill"))  # two tasks: B, then A empties
    pipeline.committed = pipeline_module.CommittedSignatures()
    await pipeline.process(WorkUnit(("other", "own"), "backfill"))  # B forgotten, A kept
    assert fake.lookups == [[TASK_B, TASK_A], [TASK_B]]
    assert [row.transaction_type for row in fake.rows] == ["payment", "funding", "funding", "payment"]


async def test_an_unknown_task_is_asked_again_once_its_answer_expires() -> None:
    """The marketplace may insert a task just after the first payment naming it: "no such
    task" is remembered for UNKNOWN_TASK_SECONDS only, so later payments find it."""
    late = UUID(int=8)
    fake = Harness({"early": payment(late), "soon": payment(late), "later": payment(late)})
    now = [1000.0]
    pipeline = Pipeline(source=fake, writer=fake.write, watched=lambda: {AGENT},
                        metrics=Metrics(CollectorRegistry()), task_lookup=fake.lookup,
                        clock=lambda: now[0])
    runner = asyncio.create_task(pipeline.run())
    try:
        await pipeline.process(WorkUnit(("early",), "live"))  # the task is not there yet
        OWNERS[late] = AGENT  # the marketplace inserts it
        now[0] += pipeline_module.UNKNOWN_TASK_SECONDS / 2
        await pipeline.process(WorkUnit(("soon",), "live"))  # still within the answer's life
        now[0] += pipeline_module.UNKNOWN_TASK_SECONDS
        await pipeline.process(WorkUnit(("later",), "live"))
    finally:
        OWNERS.pop(late, None)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert fake.lookups == [[late], [late]]
    assert [(row.transaction_type, row.task_id) for row in fake.rows] == [
        ("funding", None), ("funding", None), ("payment", late)]
