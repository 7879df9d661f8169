"""The finality tracker: pending rows become confirmed once finalized, or failed when a
fork dropped them (DESIGN section 5).

Rows are written `pending` at `confirmed` commitment. Here, in batches, their signatures
are asked of `getSignatureStatuses` (with searchTransactionHistory):
- finalized, no error        → `confirmed`, `confirmed_at` set, slot corrected if the
                               transaction was re-included in another slot after a fork;
- finalized with an error    → `failed` (`metadata.failure = 'err'`);
- unknown, and its slot is more than the blockhash-expiry window (150 slots) behind the
  finalized slot             → `failed`, `metadata.failure = 'dropped'`: its blockhash
                               has expired, so it can never land again.
Status only moves forward: every UPDATE touches only rows still `pending`. A confirmed
refund marking its payment `refunded` is the transactions trigger's job (sql/).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import psycopg

from indexer.db.connection import translate

# A blockhash is valid for 150 slots (MAX_PROCESSING_AGE); past that a dropped
# transaction can never be included.
BLOCKHASH_EXPIRY_SLOTS = 150


@dataclass(frozen=True, slots=True)
class PendingRow:
    signature: str
    slot: int


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """What getSignatureStatuses says of one signature."""

    slot: int
    err: Any
    confirmation_status: str | None


@dataclass(frozen=True, slots=True)
class Decisions:
    confirm: tuple[tuple[str, int], ...] = ()  # (signature, slot)
    fail: tuple[tuple[str, str], ...] = ()  # (signature, failure reason)


def decide(
    rows: Sequence[PendingRow],
    statuses: Mapping[str, ChainStatus | None],
    finalized_slot: int,
    *,
    expiry_slots: int = BLOCKHASH_EXPIRY_SLOTS,
) -> Decisions:
    """Which pending rows move, and where (pure)."""
    confirm: list[tuple[str, int]] = []
    fail: list[tuple[str, str]] = []
    for row in rows:
        status = statuses.get(row.signature)
        if status is None:
            if row.slot + expiry_slots < finalized_slot:
                fail.append((row.signature, "dropped"))
        elif status.confirmation_status == "finalized":
            if status.err is None:
                confirm.append((row.signature, status.slot))
            else:
                fail.append((row.signature, "err"))
    return Decisions(confirm=tuple(confirm), fail=tuple(fail))


class StatusSource(Protocol):
    async def get_slot(self, commitment: str = ...) -> int: ...
    async def get_signature_statuses(self, signatures: Sequence[str]) -> Sequence[Any]: ...


# Only rows that can be final by now: a row's slot past the finalized slot cannot be
# (nor dropped: that needs its blockhash expired, 150 slots behind it). Oldest first, read
# in the order of idx_transactions_pending (slot) WHERE status = 'pending' with the slot
# bound as the index condition, so a pass reads at most `limit` entries however many rows
# are pending. A NULL slot (a row some other writer added) cannot be an index condition
# together with the bound: those come from a second, equally bounded, read after them.
_SELECT_PENDING = """
(SELECT transaction_signature, slot FROM transactions
 WHERE status = 'pending' AND slot <= %(finalized)s ORDER BY slot LIMIT %(limit)s)
UNION ALL
(SELECT transaction_signature, slot FROM transactions
 WHERE status = 'pending' AND slot IS NULL LIMIT %(limit)s)
LIMIT %(limit)s
"""

_ANY_PENDING = "SELECT EXISTS (SELECT FROM transactions WHERE status = 'pending')"

# The two UPDATEs reach their rows from the signatures, through the unique (signature,
# agent) key. "Still pending" is written as "none of the three later statuses" (the same
# rows: the status CHECK allows four), which does not imply the predicate of the partial
# index idx_transactions_pending (status = 'pending'), so that index is no way in. With
# it, statistics taken while few rows were pending made the planner join the pending
# rows to the signature list by a nested loop that unnests the whole list again for every
# pending row: 1,000 of 5,000 pending rows took 0.65 s instead of 0.03 s. The daemon
# benchmark once saw a pass run for 23 s (its plan was not captured), holding the users
# its rows paid while the writer waited on them. Executed unprepared, so each plan is
# made for the list it is given.
_CONFIRM = """
UPDATE transactions t
SET status = 'confirmed', confirmed_at = timezone('utc', now()), slot = v.slot
FROM unnest(%(signature)s::text[], %(slot)s::int8[]) AS v(signature, slot)
WHERE t.transaction_signature = v.signature AND t.status NOT IN ('confirmed', 'failed', 'refunded')
"""

_FAIL = """
UPDATE transactions t
SET status = 'failed', metadata = t.metadata || jsonb_build_object('failure', v.reason)
FROM unnest(%(signature)s::text[], %(reason)s::text[]) AS v(signature, reason)
WHERE t.transaction_signature = v.signature AND t.status NOT IN ('confirmed', 'failed', 'refunded')
"""

_COUNT_PENDING = "SELECT count(*) FROM transactions WHERE status = 'pending'"


async def pending_rows(conn: psycopg.AsyncConnection[Any], finalized_slot: int,
                       limit: int) -> tuple[list[PendingRow], bool]:
    """Pending rows at or below ``finalized_slot``, oldest first, one per signature (a
    transfer to two agents is two rows, one signature), from at most ``limit`` rows; and
    whether the limit cut them short (more may be waiting)."""
    cur = await conn.execute(_SELECT_PENDING, {"finalized": finalized_slot, "limit": limit})
    found = await cur.fetchall()
    oldest: dict[str, int] = {}
    for signature, slot in found:
        oldest.setdefault(signature, int(slot or 0))
    return [PendingRow(signature, slot) for signature, slot in oldest.items()], len(found) == limit


async def apply(conn: psycopg.AsyncConnection[Any], decisions: Decisions) -> tuple[int, int]:
    """Write the decisions in one transaction; returns (rows confirmed, rows failed)."""
    confirmed = failed = 0
    try:
        async with conn.transaction(), conn.cursor() as cur:
            if decisions.confirm:
                await cur.execute(_CONFIRM, {
                    "signature": [s for s, _ in decisions.confirm],
                    "slot": [slot for _, slot in decisions.confirm],
                }, prepare=False)
                confirmed = cur.rowcount
            if decisions.fail:
                await cur.execute(_FAIL, {
                    "signature": [s for s, _ in decisions.fail],
                    "reason": [r for _, r in decisions.fail],
                }, prepare=False)
                failed = cur.rowcount
    except psycopg.Error as exc:
        raise translate(exc) from exc
    return confirmed, failed


async def any_pending(conn: psycopg.AsyncConnection[Any]) -> bool:
    cur = await conn.execute(_ANY_PENDING)
    row = await cur.fetchone()
    return bool(row and row[0])


async def count_pending(conn: psycopg.AsyncConnection[Any]) -> int:
    cur = await conn.execute(_COUNT_PENDING)
    row = await cur.fetchone()
    return int(row[0]) if row else 0
