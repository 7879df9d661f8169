"""Legs + memo -> marketplace rows (DESIGN section 4). Pure: no I/O.

| leg          | memo                             | row                                  |
|--------------|----------------------------------|--------------------------------------|
| into agent   | funding / payment / subscription | that type                            |
| into agent   | none, invalid, or refund         | ``funding``                          |
| out of agent | refund (task of that agent)      | ``refund``, counterparty = recipient |
| out of agent | anything else                    | skipped ``outgoing_not_refund``      |

Decisions written down:

* Legs of one transaction for the same agent, direction and asset (SOL, or one mint)
  are summed into one row; the row keeps every leg. The counterparty of a summed row
  is the wallet with the largest summed amount, ties going to the first to appear.
* An agent can still end up with more than one row (SOL and a token, or money in and
  out). Rows are never netted across assets or directions: each is kept, and the agent
  is listed in ``conflicts`` so the caller can dead-letter the transaction
  (``multiple_rows_per_agent``) instead of silently dropping one under the
  (signature, agent) key.
* Agent to agent: the receiving agent gets its row; the paying agent's leg is skipped
  unless the memo is a refund of its own task.
* A leg of amount zero is skipped (``zero_amount``): it moves nothing, and rows for
  it would let anyone add rows to an agent's history for the price of a fee.
* A leg from a wallet to itself is skipped (``self_transfer``). A System transfer made
  inside an Associated Token Account instruction is rent for the new token account,
  skipped as ``account_rent``.
* With ``task_owner``, a payment or refund memo applies to an agent only when the
  task belongs to that agent: otherwise the memo is "no valid memo" for that agent
  (``task_agent_mismatch``; ``unknown_task`` when the task does not exist). The check
  is per agent, so one transaction can be valid for one agent and not another.
* A failed transaction still yields its rows, with status ``failed``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Sequence
from decimal import Context, Decimal
from uuid import UUID

from indexer.decode.models import (
    Leg,
    Memo,
    MemoRejection,
    RowStatus,
    SkippedLeg,
    TransactionType,
    TransferRow,
)

SKIP_REASONS = (
    "outgoing_not_refund",  # money leaving an agent without a valid refund memo
    "self_transfer",  # the agent moved funds to itself
    "account_rent",  # rent for a token account created by the ATA program
    "zero_amount",  # a transfer of nothing: no row, so zero-value spam cannot add rows
)

# Exact arithmetic for any u64 sum: 78 digits cover 2**256.
_EXACT = Context(prec=78)

TaskOwner = Callable[[UUID], "str | None"]


def token_amount(amount_raw: int, decimals: int) -> Decimal:
    """``amount_raw / 10**decimals`` exactly."""
    return Decimal(amount_raw).scaleb(-decimals, _EXACT)


class _Group:
    """Legs being summed into one row."""

    __slots__ = ("agent", "by_counterparty", "direction", "legs", "mint", "total")

    def __init__(self, agent: str, direction: str, mint: str | None) -> None:
        self.agent = agent
        self.direction = direction
        self.mint = mint
        self.legs: list[Leg] = []
        self.total = 0
        self.by_counterparty: dict[str, int] = {}  # insertion order = first appearance

    def add(self, leg: Leg, counterparty: str) -> None:
        self.legs.append(leg)
        self.total += leg.amount_raw
        self.by_counterparty[counterparty] = self.by_counterparty.get(counterparty, 0) + leg.amount_raw

    def counterparty(self) -> str:
        if len(self.by_counterparty) == 1:  # the usual case
            return next(iter(self.by_counterparty))
        best, best_amount = "", -1
        for wallet, amount in self.by_counterparty.items():
            if amount > best_amount:
                best, best_amount = wallet, amount
        return best


class Classification:
    """The classifier's answer: rows, skipped legs, agents with several rows, and the
    first per-agent memo rejection (when the memo parsed but did not apply)."""

    __slots__ = ("conflicts", "memo_rejection", "rows", "skipped")

    def __init__(
        self,
        rows: tuple[TransferRow, ...],
        skipped: tuple[SkippedLeg, ...],
        conflicts: tuple[str, ...],
        memo_rejection: MemoRejection | None,
    ) -> None:
        self.rows = rows
        self.skipped = skipped
        self.conflicts = conflicts
        self.memo_rejection = memo_rejection


def classify(
    legs: Sequence[Leg],
    rent_legs: Sequence[Leg],
    memo: Memo | MemoRejection | None,
    memo_text: str | None,
    watched: Container[str],
    *,
    signature: str,
    slot: int,
    block_time: int | None,
    fee_payer: str,
    status: RowStatus,
    task_owner: TaskOwner | None = None,
) -> Classification:
    """Classify the legs of one transaction for the watched agents."""
    skipped: list[SkippedLeg] = []
    groups: dict[tuple[str, str, str | None], _Group] = {}
    applies: dict[str, MemoRejection | None] = {}  # agent -> why the memo does not apply
    agent_rejection: MemoRejection | None = None
    valid = memo if isinstance(memo, Memo) else None

    def rejection_for(agent: str) -> MemoRejection | None:
        """None when the valid memo applies to ``agent``; else why not."""
        if agent in applies:
            return applies[agent]
        result: MemoRejection | None = None
        if (
            valid is not None
            and task_owner is not None
            and valid.task_id is not None
            and valid.type in ("payment", "refund")
        ):
            owner = task_owner(valid.task_id)
            if owner is None:
                result = MemoRejection("unknown_task", f"task {valid.task_id}", valid.text)
            elif owner != agent:
                result = MemoRejection(
                    "task_agent_mismatch", f"task {valid.task_id} belongs to another agent", valid.text
                )
        applies[agent] = result
        return result

    for leg in rent_legs:
        for wallet in dict.fromkeys((leg.source_wallet, leg.destination_wallet)):
            if wallet in watched:
                skipped.append(SkippedLeg(wallet, leg, "account_rent"))

    for leg in legs:
        source, destination = leg.source_wallet, leg.destination_wallet
        if leg.amount_raw == 0:
            for wallet in dict.fromkeys((source, destination)):
                if wallet in watched:
                    skipped.append(SkippedLeg(wallet, leg, "zero_amount"))
            continue
        if source == destination:
            if source in watched:
                skipped.append(SkippedLeg(source, leg, "self_transfer"))
            continue
        if destination in watched:
            key = (destination, "in", leg.mint)
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group(destination, "in", leg.mint)
            group.add(leg, source)
        if source in watched:
            refund = valid is not None and valid.type == "refund"
            rejection = rejection_for(source) if refund else None
            if refund and rejection is None:
                key = (source, "out", leg.mint)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = _Group(source, "out", leg.mint)
                group.add(leg, destination)
            else:
                if rejection is not None and agent_rejection is None:
                    agent_rejection = rejection
                skipped.append(SkippedLeg(source, leg, "outgoing_not_refund"))

    rows: list[TransferRow] = []
    per_agent: dict[str, int] = {}
    for group in groups.values():
        transaction_type: TransactionType = "funding"
        row_rejection: str | None = memo.reason if isinstance(memo, MemoRejection) else None
        task_id: UUID | None = None
        refund_of: str | None = None
        period: str | None = None
        if valid is not None:
            rejection = rejection_for(group.agent)
            if rejection is not None:
                row_rejection = rejection.reason
                if agent_rejection is None:
                    agent_rejection = rejection
            elif group.direction == "out":
                transaction_type = "refund"
                task_id, refund_of = valid.task_id, valid.refund_of
            elif valid.type != "refund":
                transaction_type = valid.type
                task_id, period = valid.task_id, valid.period
        decimals = group.legs[0].decimals
        rows.append(
            TransferRow(  # positional: this runs for every row, keyword calls cost more
                signature,
                group.agent,
                group.counterparty(),
                transaction_type,
                "in" if group.direction == "in" else "out",
                group.total,
                token_amount(group.total, decimals),
                group.mint,
                decimals,
                status,
                task_id,
                refund_of,
                period,
                memo_text,
                row_rejection,
                tuple(group.legs),
                slot,
                block_time,
                fee_payer,
            )
        )
        per_agent[group.agent] = per_agent.get(group.agent, 0) + 1
    if len(per_agent) == len(rows):  # the usual case: one row per agent
        conflicts: tuple[str, ...] = ()
    else:
        conflicts = tuple(agent for agent, count in per_agent.items() if count > 1)
    return Classification(tuple(rows), tuple(skipped), conflicts, agent_rejection)
