"""When the leaderboard refresh is due: on a schedule, and soon after stats change.

Pure: times are plain floats from a monotonic clock, decisions are functions of a frozen
state. The rankings runner (`indexer.rankings`) feeds it the change signals it receives
(`amoca_stats_changed`) and the refreshes it runs.

A refresh is due at the earliest of
- ``interval`` after the previous refresh started (windows slide even when nothing is
  written: yesterday's task leaves the daily board);
- ``quiet`` after the latest change signal (debounce: a burst of writes -- a backfill page,
  a batch of finalized rows -- costs one refresh, not one per statement);
- ``max_delay`` after the first change signal not yet covered by a refresh (a steady
  stream of writes, never quiet, still refreshes that often);
but never sooner than ``idle_ratio`` times the last refresh's duration after it ended,
so a refresh that has grown slow (a big marketplace, a busy server) takes at most
1 / (1 + idle_ratio) of one database backend's time, whatever the write rate.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RefreshPolicy:
    interval: float = 60.0
    quiet: float = 2.0
    max_delay: float = 30.0
    # At 10,000 agents a refresh costs seconds of database time; a 9:1 idle ratio keeps it
    # to at most a tenth of one backend, so live writes are not stalled behind it.
    idle_ratio: float = 9.0

    def __post_init__(self) -> None:
        if not (self.interval > 0 and self.quiet >= 0 and self.max_delay >= self.quiet
                and self.idle_ratio >= 0):
            raise ValueError("refresh policy needs interval > 0, 0 <= quiet <= max_delay, idle_ratio >= 0")


@dataclass(frozen=True, slots=True)
class RefreshState:
    """What the runner knows: when it last refreshed, and changes not covered since."""

    last_refresh: float | None = None  # monotonic start of the last refresh; None = never
    last_duration: float = 0.0         # how long it took
    first_change: float | None = None  # earliest change signal after that start
    last_change: float | None = None   # latest change signal after that start

    def changed(self, now: float) -> RefreshState:
        return replace(self, first_change=self.first_change if self.first_change is not None else now,
                       last_change=now)

    def refreshed(self, started: float, duration: float = 0.0) -> RefreshState:
        """A refresh that started at ``started`` covers every change signalled before it."""
        covered = self.last_change is not None and self.last_change <= started
        if covered or self.last_change is None:
            return RefreshState(last_refresh=started, last_duration=duration)
        return replace(self, last_refresh=started, last_duration=duration)


def due_at(policy: RefreshPolicy, state: RefreshState) -> float:
    """The monotonic time the next refresh is due (in the past = now)."""
    if state.last_refresh is None:
        return float("-inf")
    due = state.last_refresh + policy.interval
    if state.first_change is not None and state.last_change is not None:
        due = min(due, state.last_change + policy.quiet, state.first_change + policy.max_delay)
    return max(due, state.last_refresh + state.last_duration * (1 + policy.idle_ratio))
