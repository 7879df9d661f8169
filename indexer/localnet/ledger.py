"""The local chain: LiteSVM execution (real programs, signatures and logs) plus what a
validator adds around it -- slots on a clock, blockhashes, commitment levels, transaction
history with full metadata, per-address signature indexes, and forks.

Not thread-safe and free of asyncio: the server owns one Ledger and calls it from its
event loop. A transaction lands in the open slot; ``tick()`` closes that slot.
Commitment: a slot is processed when produced, confirmed ``confirm_slots`` later and
finalized ``finality_slots`` later.

Forks: ``drop_from(slot)`` removes a confirmed-but-not-finalized slot and every slot
after it (they were built on it), restoring each touched account to its state before
the first dropped transaction, so the transactions vanish from every method and their
effects from every balance -- what a fork switch looks like from outside.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from solders.account import Account
from solders.hash import Hash
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata, TransactionMetadata

TOKEN_PROGRAMS = frozenset({"TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                            "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"})
_TOKEN_PROGRAM_KEYS = frozenset(Pubkey.from_string(program) for program in TOKEN_PROGRAMS)
MEMO_PROGRAMS = frozenset({"Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo",
                           "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"})
ALT_PROGRAM = "AddressLookupTab1e1111111111111111111111111"
SYSTEM_PROGRAM = "11111111111111111111111111111111"
MAX_BLOCKHASH_AGE = 150
FIRST_SLOT = 1
COMMITMENTS = ("processed", "confirmed", "finalized")


class SendError(Exception):
    """A transaction refused before landing: (code, message, data) as a node answers."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


@dataclass(slots=True)
class TxRecord:
    signature: str
    slot: int
    block_time: int
    tx: VersionedTransaction
    account_keys: list[str]
    loaded_writable: list[str]
    loaded_readonly: list[str]
    err: Any
    fee: int
    logs: list[str]
    inner: list[list[Any]]
    compute_units: int
    pre_balances: list[int]
    post_balances: list[int]
    pre_tokens: list[dict[str, Any]]
    post_tokens: list[dict[str, Any]]
    memos: list[str]
    pre_accounts: dict[str, Account | None] = field(default_factory=dict)
    # A v0 transaction (address lookup tables) rather than a legacy one. Known when it
    # lands: ``tx.message`` builds a new message object at every access, and getTransaction
    # asks this of every record it serves.
    versioned: bool = False
    # getTransaction answers already rendered, by (encoding, versioned): a record never
    # changes once landed (a fork drops it whole), so its answer is rendered once, as a
    # node reads a stored transaction instead of re-executing it.
    rendered: dict[tuple[str, bool], Any] = field(default_factory=dict)
    # getSignaturesForAddress entries already rendered, by confirmation status (the one
    # field of an entry that changes while the record stays).
    listed: dict[str, Any] = field(default_factory=dict)
    # Where the record stands in any address's history, as a node's blockstore orders it:
    # by slot, then by signature (its bytes) within the slot -- not by landing order.
    order: tuple[int, bytes] = (0, b"")


class History:
    """An address's transactions in a node's order (by slot, then by signature bytes), their
    order keys kept beside them: bisection runs in C with no key function to call (the
    System Program's history holds every transaction). Transactions land in slot order,
    so most are appended; one whose signature sorts before a slot-mate's is inserted."""

    __slots__ = ("orders", "records")

    def __init__(self, records: list[TxRecord] | None = None) -> None:
        self.records: list[TxRecord] = records or []
        self.orders: list[tuple[int, bytes]] = [record.order for record in self.records]

    def add(self, record: TxRecord) -> None:
        if not self.orders or record.order > self.orders[-1]:
            self.orders.append(record.order)
            self.records.append(record)
        else:
            at = bisect.bisect_right(self.orders, record.order)
            self.orders.insert(at, record.order)
            self.records.insert(at, record)


@dataclass(slots=True)
class Block:
    slot: int
    parent: int
    blockhash: str
    block_time: int
    transactions: list[TxRecord] = field(default_factory=list)


class Ledger:
    def __init__(self, *, finality_slots: int = 32, confirm_slots: int = 1,
                 clock: Callable[[], float] = time.time) -> None:
        if finality_slots < confirm_slots:
            raise ValueError("finality_slots must be >= confirm_slots")
        # LiteSVM accepts only its newest blockhash; a validator accepts any of the last
        # 150. The ledger keeps that window itself (``recent_hashes``).
        self.svm = LiteSVM().with_blockhash_check(False)
        self.finality_slots = finality_slots
        self.confirm_slots = confirm_slots
        self.clock = clock
        self.slot = FIRST_SLOT
        self.svm.warp_to_slot(self.slot)
        self.blocks: dict[int, Block] = {}
        self.dropped_slots: set[int] = set()
        self.dropped_signatures: set[str] = set()
        self.by_signature: dict[str, TxRecord] = {}
        self.by_address: dict[str, History] = {}
        self.token_accounts: dict[str, dict[str, str]] = {}  # owner -> {account: program}
        # blockhash -> its slot, oldest first: asked of every transaction sent, so a dict.
        self.recent_hashes: dict[str, int] = {}
        self.faucet = Keypair()
        self.svm.set_account(self.faucet.pubkey(),
                             Account(10**18, b"", Pubkey.from_string(SYSTEM_PROGRAM), False, 0))
        self.genesis_hash = str(self.svm.latest_blockhash())
        self._open = Block(self.slot, self.slot - 1, self.genesis_hash, int(self.clock()))
        self._remember_blockhash(self.genesis_hash)
        self.listeners: list[Callable[[TxRecord], None]] = []

    # -- commitment ---------------------------------------------------------------------
    def slot_at(self, commitment: str) -> int:
        if commitment == "processed":
            return self.slot
        if commitment == "confirmed":
            return max(0, self.slot - self.confirm_slots)
        return max(0, self.slot - self.finality_slots)

    def visible(self, record: TxRecord, commitment: str) -> bool:
        return record.slot <= self.slot_at(commitment)

    def level_of(self, slot: int) -> str:
        if slot <= self.slot_at("finalized"):
            return "finalized"
        if slot <= self.slot_at("confirmed"):
            return "confirmed"
        return "processed"

    # -- slots --------------------------------------------------------------------------
    def tick(self) -> Block:
        """Close the open slot and open the next one; returns the closed block."""
        closed = self._open
        self.blocks[closed.slot] = closed
        self.slot += 1
        self.svm.warp_to_slot(self.slot)
        self.svm.expire_blockhash()
        blockhash = str(self.svm.latest_blockhash())
        self._remember_blockhash(blockhash)
        self._open = Block(self.slot, closed.slot, blockhash, max(int(self.clock()), closed.block_time))
        return closed

    @property
    def latest_blockhash(self) -> tuple[str, int]:
        """(blockhash, lastValidBlockHeight)."""
        return self._open.blockhash, self.slot + MAX_BLOCKHASH_AGE

    def blockhash_valid(self, blockhash: str) -> bool:
        return blockhash in self.recent_hashes

    def _remember_blockhash(self, blockhash: str) -> None:
        self.recent_hashes[blockhash] = self.slot
        while len(self.recent_hashes) > MAX_BLOCKHASH_AGE:
            del self.recent_hashes[next(iter(self.recent_hashes))]

    # -- transactions -------------------------------------------------------------------
    def resolve_keys(self, tx: VersionedTransaction) -> tuple[list[str], list[str], list[str]]:
        """Static keys, then ALT-loaded writable, then loaded readonly (the runtime's order)."""
        message = tx.message
        static = [str(k) for k in message.account_keys]
        writable: list[str] = []
        readonly: list[str] = []
        for lookup in getattr(message, "address_table_lookups", None) or []:
            table = self.svm.get_account(lookup.account_key)
            if table is None:
                raise SendError(-32602, "invalid transaction: address table lookup not found")
            keys = [str(Pubkey(bytes(table.data[56 + 32 * i:88 + 32 * i])))
                    for i in range((len(table.data) - 56) // 32)]
            try:
                writable += [keys[i] for i in bytes(lookup.writable_indexes)]
                readonly += [keys[i] for i in bytes(lookup.readonly_indexes)]
            except IndexError:
                raise SendError(-32602, "invalid transaction: lookup index out of range") from None
        return static, writable, readonly

    def _token_balances(self, accounts: list[Account | None]) -> list[dict[str, Any]]:
        """The token balances of a transaction's accounts (in its key order), as read."""
        balances = []
        for index, account in enumerate(accounts):
            if account is None or account.owner not in _TOKEN_PROGRAM_KEYS or len(account.data) < 165:
                continue
            data = bytes(account.data)
            mint = Pubkey(data[0:32])
            owner = Pubkey(data[32:64])
            amount = int.from_bytes(data[64:72], "little")
            mint_account = self.svm.get_account(mint)
            decimals = bytes(mint_account.data)[44] if mint_account is not None else 0
            ui = amount / 10**decimals
            text = _ui_string(amount, decimals)
            balances.append({
                "accountIndex": index, "mint": str(mint), "owner": str(owner),
                "programId": str(account.owner),
                "uiTokenAmount": {"uiAmount": ui if amount else None, "decimals": decimals,
                                  "amount": str(amount), "uiAmountString": text},
            })
        return balances

    def simulate(self, tx: VersionedTransaction) -> tuple[Any, list[str], int]:
        result = self.svm.simulate_transaction(tx)
        if isinstance(result, FailedTransactionMetadata):
            meta = result.meta()
            return _error_json(result), list(meta.logs()), int(meta.compute_units_consumed())
        meta = result.meta()
        return None, list(meta.logs()), int(meta.compute_units_consumed())

    def send(self, tx: VersionedTransaction, *, skip_preflight: bool = False) -> str:
        """Execute ``tx`` in the open slot; returns its signature.

        With preflight, a failing transaction is refused (-32002) and never lands. Without,
        it lands as failed when its fee could be charged (as on a real cluster), and is
        silently dropped when it could not (its signature is returned, it never appears).
        """
        signature = str(tx.signatures[0])
        if signature in self.by_signature:
            return signature
        blockhash = str(tx.message.recent_blockhash)
        if not self.blockhash_valid(blockhash):
            if skip_preflight:
                return signature
            raise SendError(-32002, "Transaction simulation failed: Blockhash not found",
                            {"err": "BlockhashNotFound", "logs": [], "accounts": None,
                             "unitsConsumed": 0, "returnData": None})
        static, writable, readonly = self.resolve_keys(tx)
        keys = static + writable + readonly
        if not skip_preflight:
            err, logs, units = self.simulate(tx)
            if err is not None:
                raise SendError(-32002, f"Transaction simulation failed: {_describe(err)}",
                                {"err": err, "logs": logs, "accounts": None,
                                 "unitsConsumed": units, "returnData": None})
        # Each account read once before and once after (balances, token balances, and what
        # a fork restores), the keys parsed once.
        pubkeys = [Pubkey.from_string(k) for k in keys]
        before = [self.svm.get_account(pubkey) for pubkey in pubkeys]
        pre_accounts = dict(zip(keys, before, strict=True))
        pre_balances = [a.lamports if a is not None else 0 for a in before]
        pre_tokens = self._token_balances(before)
        result = self.svm.send_transaction(tx)
        after = [self.svm.get_account(pubkey) for pubkey in pubkeys]
        post_balances = [a.lamports if a is not None else 0 for a in after]
        if isinstance(result, FailedTransactionMetadata):
            if post_balances[0] >= pre_balances[0]:
                return signature  # rejected before execution: never lands (fee not charged)
            meta = result.meta()
            err = _error_json(result)
        else:
            meta = result
            err = None
        record = TxRecord(
            signature=signature, slot=self.slot, block_time=self._open.block_time, tx=tx,
            account_keys=keys, loaded_writable=writable, loaded_readonly=readonly, err=err,
            fee=int(meta.fee()), logs=list(meta.logs()), inner=_inner_json(meta),
            compute_units=int(meta.compute_units_consumed()), pre_balances=pre_balances,
            post_balances=post_balances, pre_tokens=pre_tokens,
            post_tokens=self._token_balances(after), memos=_memos(tx, keys),
            pre_accounts=pre_accounts, versioned=isinstance(tx.message, MessageV0),
            order=(self.slot, bytes(tx.signatures[0])),
        )
        self._open.transactions.append(record)
        self.by_signature[signature] = record
        for balance in record.post_tokens:
            self.token_accounts.setdefault(balance["owner"], {})[
                keys[balance["accountIndex"]]] = balance["programId"]
        for key in dict.fromkeys(keys):
            history = self.by_address.get(key)
            if history is None:
                history = self.by_address[key] = History()
            history.add(record)
        for listener in self.listeners:
            listener(record)
        return signature

    def airdrop(self, to: Pubkey, lamports: int) -> str:
        """A real transfer from the faucet, so it is indexable like any other."""
        message = MessageV0.try_compile(
            self.faucet.pubkey(),
            [transfer(TransferParams(from_pubkey=self.faucet.pubkey(), to_pubkey=to, lamports=lamports))],
            [], Hash.from_string(self._open.blockhash))
        return self.send(VersionedTransaction(message, [self.faucet]), skip_preflight=True)

    # -- queries ------------------------------------------------------------------------
    def transaction(self, signature: str, commitment: str) -> TxRecord | None:
        record = self.by_signature.get(signature)
        if record is None or not self.visible(record, commitment):
            return None
        return record

    def signatures_for(self, address: str, *, commitment: str, before: str | None,
                       until: str | None, limit: int) -> list[TxRecord]:
        """Newest first; ``before`` and ``until`` exclusive.

        As a node's blockstore does, ``before`` and ``until`` bound the listing by where
        their transactions stand in the ledger, whichever addresses they touch: a
        ``before`` not visible at ``commitment`` lists nothing, an ``until`` not visible
        lists the whole history (agave's ``get_confirmed_signatures_for_address2``).
        Within a slot, a node lists by signature (descending bytes), not in the order the
        transactions ran.

        An address's history is kept in that order (slots ascend): the records visible at
        ``commitment`` and the bounds are found by bisection, as a node's index finds them,
        not by walking every newer record (a backfill's pages got slower the deeper they
        went)."""
        history = self.by_address.get(address)
        if history is None:
            return []
        orders = history.orders
        end = bisect.bisect_left(orders, (self.slot_at(commitment) + 1,))  # past the visible
        if before is not None:
            anchor = self.transaction(before, commitment)
            if anchor is None:
                return []
            end = bisect.bisect_left(orders, anchor.order, 0, end)
        start = 0
        if until is not None and (floor := self.transaction(until, commitment)) is not None:
            start = bisect.bisect_right(orders, floor.order, 0, end)
        return history.records[max(start, end - limit):end][::-1]

    def block(self, slot: int) -> Block | None:
        return None if slot in self.dropped_slots else self.blocks.get(slot)

    # -- forks --------------------------------------------------------------------------
    def drop_from(self, slot: int) -> list[str]:
        """Drop ``slot`` and every later slot (a fork switch); returns the dropped signatures."""
        if slot <= self.slot_at("finalized"):
            raise ValueError(f"slot {slot} is finalized and cannot be forked away")
        doomed = [r for s in sorted(self.blocks) if s >= slot for r in self.blocks[s].transactions]
        doomed += [r for r in self._open.transactions if self._open.slot >= slot]
        restored: set[str] = set()
        for record in reversed(doomed):
            for key, account in record.pre_accounts.items():
                pubkey = Pubkey.from_string(key)
                if account is not None:
                    self.svm.set_account(pubkey, account)
                    restored.add(key)
                elif self.svm.get_account(pubkey) is not None:
                    self.svm.set_account(pubkey, Account(0, b"", Pubkey.default(), False, 0))
        dropped = {r.signature for r in doomed}
        for record in doomed:
            self.by_signature.pop(record.signature, None)
            for key in dict.fromkeys(record.account_keys):
                if (history := self.by_address.get(key)) is not None:
                    self.by_address[key] = History([r for r in history.records
                                                    if r.signature not in dropped])
        for s in [s for s in self.blocks if s >= slot]:
            self.dropped_slots.add(s)
            self.blocks[s].transactions.clear()
        if self._open.slot >= slot:
            self._open.transactions.clear()
        self.dropped_signatures |= dropped
        return [r.signature for r in doomed]


def _ui_string(amount: int, decimals: int) -> str:
    if decimals == 0:
        return str(amount)
    text = str(amount).rjust(decimals + 1, "0")
    whole, frac = text[:-decimals], text[-decimals:].rstrip("0")
    return f"{whole}.{frac}" if frac else whole


def _error_json(result: FailedTransactionMetadata) -> Any:
    return orjson.loads(result.to_json())["err"]


def _describe(err: Any) -> str:
    if isinstance(err, dict) and "InstructionError" in err:
        index, inner = err["InstructionError"]
        return f"Error processing Instruction {index}: {inner}"
    return str(err)


def _inner_json(meta: TransactionMetadata) -> list[list[Any]]:
    groups = []
    for group in meta.inner_instructions():
        rendered = []
        for inner in group:
            compiled = inner.instruction()
            rendered.append({"programIdIndex": compiled.program_id_index,
                             "accounts": list(bytes(compiled.accounts)),
                             "data": bytes(compiled.data), "stackHeight": inner.stack_height()})
        groups.append(rendered)
    return groups


def _memos(tx: VersionedTransaction, keys: list[str]) -> list[str]:
    memos = []
    for ix in tx.message.instructions:
        if keys[ix.program_id_index] in MEMO_PROGRAMS:
            memos.append(bytes(ix.data).decode("utf-8", "replace"))
    return memos


def signature_of(text: str) -> Signature:
    return Signature.from_string(text)
