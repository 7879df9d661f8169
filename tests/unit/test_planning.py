"""Pure planning: shards, finality decisions, gap-fill chunks."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from indexer.finality import ChainStatus, PendingRow, decide
from indexer.gapfill import plan_chunks
from indexer.registry import Shard, diff, wallet_hash
from indexer.sink import CursorAdvance


def test_every_wallet_belongs_to_exactly_one_shard() -> None:
    wallets = [f"Wallet{i:040d}" for i in range(3000)]
    shards = [Shard(i, 3) for i in range(3)]
    owners = Counter(next(s.index for s in shards if s.owns(w)) for w in wallets)
    assert sum(owners.values()) == 3000
    assert min(owners.values()) > 800  # spread, not lumped
    assert wallet_hash("abc") == wallet_hash("abc")


def test_registry_diff() -> None:
    change = diff(frozenset({"a", "b"}), frozenset({"b", "c"}))
    assert change.added == {"c"}
    assert change.removed == {"a"}
    assert not diff(frozenset({"a"}), frozenset({"a"}))


def test_finality_decisions() -> None:
    rows = [PendingRow("fin", 100), PendingRow("err", 100), PendingRow("young", 100),
            PendingRow("gone", 10), PendingRow("recent-unknown", 300), PendingRow("moved", 90)]
    statuses = {
        "fin": ChainStatus(100, None, "finalized"),
        "err": ChainStatus(100, {"InstructionError": [0, "Custom"]}, "finalized"),
        "young": ChainStatus(100, None, "confirmed"),
        "gone": None,
        "recent-unknown": None,
        "moved": ChainStatus(95, None, "finalized"),
    }
    decisions = decide(rows, statuses, finalized_slot=200)
    assert decisions.confirm == (("fin", 100), ("moved", 95))
    assert decisions.fail == (("err", "err"), ("gone", "dropped"))


def test_unknown_signature_is_kept_until_its_blockhash_expired() -> None:
    row = [PendingRow("s", 1000)]
    assert decide(row, {}, finalized_slot=1150).fail == ()
    assert decide(row, {}, finalized_slot=1151).fail == (("s", "dropped"),)


@given(
    slots=st.lists(st.integers(1, 500), max_size=60).map(lambda s: sorted(s, reverse=True)),
    size=st.integers(1, 17),
    finalized=st.integers(0, 520),
)
def test_chunks_cover_everything_oldest_first_and_cursor_only_on_final(
        slots: list[int], size: int, finalized: int) -> None:
    listed = [(f"sig{i}", slot) for i, slot in enumerate(slots)]  # newest first, as nodes list
    chunks = plan_chunks("W", listed, size, finalized)
    flat = [s for c in chunks for s in c.signatures]
    assert flat == [sig for sig, _ in reversed(listed)]
    assert all(len(c.signatures) <= size for c in chunks)
    slot_of = dict(listed)
    position = {sig: i for i, sig in enumerate(flat)}
    for chunk in chunks:
        if chunk.cursor is None:
            continue
        assert isinstance(chunk.cursor, CursorAdvance)
        assert chunk.cursor.slot <= finalized
        # Every signature up to the cursor is final and processed in this or an earlier chunk.
        upto = position[chunk.cursor.signature]
        assert all(slot_of[s] <= finalized for s in flat[: upto + 1])
        assert chunk.cursor.signature in chunk.signatures


def test_cursor_stops_at_the_newest_final_signature() -> None:
    listed = [("d", 40), ("c", 30), ("b", 20), ("a", 10)]
    chunks = plan_chunks("W", listed, 3, finalized_slot=25)
    assert [c.signatures for c in chunks] == [("a", "b", "c"), ("d",)]
    assert chunks[0].cursor == CursorAdvance("W", "b", 20)
    assert chunks[1].cursor is None


@pytest.mark.parametrize("text", ["0/1", "1/4", "3/4"])
def test_shard_parse_round_trips(text: str) -> None:
    assert str(Shard.parse(text)) == text
