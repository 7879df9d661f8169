"""`retried`: the first attempt bare, the policy's loop only after a transient failure,
which that loop takes as its own first attempt (so it backs off before the second)."""

from __future__ import annotations

import pytest
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_fixed

from indexer.errors import ConfigError, RpcUnavailable, is_transient
from indexer.retries import retried


class Script:
    """An operation failing with ``failures`` in turn, then answering ``done``; and a
    policy that records the time left it was given and the backoffs it asked for."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.left: list[float | None] = []
        self.sleeps: list[float] = []

    async def attempt(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"

    def policy(self, left: float | None) -> AsyncRetrying:
        self.left.append(left)

        async def sleep(delay: float) -> None:
            self.sleeps.append(delay)

        return AsyncRetrying(retry=retry_if_exception(is_transient), wait=wait_fixed(0.5),
                             stop=stop_after_attempt(3), sleep=sleep, reraise=True)


async def test_a_first_success_never_enters_the_policy() -> None:
    script = Script()
    assert await retried(script.attempt, script.policy) == "done"
    assert (script.calls, script.left, script.sleeps) == (1, [], [])


async def test_a_transient_failure_backs_off_once_then_tries_again() -> None:
    script = Script(RpcUnavailable("getSlot: HTTP 503"))
    assert await retried(script.attempt, script.policy, give_up_after=30.0) == "done"
    assert script.calls == 2
    (left,) = script.left  # the policy was asked for once, told what the first attempt left
    assert left is not None
    assert 0 < left <= 30.0
    assert script.sleeps == [0.5]  # the first failure counts as the policy's attempt 1


async def test_without_a_deadline_the_policy_is_told_none_and_a_spent_one_zero() -> None:
    endless, spent = Script(RpcUnavailable("HTTP 503")), Script(RpcUnavailable("HTTP 503"))
    assert await retried(endless.attempt, endless.policy) == "done"
    assert await retried(spent.attempt, spent.policy, give_up_after=0.0) == "done"
    assert (endless.left, spent.left) == ([None], [0.0])


async def test_the_policys_attempts_include_the_first_and_the_last_error_is_raised() -> None:
    script = Script(*(RpcUnavailable(f"HTTP 503 #{n}") for n in range(1, 5)))
    with pytest.raises(RpcUnavailable, match="#3"):
        await retried(script.attempt, script.policy)
    assert (script.calls, script.sleeps) == (3, [0.5, 0.5])  # stop_after_attempt(3): 3 in all


async def test_a_permanent_failure_is_raised_at_once() -> None:
    script = Script(ConfigError("bad"))
    with pytest.raises(ConfigError):
        await retried(script.attempt, script.policy)
    assert (script.calls, script.left) == (1, [])
