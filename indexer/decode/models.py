"""The values that flow out of the decoder: legs, rows, memos and the decoded transaction.

All frozen and slotted (STYLE 2). Amounts are ``int`` base units (lamports for SOL) plus
an exact ``Decimal``; never float. ``to_json_dict`` renders a value for the CLI and for
``transactions.metadata``: Decimals, UUIDs and raw amounts as strings (raw amounts are
u64 and overflow JavaScript numbers, which is also why Solana's RPC sends token amounts
as strings), everything else as plain JSON types.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from indexer.records import quick_init

TransactionType = Literal["funding", "payment", "refund", "subscription"]
Direction = Literal["in", "out"]
RowStatus = Literal["pending", "failed"]
Encoding = Literal["json", "jsonParsed", "base64"]

SOL_DECIMALS = 9


@functools.lru_cache(maxsize=4096)
def uuid_text(value: UUID) -> str:
    """``str(value)``, remembered: a task's id is rendered for every row that pays it, and
    ``UUID.__str__`` formats in Python (7,800 instructions; a cache hit 1,900)."""
    return str(value)


def jsonb_key_order(key: str) -> tuple[int, bytes]:
    """The order PostgreSQL stores a jsonb object's keys in: shorter first, then bytewise.

    What the sink stores as jsonb (``metadata``, every leg in it) is built with its keys
    in this order. Converting text to jsonb sorts each object's keys, and PostgreSQL's
    sort returns at once on input already in order: parsing a row's metadata took 5.4
    instead of 8.9 us of server CPU (2,400 workload rows, medians of 9 runs)."""
    encoded = key.encode()
    return len(encoded), encoded


@dataclass(frozen=True, slots=True)
class Memo:
    """A valid AMOCA v1 memo. ``text`` is the memo exactly as sent."""

    type: TransactionType
    text: str
    task_id: UUID | None = None
    refund_of: str | None = None
    period: str | None = None
    version: int = 1
    ignored_keys: tuple[str, ...] = ()

    def to_text(self) -> str:
        """The canonical memo text for these values (keys in a fixed order)."""
        parts = [f"amoca:{self.version}:{self.type}"]
        if self.task_id is not None:
            parts.append(f"task={self.task_id}")
        if self.refund_of is not None:
            parts.append(f"refund_of={self.refund_of}")
        if self.period is not None:
            parts.append(f"period={self.period}")
        return ";".join(parts)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "text": self.text,
            "task_id": None if self.task_id is None else uuid_text(self.task_id),
            "refund_of": self.refund_of,
            "period": self.period,
            "ignored_keys": list(self.ignored_keys),
        }


@dataclass(frozen=True, slots=True)
class MemoRejection:
    """Why a memo is "no valid memo". ``reason`` is one of ``MEMO_REJECTION_REASONS``.

    ``text`` is the memo as text when there was one (non-UTF-8 bytes are shown with
    replacement characters), for logs and ``metadata``.
    """

    reason: str
    detail: str = ""
    text: str | None = None

    def to_json_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "detail": self.detail, "text": self.text}


@quick_init  # built for every transfer: see indexer.records
@dataclass(frozen=True, slots=True)
class Leg:
    """One transfer instruction, resolved to wallets.

    For SOL legs the wallets are the accounts; for token legs the wallets are the token
    accounts' owners (from the transaction's token balances) and ``mint``/``decimals``
    are set. ``instruction_index`` is the outer instruction; ``inner_index`` the position
    inside its CPI list, or None for a top-level instruction.
    """

    program: Literal["system", "spl-token", "spl-token-2022"]
    instruction: Literal["transfer", "transferWithSeed", "transferChecked"]
    source_wallet: str
    destination_wallet: str
    source_account: str
    destination_account: str
    amount_raw: int
    mint: str | None
    decimals: int
    inner: bool
    instruction_index: int
    inner_index: int | None

    def to_json_dict(self) -> dict[str, Any]:
        # Keys in jsonb's order (see jsonb_key_order): every leg is stored in metadata.
        return {
            "mint": self.mint,
            "inner": self.inner,
            "program": self.program,
            "decimals": self.decimals,
            "amount_raw": str(self.amount_raw),
            "inner_index": self.inner_index,
            "instruction": self.instruction,
            "source_wallet": self.source_wallet,
            "source_account": self.source_account,
            "instruction_index": self.instruction_index,
            "destination_wallet": self.destination_wallet,
            "destination_account": self.destination_account,
        }


@dataclass(frozen=True, slots=True)
class UnattributedLeg:
    """A token transfer touching a watched wallet whose owner or mint we cannot know.

    Typically a token account missing from ``pre/postTokenBalances`` or a balance entry
    without ``owner`` (nodes before 1.7). Reported, never guessed.
    """

    program: str
    instruction: str
    source_account: str
    destination_account: str
    authority: str | None
    source_wallet: str | None
    destination_wallet: str | None
    amount_raw: int
    mint: str | None
    decimals: int | None
    inner: bool
    instruction_index: int
    inner_index: int | None
    reason: str

    def addresses(self) -> tuple[str | None, ...]:
        """Every address through which the leg may touch a watched wallet."""
        return (
            self.source_wallet,
            self.destination_wallet,
            self.source_account,
            self.destination_account,
            self.authority,
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "program": self.program,
            "instruction": self.instruction,
            "source_account": self.source_account,
            "destination_account": self.destination_account,
            "authority": self.authority,
            "source_wallet": self.source_wallet,
            "destination_wallet": self.destination_wallet,
            "amount_raw": str(self.amount_raw),
            "mint": self.mint,
            "decimals": self.decimals,
            "inner": self.inner,
            "instruction_index": self.instruction_index,
            "inner_index": self.inner_index,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class SkippedLeg:
    """A leg touching an agent that makes no row (``reason`` in ``SKIP_REASONS``)."""

    agent_wallet: str
    leg: Leg
    reason: str

    def to_json_dict(self) -> dict[str, Any]:
        return {"agent_wallet": self.agent_wallet, "reason": self.reason, "leg": self.leg.to_json_dict()}


@quick_init  # built for every transfer: see indexer.records
@dataclass(frozen=True, slots=True)
class TransferRow:
    """One ``transactions`` row: the legs of one transaction, for one agent, one
    direction and one asset, summed. ``memo_rejection`` is the reason code when the memo
    was not applied to this row (invalid memo, or a task of another agent)."""

    signature: str
    agent_wallet: str
    counterparty_wallet: str
    transaction_type: TransactionType
    direction: Direction
    amount_raw: int
    amount: Decimal
    mint: str | None
    decimals: int
    status: RowStatus
    task_id: UUID | None
    refund_of: str | None
    period: str | None
    memo: str | None
    memo_rejection: str | None
    legs: tuple[Leg, ...]
    slot: int
    block_time: int | None
    fee_payer: str

    def metadata_dict(self) -> dict[str, Any]:
        """What the sink stores in ``transactions.metadata``: what the row's columns do not
        hold. Not the columns again (amount, mint, slot...): a copy could disagree with
        them, and it doubled the stored row. The counterparty's wallet stays here because
        ``user_id`` is emptied when a user is deleted; the memo's task id because
        ``task_id`` is empty when the task was unknown or has been pruned; the slot the row was
        seen in because finality rewrites ``slot`` when a fork re-included the transaction."""
        return {  # keys in jsonb's order (see jsonb_key_order)
            "legs": [leg.to_json_dict() for leg in self.legs],
            "memo": self.memo,
            "period": self.period,
            "task_id": None if self.task_id is None else uuid_text(self.task_id),
            "direction": self.direction,
            "fee_payer": self.fee_payer,
            "seen_slot": self.slot,
            "amount_raw": str(self.amount_raw),
            "block_time": self.block_time,
            "memo_rejection": self.memo_rejection,
            "counterparty_wallet": self.counterparty_wallet,
        }

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "agent_wallet": self.agent_wallet,
            "counterparty_wallet": self.counterparty_wallet,
            "transaction_type": self.transaction_type,
            "direction": self.direction,
            "amount_raw": str(self.amount_raw),
            "amount": format(self.amount, "f"),
            "mint": self.mint,
            "decimals": self.decimals,
            "status": self.status,
            "task_id": None if self.task_id is None else uuid_text(self.task_id),
            "refund_of": self.refund_of,
            "period": self.period,
            "memo": self.memo,
            "memo_rejection": self.memo_rejection,
            "slot": self.slot,
            "block_time": self.block_time,
            "fee_payer": self.fee_payer,
            "legs": [leg.to_json_dict() for leg in self.legs],
        }


@quick_init  # built for every transfer: see indexer.records
@dataclass(frozen=True, slots=True)
class DecodedTransaction:
    """Everything the decoder learned from one getTransaction result.

    ``rows`` are the marketplace rows for watched agents. ``conflicts`` lists agents
    that got more than one row (e.g. SOL and USDC, or in and out, in one transaction):
    the database key is (signature, agent), so the caller dead-letters such a
    transaction with reason ``multiple_rows_per_agent`` rather than pick one.
    """

    signature: str
    slot: int
    block_time: int | None
    fee_payer: str
    fee: int
    err: Any
    status_seed: RowStatus
    encoding: Encoding
    version: Literal["legacy", 0]
    rows: tuple[TransferRow, ...]
    skipped: tuple[SkippedLeg, ...]
    unattributed: tuple[UnattributedLeg, ...]
    memo: str | None
    memo_rejection: MemoRejection | None
    conflicts: tuple[str, ...]
    # (token account, owner) for every token account of a watched wallet the balances
    # show, moved or not: how a closed one is found (no getTokenAccountsByOwner lists it).
    owned_token_accounts: tuple[tuple[str, str], ...]

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "signature": self.signature,
            "slot": self.slot,
            "block_time": self.block_time,
            "fee_payer": self.fee_payer,
            "fee": self.fee,
            "err": self.err,
            "status": self.status_seed,
            "encoding": self.encoding,
            "version": self.version,
            "memo": self.memo,
            "memo_rejection": None if self.memo_rejection is None else self.memo_rejection.to_json_dict(),
            "rows": [row.to_json_dict() for row in self.rows],
            "skipped": [skip.to_json_dict() for skip in self.skipped],
            "unattributed": [leg.to_json_dict() for leg in self.unattributed],
            "conflicts": list(self.conflicts),
        }
