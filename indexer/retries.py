"""Running work under a retry policy, at the cost of none while it succeeds.

Tenacity applies every retry policy (backoff with jitter, a deadline, Retry-After), and
its async loop costs 40-70 us an operation even when the first attempt succeeds: a tenth
of the daemon's CPU for a live row, which is fetched and written alone or nearly. So the
first attempt runs bare; a failure :func:`indexer.errors.is_transient` accepts enters the
policy's loop as that loop's first attempt's outcome, and from there the policy decides
as it would have: the backoff before the next attempt, and the deadline, shortened by the
time the first attempt took (the policy is built then, given the time left).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying

from indexer.errors import is_transient

T = TypeVar("T")


async def retried(attempt: Callable[[], Awaitable[T]], policy: Callable[[float | None], AsyncRetrying],
                  *, give_up_after: float | None = None) -> T:
    """``attempt()``, and again under ``policy(seconds left)`` only if it failed
    transiently: what is left of ``give_up_after`` once the first attempt took its time
    (None: no deadline). The policy's loop sees the first failure as its attempt 1."""
    started = time.monotonic()
    try:
        return await attempt()
    except Exception as exc:
        if not is_transient(exc):
            raise
        failure = exc
    left = None if give_up_after is None else max(0.0, give_up_after - (time.monotonic() - started))
    async for tried in policy(left):
        with tried:
            if tried.retry_state.attempt_number == 1:
                raise failure
            return await attempt()
    raise AssertionError("unreachable: the policy reraises")  # pragma: no cover
