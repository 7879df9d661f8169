"""When the leaderboard refresh is due (indexer.debounce): schedule, debounce, cap."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.debounce import RefreshPolicy, RefreshState, due_at

POLICY = RefreshPolicy(interval=60.0, quiet=2.0, max_delay=10.0)


def test_first_refresh_is_due_at_once() -> None:
    assert due_at(POLICY, RefreshState()) == -math.inf


def test_without_changes_the_schedule_rules() -> None:
    state = RefreshState().refreshed(100.0)
    assert due_at(POLICY, state) == 160.0


def test_a_change_is_refreshed_after_a_quiet_moment() -> None:
    state = RefreshState().refreshed(100.0).changed(105.0)
    assert due_at(POLICY, state) == 107.0


def test_a_burst_costs_one_refresh_after_it_ends() -> None:
    state = RefreshState().refreshed(100.0)
    for t in (105.0, 105.5, 106.0, 106.5):
        state = state.changed(t)
    assert due_at(POLICY, state) == 108.5
    state = state.refreshed(108.5)
    assert due_at(POLICY, state) == 168.5


def test_a_stream_never_quiet_is_refreshed_every_max_delay() -> None:
    state = RefreshState().refreshed(100.0)
    t = 101.0
    while t < 120.0:
        state = state.changed(t)
        t += 1.0  # a change every second, quieter than never
    assert due_at(POLICY, state) == 111.0  # first change + max_delay


def test_changes_seen_after_a_refresh_started_schedule_another() -> None:
    state = RefreshState().refreshed(100.0).changed(103.0)
    # the refresh started at 102.0 cannot have seen the change signalled at 103.0
    state = state.refreshed(102.0)
    assert state.first_change == 103.0
    assert due_at(POLICY, state) == 105.0


def test_a_slow_refresh_buys_itself_idle_time() -> None:
    # a 4 s refresh: nothing before 4 s + 9 x 4 s = 40 s after it started, however busy
    # (the default idle ratio: a refresh takes at most a tenth of one database backend)
    state = RefreshState().refreshed(100.0, duration=4.0)
    for t in (104.5, 105.0, 110.0):
        state = state.changed(t)
    assert due_at(POLICY, state) == 140.0
    # a fast one changes nothing: quiet and cap rule
    state = RefreshState().refreshed(100.0, duration=0.1).changed(105.0)
    assert due_at(POLICY, state) == 107.0


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="refresh policy"):
        RefreshPolicy(interval=0)
    with pytest.raises(ValueError, match="refresh policy"):
        RefreshPolicy(quiet=5.0, max_delay=1.0)
    with pytest.raises(ValueError, match="refresh policy"):
        RefreshPolicy(idle_ratio=-1.0)


@given(st.lists(st.floats(min_value=0.0, max_value=1000.0), min_size=1, max_size=30),
       st.floats(min_value=0.0, max_value=1000.0))
def test_due_is_never_later_than_the_cap_nor_the_schedule(offsets: list[float], last: float) -> None:
    state = RefreshState().refreshed(last)
    times = [last + o for o in sorted(offsets)]
    for t in times:
        state = state.changed(t)
    due = due_at(POLICY, state)
    assert due <= times[0] + POLICY.max_delay
    assert due <= last + POLICY.interval
    assert due >= min(times[-1] + POLICY.quiet, times[0] + POLICY.max_delay, last + POLICY.interval)
