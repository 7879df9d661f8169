"""The daemon's shutdown ends its tasks even when one swallows its cancellation.

On Python 3.11 ``asyncio.wait_for`` swallows the caller's cancellation when the awaited
work ends in the same tick (python/cpython#86296). The daemon's shard-lock probe used it,
and a benchmark's daemon once hung at shutdown with that task "cancelling" forever. Our
code no longer calls it (ruff bans it), but a library on the way may still.
"""

from __future__ import annotations

import asyncio

from indexer.daemon import _cancel_until_done


async def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    started, swallowed = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # as wait_for does on 3.11: the task carries on
        await asyncio.Event().wait()  # and waits again, for ever unless cancelled again

    async def failed() -> None:
        raise ValueError("ended the run")

    tasks = {asyncio.create_task(stubborn()), asyncio.create_task(failed())}
    await started.wait()
    async with asyncio.timeout(30):
        await _cancel_until_done(tasks, every=0.01)
    assert swallowed.is_set()
    assert all(task.done() for task in tasks)


async def test_tasks_run_their_cleanup_and_end_cancelled() -> None:
    ended: list[str] = []

    async def polite(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    tasks = {asyncio.create_task(polite(name)) for name in ("a", "b")}
    await asyncio.sleep(0)  # both started and waiting
    await _cancel_until_done(tasks)
    assert sorted(ended) == ["a", "b"]
    assert all(task.cancelled() for task in tasks)

