"""Backfill ranges: bounds parse from what a user types; pages filter as they stream."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from indexer.backfill import Bound, Range, parse_bound, select
from indexer.errors import ConfigError

SIG = "5hJfaZoyzjbyP7kXv2hfaFKNJNbyh8P3p5UPDZTSawVGLN4Qfe4KifSzRHyoBkTNsMNuK3uXkXqJk81AqkTJwQUg"


@dataclass(frozen=True)
class Info:
    signature: str
    slot: int
    block_time: int | None


def test_bounds_parse() -> None:
    assert parse_bound("123456") == Bound(slot=123456)
    assert parse_bound(SIG) == Bound(signature=SIG)
    assert parse_bound("2026-11-01") == Bound(time=datetime(2026, 11, 1, tzinfo=UTC))
    assert parse_bound("2026-11-01T12:30+01:00").time == datetime(2026, 11, 1, 11, 30, tzinfo=UTC)


@pytest.mark.parametrize("text", ["yesterday", "12ab", "2026-13-01", "0xdeadbeef"])
def test_bad_bounds_are_one_clear_error(text: str) -> None:
    with pytest.raises(ConfigError, match="not a slot, a transaction signature or a date/time"):
        parse_bound(text)


def test_since_after_until_is_refused() -> None:
    with pytest.raises(ConfigError, match="after --until"):
        Range(Bound(slot=10), Bound(slot=5)).check()
    with pytest.raises(ConfigError, match="after --until"):
        Range(parse_bound("2026-02-01"), parse_bound("2026-01-01")).check()
    Range(Bound(slot=5), Bound(slot=10)).check()


def test_a_signature_bound_compares_by_the_slot_the_node_gave() -> None:
    newer = Range(Bound(signature=SIG), Bound(slot=5))
    newer.check()  # its slot not known yet: nothing to compare
    with pytest.raises(ConfigError, match=f"--since {SIG} \\(slot 9\\) is after --until slot 5"):
        newer.check({SIG: 9})
    Range(Bound(slot=5), Bound(signature=SIG)).check({SIG: 9})


def test_range_key_is_stable_and_distinct() -> None:
    assert Range(Bound(slot=1)).key() == Range(Bound(slot=1)).key()
    assert Range(Bound(slot=1)).key() != Range(None, Bound(slot=1)).key()


def test_select_filters_by_slot_and_stops_past_since() -> None:
    page = [Info("e", 50, None), Info("d", 40, None), Info("c", 30, None), Info("b", 20, None),
            Info("a", 10, None)]
    assert select(page, Range()) == (["e", "d", "c", "b", "a"], False)
    assert select(page, Range(Bound(slot=25), Bound(slot=45))) == (["d", "c"], True)
    assert select(page, Range(None, Bound(slot=35))) == (["c", "b", "a"], False)


def test_select_filters_by_block_time() -> None:
    base = int(datetime(2026, 1, 2, tzinfo=UTC).timestamp())
    page = [Info("new", 3, base + 86400), Info("mid", 2, base), Info("old", 1, base - 86400)]
    window = Range(parse_bound("2026-01-01T12:00"), parse_bound("2026-01-02T12:00"))
    assert select(page, window) == (["mid"], True)
