"""Table-driven tests of the classification rules (DESIGN section 4), in all three encodings.

``TxBuilder`` writes one transaction the way a node would serve it: ``json`` (indexes,
base58 data, loadedAddresses), ``jsonParsed`` (parsed System/Token/Memo instructions,
account objects with lookup-table sources) and ``base64`` (real wire bytes built with
solders, meta as in ``json``). Every rule is checked on every encoding, so the three
decoders cannot drift apart.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
from solders.hash import Hash
from solders.instruction import CompiledInstruction
from solders.message import Message, MessageAddressTableLookup, MessageHeader, MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.transaction import VersionedTransaction

from indexer.decode import DecodedTransaction, decode_transaction, decode_transaction_bytes
from indexer.decode import transaction as decoder
from indexer.decode.base58 import b58encode
from indexer.errors import DecodeError

SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105  (a program id)
TOKEN_2022 = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"  # noqa: S105  (a program id)
MEMO_V1 = "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"
MEMO_V2 = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
ATA = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"


def address(n: int) -> str:
    """A deterministic, valid base58 public key."""
    return str(Pubkey(bytes([n]) * 32))


PAYER = address(1)
AGENT = address(2)
AGENT_B = address(3)
USER = address(4)
USER_2 = address(5)
ROUTER = address(6)  # some program that transfers by CPI
AGENT_USDC = address(12)
AGENT_B_USDC = address(13)
USER_USDC = address(14)
USER_2_USDC = address(15)
TASK = UUID("3f2b8c1e-5d4a-4b6f-9c7e-1a2b3c4d5e6f")
SIG = str(Signature(bytes([7]) * 64))
PROGRAM_NAMES = {
    SYSTEM: "system",
    TOKEN: "spl-token",
    TOKEN_2022: "spl-token-2022",
    MEMO_V1: "spl-memo",
    MEMO_V2: "spl-memo",
    ATA: "spl-associated-token-account",
}


@dataclass
class _Ix:
    program: str
    accounts: list[str]
    data: bytes
    parsed: Any  # the jsonParsed "parsed" value, or None for an unparsed instruction
    signers: tuple[str, ...] = ()


@dataclass
class TxBuilder:
    """Builds one realistic getTransaction result; ``render(encoding)`` serves it."""

    fee_payer: str = PAYER
    err: Any = None
    version: Any = "legacy"  # "legacy", 0, or None for the field to be absent
    fee: int = 5000
    slot: int = 250_000_000
    block_time: int | None = 1_700_000_000
    lookup: set[str] = field(default_factory=set)  # addresses loaded from a lookup table
    outer: list[_Ix] = field(default_factory=list)
    inner: dict[int, list[_Ix]] = field(default_factory=dict)
    token_accounts: dict[str, tuple[str | None, str, int, int]] = field(default_factory=dict)
    _parent: int | None = None

    # ------------------------------------------------------------------ building
    def _add(self, ix: _Ix) -> TxBuilder:
        if self._parent is None:
            self.outer.append(ix)
        else:
            self.inner.setdefault(self._parent, []).append(ix)
        return self

    def cpi(self, program: str = ROUTER) -> TxBuilder:
        """Start a top-level instruction of ``program``; following calls are its CPIs."""
        self.outer.append(_Ix(program, [self.fee_payer], b"\x01", None))
        self._parent = len(self.outer) - 1
        return self

    def top(self) -> TxBuilder:
        """Back to adding top-level instructions."""
        self._parent = None
        return self

    def sol(self, source: str, destination: str, lamports: int) -> TxBuilder:
        data = (2).to_bytes(4, "little") + lamports.to_bytes(8, "little")
        info = {"destination": destination, "lamports": lamports, "source": source}
        return self._add(
            _Ix(SYSTEM, [source, destination], data, {"info": info, "type": "transfer"}, (source,))
        )

    def sol_with_seed(self, source: str, base: str, destination: str, lamports: int) -> TxBuilder:
        seed = b"amoca"
        data = (
            (11).to_bytes(4, "little")
            + lamports.to_bytes(8, "little")
            + len(seed).to_bytes(8, "little")
            + seed
            + bytes(Pubkey.from_string(SYSTEM))
        )
        info = {
            "destination": destination,
            "lamports": lamports,
            "source": source,
            "sourceBase": base,
            "sourceOwner": SYSTEM,
            "sourceSeed": "amoca",
        }
        return self._add(
            _Ix(
                SYSTEM, [source, base, destination], data, {"info": info, "type": "transferWithSeed"}, (base,)
            )
        )

    def token_account(
        self, account: str, owner: str | None, mint: str = USDC, decimals: int = 6, balance: int = 10_000_000
    ) -> TxBuilder:
        self.token_accounts[account] = (owner, mint, decimals, balance)
        return self

    def token(
        self, source: str, destination: str, authority: str, amount: int, program: str = TOKEN
    ) -> TxBuilder:
        data = b"\x03" + amount.to_bytes(8, "little")
        info = {"amount": str(amount), "authority": authority, "destination": destination, "source": source}
        return self._add(
            _Ix(
                program,
                [source, destination, authority],
                data,
                {"info": info, "type": "transfer"},
                (authority,),
            )
        )

    def token_checked(
        self,
        source: str,
        destination: str,
        authority: str,
        amount: int,
        mint: str = USDC,
        decimals: int = 6,
        program: str = TOKEN,
    ) -> TxBuilder:
        data = b"\x0c" + amount.to_bytes(8, "little") + bytes([decimals])
        info = {
            "authority": authority,
            "destination": destination,
            "mint": mint,
            "source": source,
            "tokenAmount": _ui_amount(amount, decimals),
        }
        return self._add(
            _Ix(
                program,
                [source, mint, destination, authority],
                data,
                {"info": info, "type": "transferChecked"},
                (authority,),
            )
        )

    def memo(self, text: str | bytes, program: str = MEMO_V2) -> TxBuilder:
        data = text.encode() if isinstance(text, str) else text
        try:
            parsed: Any = data.decode("utf-8")
        except UnicodeDecodeError:
            parsed = None  # the node's memo parser fails: jsonParsed shows raw data
        return self._add(_Ix(program, [], data, parsed))

    def create_account(self, source: str, new: str, lamports: int) -> TxBuilder:
        data = (
            (0).to_bytes(4, "little")
            + lamports.to_bytes(8, "little")
            + (165).to_bytes(8, "little")
            + bytes(32)
        )
        info = {"lamports": lamports, "newAccount": new, "owner": TOKEN, "source": source, "space": 165}
        return self._add(
            _Ix(SYSTEM, [source, new], data, {"info": info, "type": "createAccount"}, (source, new))
        )

    # ------------------------------------------------------------------ rendering
    def _all(self) -> list[_Ix]:
        return [*self.outer, *(ix for ixs in self.inner.values() for ix in ixs)]

    def _keys(self) -> tuple[list[str], list[str], int, int]:
        """(static keys, loaded writable keys, signer count, readonly-unsigned count)."""
        signers = [self.fee_payer]
        writable: list[str] = []
        readonly: list[str] = []
        programs = {ix.program for ix in self._all()}
        for ix in self._all():
            for signer in ix.signers:
                if signer not in signers and signer not in self.lookup:
                    signers.append(signer)
        for ix in self._all():
            for account in [*ix.accounts, ix.program]:
                if account in signers or account in writable or account in readonly:
                    continue
                if account in programs or account == USDC:
                    readonly.append(account)
                elif account not in self.lookup:
                    writable.append(account)
        for account in self.token_accounts:
            if account not in signers and account not in writable and account not in self.lookup:
                writable.append(account)
        loaded = sorted(self.lookup)
        return [*signers, *writable, *readonly], loaded, len(signers), len(readonly)

    def _meta(self, keys: list[str], parsed: bool) -> dict[str, Any]:
        pre = [10_000_000_000] * len(keys)
        post = list(pre)
        post[0] -= self.fee
        if self.err is None:
            for ix in self._all():
                if ix.program == SYSTEM and ix.parsed and ix.parsed["type"].startswith("transfer"):
                    info = ix.parsed["info"]
                    post[keys.index(info["source"])] -= info["lamports"]
                    post[keys.index(info["destination"])] += info["lamports"]
        token_pre, token_post = [], []
        for account, (owner, mint, decimals, balance) in self.token_accounts.items():
            entry: dict[str, Any] = {
                "accountIndex": keys.index(account),
                "mint": mint,
                "programId": TOKEN,
                "uiTokenAmount": _ui_amount(balance, decimals),
            }
            if owner is not None:
                entry["owner"] = owner
            token_pre.append(entry)
            token_post.append(dict(entry))
        inner = []
        for index, ixs in sorted(self.inner.items()):
            rendered = [self._render_ix(ix, keys, parsed, stack_height=2) for ix in ixs]
            inner.append({"index": index, "instructions": rendered})
        meta: dict[str, Any] = {
            "computeUnitsConsumed": 1500,
            "err": self.err,
            "fee": self.fee,
            "innerInstructions": inner,
            "logMessages": [],
            "postBalances": post,
            "postTokenBalances": token_post,
            "preBalances": pre,
            "preTokenBalances": token_pre,
            "rewards": [],
            "status": {"Ok": None} if self.err is None else {"Err": self.err},
        }
        return meta

    def _render_ix(self, ix: _Ix, keys: list[str], parsed: bool, stack_height: int | None) -> dict[str, Any]:
        if parsed:
            if ix.parsed is not None and ix.program in PROGRAM_NAMES:
                return {
                    "parsed": ix.parsed,
                    "program": PROGRAM_NAMES[ix.program],
                    "programId": ix.program,
                    "stackHeight": stack_height,
                }
            return {
                "accounts": list(ix.accounts),
                "data": b58encode(ix.data),
                "programId": ix.program,
                "stackHeight": stack_height,
            }
        return {
            "accounts": [keys.index(a) for a in ix.accounts],
            "data": b58encode(ix.data),
            "programIdIndex": keys.index(ix.program),
            "stackHeight": stack_height,
        }

    def render(self, encoding: str) -> dict[str, Any]:
        static, loaded, signer_count, readonly_count = self._keys()
        keys = [*static, *loaded]
        signatures = [SIG] + [str(Signature(bytes([8 + i]) * 64)) for i in range(signer_count - 1)]
        result: dict[str, Any] = {"blockTime": self.block_time, "slot": self.slot}
        if self.version is not None:
            result["version"] = self.version
        lookups = (
            [{"accountKey": address(99), "readonlyIndexes": [], "writableIndexes": list(range(len(loaded)))}]
            if loaded
            else []
        )
        if encoding == "jsonParsed":
            meta = self._meta(keys, parsed=True)
            account_keys = [
                {
                    "pubkey": key,
                    "signer": i < signer_count,
                    "source": "lookupTable" if key in loaded else "transaction",
                    "writable": i < signer_count or key not in static[len(static) - readonly_count :],
                }
                for i, key in enumerate(keys)
            ]
            message: dict[str, Any] = {
                "accountKeys": account_keys,
                "instructions": [self._render_ix(ix, keys, True, None) for ix in self.outer],
                "recentBlockhash": str(Hash(bytes([9]) * 32)),
            }
            if self.version == 0:
                message["addressTableLookups"] = lookups
            result["meta"] = meta
            result["transaction"] = {"message": message, "signatures": signatures}
            return result
        meta = self._meta(keys, parsed=False)
        meta["loadedAddresses"] = {"readonly": [], "writable": loaded}
        if encoding == "json":
            message = {
                "accountKeys": static,
                "header": {
                    "numReadonlySignedAccounts": 0,
                    "numReadonlyUnsignedAccounts": readonly_count,
                    "numRequiredSignatures": signer_count,
                },
                "instructions": [self._render_ix(ix, keys, False, None) for ix in self.outer],
                "recentBlockhash": str(Hash(bytes([9]) * 32)),
            }
            if self.version == 0:
                message["addressTableLookups"] = lookups
            result["meta"] = meta
            result["transaction"] = {"message": message, "signatures": signatures}
            return result
        assert encoding == "base64"
        compiled = [
            CompiledInstruction(
                program_id_index=keys.index(ix.program),
                accounts=bytes(keys.index(a) for a in ix.accounts),
                data=ix.data,
            )
            for ix in self.outer
        ]
        pubkeys = [Pubkey.from_string(k) for k in static]
        blockhash = Hash(bytes([9]) * 32)
        wire_message: Message | MessageV0
        if self.version == 0:
            header = MessageHeader(signer_count, 0, readonly_count)
            table = [
                MessageAddressTableLookup(Pubkey.from_string(address(99)), bytes(range(len(loaded))), b"")
            ]
            wire_message = MessageV0(header, pubkeys, blockhash, compiled, table if loaded else [])
        else:
            assert not loaded, "lookup tables need version 0"
            wire_message = Message.new_with_compiled_instructions(
                signer_count, 0, readonly_count, pubkeys, blockhash, compiled
            )
        wire = VersionedTransaction.populate(wire_message, [Signature.from_string(s) for s in signatures])
        result["meta"] = meta
        result["transaction"] = [base64.b64encode(bytes(wire)).decode(), "base64"]
        return result


def _ui_amount(amount: int, decimals: int) -> dict[str, Any]:
    ui = Decimal(amount).scaleb(-decimals)
    return {
        "amount": str(amount),
        "decimals": decimals,
        "uiAmount": float(ui) if amount else None,
        "uiAmountString": format(ui.normalize(), "f") if amount else "0",
    }


ENCODINGS = ("json", "jsonParsed", "base64")


@pytest.fixture(params=ENCODINGS)
def encoding(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def decode(
    builder: TxBuilder,
    encoding: str,
    watched: set[str] | None = None,
    task_owner: Callable[[UUID], str | None] | None = None,
) -> DecodedTransaction:
    return decode_transaction(builder.render(encoding), watched or {AGENT}, task_owner=task_owner)


def payment_memo(kind: str = "payment") -> str:
    return {
        "funding": "amoca:1:funding",
        "payment": f"amoca:1:payment;task={TASK}",
        "subscription": "amoca:1:subscription;period=2025-03",
        "refund": f"amoca:1:refund;task={TASK};refund_of={SIG}",
    }[kind]


# ---------------------------------------------------------------- the table, row by row
@pytest.mark.parametrize("kind", ["funding", "payment", "subscription"])
def test_into_agent_with_memo_takes_the_memo_type(encoding: str, kind: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=USER).sol(USER, AGENT, 250_000_000).memo(payment_memo(kind)), encoding
    )
    (row,) = decoded.rows
    assert (row.transaction_type, row.direction, row.agent_wallet, row.counterparty_wallet) == (
        kind,
        "in",
        AGENT,
        USER,
    )
    assert row.amount_raw == 250_000_000
    assert row.amount == Decimal("0.25")
    assert row.mint is None
    assert row.decimals == 9
    assert row.memo == payment_memo(kind)
    assert row.memo_rejection is None
    assert row.task_id == (TASK if kind == "payment" else None)
    assert row.period == ("2025-03" if kind == "subscription" else None)
    assert row.status == "pending"
    assert row.fee_payer == USER
    assert decoded.memo_rejection is None


@pytest.mark.parametrize(
    ("memo", "reason"),
    [
        (None, None),
        ("thanks!", "not_amoca"),
        ("amoca:2:payment", "unknown_version"),
        ("amoca:1:payment", "missing_key"),
        ("amoca:1:tip", "unknown_type"),
    ],
)
def test_into_agent_without_valid_memo_is_funding(
    encoding: str, memo: str | None, reason: str | None
) -> None:
    builder = TxBuilder(fee_payer=USER).sol(USER, AGENT, 1_000)
    if memo is not None:
        builder.memo(memo)
    decoded = decode(builder, encoding)
    (row,) = decoded.rows
    assert row.transaction_type == "funding"
    assert row.task_id is None
    assert row.memo == memo
    assert row.memo_rejection == reason
    assert (decoded.memo_rejection.reason if decoded.memo_rejection else None) == reason


def test_into_agent_with_refund_memo_is_funding(encoding: str) -> None:
    decoded = decode(TxBuilder(fee_payer=USER).sol(USER, AGENT, 1_000).memo(payment_memo("refund")), encoding)
    (row,) = decoded.rows
    assert (row.transaction_type, row.direction, row.task_id, row.refund_of) == ("funding", "in", None, None)


def test_out_of_agent_with_refund_memo_is_refund_to_the_user(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=AGENT).sol(AGENT, USER, 40_000).memo(payment_memo("refund")), encoding
    )
    (row,) = decoded.rows
    assert (row.transaction_type, row.direction, row.agent_wallet, row.counterparty_wallet) == (
        "refund",
        "out",
        AGENT,
        USER,
    )
    assert row.task_id == TASK
    assert row.refund_of == SIG
    assert row.amount == Decimal("0.00004")
    assert decoded.skipped == ()


@pytest.mark.parametrize(
    "memo",
    [None, "amoca:1:payment;task=3f2b8c1e-5d4a-4b6f-9c7e-1a2b3c4d5e6f", "amoca:1:refund", "refund please"],
)
def test_out_of_agent_without_refund_memo_is_skipped(encoding: str, memo: str | None) -> None:
    builder = TxBuilder(fee_payer=AGENT).sol(AGENT, USER, 40_000)
    if memo is not None:
        builder.memo(memo)
    decoded = decode(builder, encoding)
    assert decoded.rows == ()
    (skip,) = decoded.skipped
    assert (skip.agent_wallet, skip.reason, skip.leg.amount_raw) == (AGENT, "outgoing_not_refund", 40_000)


def test_unwatched_transfer_makes_nothing(encoding: str) -> None:
    decoded = decode(TxBuilder(fee_payer=USER).sol(USER, USER_2, 5).memo(payment_memo()), encoding)
    assert (decoded.rows, decoded.skipped, decoded.unattributed, decoded.conflicts) == ((), (), (), ())
    assert decoded.memo == payment_memo()


# ---------------------------------------------------------------- summation and legs
def test_legs_to_one_agent_are_summed_and_kept(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER)
        .sol(USER, AGENT, 100)
        .sol(USER_2, AGENT, 300)
        .sol(USER, AGENT, 250)
        .memo(payment_memo())
    )
    (row,) = decode(builder, encoding).rows
    assert row.amount_raw == 650
    assert row.amount == Decimal("0.00000065")
    assert [leg.amount_raw for leg in row.legs] == [100, 300, 250]
    assert [leg.instruction_index for leg in row.legs] == [0, 1, 2]
    assert row.counterparty_wallet == USER  # 350 from USER beats 300 from USER_2


def test_counterparty_tie_goes_to_first_appearance(encoding: str) -> None:
    builder = TxBuilder(fee_payer=USER).sol(USER_2, AGENT, 300).sol(USER, AGENT, 300)
    (row,) = decode(builder, encoding).rows
    assert row.counterparty_wallet == USER_2


def test_transfer_with_seed_is_a_leg(encoding: str) -> None:
    derived = address(20)
    decoded = decode(TxBuilder(fee_payer=USER).sol_with_seed(derived, USER, AGENT, 77), encoding)
    (row,) = decoded.rows
    assert (row.amount_raw, row.counterparty_wallet) == (77, derived)
    assert row.legs[0].instruction == "transferWithSeed"


def test_inner_instruction_legs_are_found(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER)
        .cpi(ROUTER)
        .sol(USER, AGENT, 500)
        .sol(USER, USER_2, 9)
        .top()
        .memo(payment_memo())
    )
    decoded = decode(builder, encoding)
    (row,) = decoded.rows
    assert row.transaction_type == "payment"
    (leg,) = row.legs
    assert (leg.inner, leg.instruction_index, leg.inner_index) == (True, 0, 0)


def test_memo_inside_a_cpi_counts(encoding: str) -> None:
    builder = TxBuilder(fee_payer=USER).sol(USER, AGENT, 500).cpi(ROUTER).memo(payment_memo())
    (row,) = decode(builder, encoding).rows
    assert row.transaction_type == "payment"


def test_memo_v1_program_is_read(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER).sol(USER, AGENT, 500).memo(payment_memo("subscription"), program=MEMO_V1)
    )
    (row,) = decode(builder, encoding).rows
    assert (row.transaction_type, row.period) == ("subscription", "2025-03")


def test_non_amoca_wallet_memo_beside_amoca_memo_is_ignored(encoding: str) -> None:
    builder = TxBuilder(fee_payer=USER).sol(USER, AGENT, 500).memo("sent from my wallet").memo(payment_memo())
    decoded = decode(builder, encoding)
    assert decoded.rows[0].transaction_type == "payment"
    assert decoded.memo == payment_memo()


def test_two_different_amoca_memos_are_no_valid_memo(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER)
        .sol(USER, AGENT, 500)
        .memo(payment_memo())
        .memo(payment_memo("subscription"))
    )
    decoded = decode(builder, encoding)
    assert decoded.rows[0].transaction_type == "funding"
    assert decoded.memo_rejection is not None
    assert decoded.memo_rejection.reason == "multiple_memos"


def test_non_utf8_memo_is_rejected_not_fatal(encoding: str) -> None:
    decoded = decode(TxBuilder(fee_payer=USER).sol(USER, AGENT, 500).memo(b"amoca:1:\xff"), encoding)
    assert decoded.rows[0].transaction_type == "funding"
    assert decoded.memo_rejection is not None
    assert decoded.memo_rejection.reason == "not_utf8"


# ---------------------------------------------------------------- tokens
def test_token_transfer_checked_resolves_owners(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER)
        .token_account(USER_USDC, USER)
        .token_account(AGENT_USDC, AGENT)
        .token_checked(USER_USDC, AGENT_USDC, USER, 2_500_000)
        .memo(payment_memo())
    )
    (row,) = decode(builder, encoding).rows
    assert (row.transaction_type, row.counterparty_wallet, row.mint, row.decimals) == (
        "payment",
        USER,
        USDC,
        6,
    )
    assert row.amount_raw == 2_500_000
    assert row.amount == Decimal("2.5")
    (leg,) = row.legs
    assert (leg.program, leg.instruction) == ("spl-token", "transferChecked")
    assert (leg.source_account, leg.destination_account) == (USER_USDC, AGENT_USDC)
    assert (leg.source_wallet, leg.destination_wallet) == (USER, AGENT)


def test_token_transfer_unchecked_takes_mint_from_balances(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER)
        .token_account(USER_USDC, USER)
        .token_account(AGENT_USDC, AGENT)
        .token(USER_USDC, AGENT_USDC, USER, 1_234_567)
    )
    (row,) = decode(builder, encoding).rows
    assert (row.mint, row.decimals, row.amount) == (USDC, 6, Decimal("1.234567"))
    assert row.legs[0].instruction == "transfer"


def test_token_2022_transfer_checked(encoding: str) -> None:
    mint = address(30)
    builder = (
        TxBuilder(fee_payer=USER)
        .token_account(USER_USDC, USER, mint, 2)
        .token_account(AGENT_USDC, AGENT, mint, 2)
        .token_checked(USER_USDC, AGENT_USDC, USER, 199, mint=mint, decimals=2, program=TOKEN_2022)
    )
    (row,) = decode(builder, encoding).rows
    assert (row.mint, row.amount, row.legs[0].program) == (mint, Decimal("1.99"), "spl-token-2022")


def test_token_refund_out_of_agent(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=AGENT)
        .token_account(AGENT_USDC, AGENT)
        .token_account(USER_USDC, USER)
        .token_checked(AGENT_USDC, USER_USDC, AGENT, 500_000)
        .memo(payment_memo("refund"))
    )
    (row,) = decode(builder, encoding).rows
    assert (row.transaction_type, row.direction, row.counterparty_wallet, row.mint) == (
        "refund",
        "out",
        USER,
        USDC,
    )


def test_token_leg_without_owner_is_unattributed(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=AGENT)
        .token_account(AGENT_USDC, None)
        .token_account(USER_USDC, USER)
        .token(AGENT_USDC, USER_USDC, AGENT, 42)
    )
    decoded = decode(builder, encoding)
    assert decoded.rows == ()
    (leg,) = decoded.unattributed
    assert (leg.reason, leg.amount_raw, leg.authority, leg.mint) == ("token_owner_unknown", 42, AGENT, USDC)
    assert leg.source_wallet is None
    assert leg.destination_wallet == USER


def test_token_leg_missing_from_balances_is_unattributed_when_agent_is_the_owner(encoding: str) -> None:
    builder = TxBuilder(fee_payer=USER).token_account(AGENT_USDC, AGENT).token(USER_USDC, AGENT_USDC, USER, 7)
    (leg,) = decode(builder, encoding).unattributed
    assert (leg.destination_wallet, leg.source_wallet) == (AGENT, None)


def test_unattributed_legs_of_strangers_are_not_reported(encoding: str) -> None:
    builder = TxBuilder(fee_payer=USER).token(USER_USDC, USER_2_USDC, USER, 7)
    assert decode(builder, encoding).unattributed == ()


# ---------------------------------------------------------------- agents, conflicts, status
def test_agent_to_agent_payment_gives_the_receiver_a_row(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=AGENT_B).sol(AGENT_B, AGENT, 900).memo(payment_memo()),
        encoding,
        watched={AGENT, AGENT_B},
    )
    (row,) = decoded.rows
    assert (row.agent_wallet, row.transaction_type, row.counterparty_wallet) == (AGENT, "payment", AGENT_B)
    (skip,) = decoded.skipped
    assert (skip.agent_wallet, skip.reason) == (AGENT_B, "outgoing_not_refund")


def test_agent_to_agent_refund_gives_both_a_row(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=AGENT_B).sol(AGENT_B, AGENT, 900).memo(payment_memo("refund")),
        encoding,
        watched={AGENT, AGENT_B},
    )
    kinds = {(row.agent_wallet, row.transaction_type, row.direction) for row in decoded.rows}
    assert kinds == {(AGENT, "funding", "in"), (AGENT_B, "refund", "out")}
    assert decoded.conflicts == ()


def test_sol_and_token_to_one_agent_are_flagged_as_conflict(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER)
        .token_account(USER_USDC, USER)
        .token_account(AGENT_USDC, AGENT)
        .sol(USER, AGENT, 10)
        .token_checked(USER_USDC, AGENT_USDC, USER, 20)
        .memo(payment_memo())
    )
    decoded = decode(builder, encoding)
    assert [(row.mint, row.amount_raw) for row in decoded.rows] == [(None, 10), (USDC, 20)]
    assert decoded.conflicts == (AGENT,)


def test_self_transfer_and_zero_amount_are_skipped(encoding: str) -> None:
    decoded = decode(TxBuilder(fee_payer=AGENT).sol(AGENT, AGENT, 10).sol(USER, AGENT, 0), encoding)
    assert decoded.rows == ()
    assert [skip.reason for skip in decoded.skipped] == ["self_transfer", "zero_amount"]


def test_rent_paid_inside_ata_creation_is_not_a_payment(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=AGENT)
        .cpi(ATA)
        .sol(AGENT, USER_USDC, 2_039_280)
        .top()
        .token_account(AGENT_USDC, AGENT)
        .token_account(USER_USDC, USER)
        .token_checked(AGENT_USDC, USER_USDC, AGENT, 5)
        .memo(payment_memo("refund"))
    )
    decoded = decode(builder, encoding)
    (row,) = decoded.rows
    assert (row.mint, row.transaction_type) == (USDC, "refund")
    (skip,) = decoded.skipped
    assert (skip.reason, skip.leg.amount_raw) == ("account_rent", 2_039_280)
    assert decoded.conflicts == ()


def test_create_account_is_not_a_transfer(encoding: str) -> None:
    decoded = decode(TxBuilder(fee_payer=USER).create_account(USER, AGENT, 2_039_280), encoding)
    assert (decoded.rows, decoded.skipped) == ((), ())


def test_failed_transaction_rows_are_failed(encoding: str) -> None:
    err = {"InstructionError": [0, {"Custom": 1}]}
    decoded = decode(
        TxBuilder(fee_payer=USER, err=err).sol(USER, AGENT, 5_000).memo(payment_memo()), encoding
    )
    assert decoded.status_seed == "failed"
    assert decoded.err == err
    (row,) = decoded.rows
    assert (row.status, row.transaction_type, row.amount_raw) == ("failed", "payment", 5_000)


def test_v0_with_lookup_table_resolves_loaded_accounts(encoding: str) -> None:
    builder = TxBuilder(fee_payer=USER, version=0, lookup={AGENT}).sol(USER, AGENT, 123).memo(payment_memo())
    decoded = decode(builder, encoding)
    assert decoded.version == 0
    (row,) = decoded.rows
    assert (row.agent_wallet, row.amount_raw, row.transaction_type) == (AGENT, 123, "payment")


def test_v0_token_balance_on_a_loaded_account(encoding: str) -> None:
    builder = (
        TxBuilder(fee_payer=USER, version=0, lookup={AGENT_USDC})
        .token_account(USER_USDC, USER)
        .token_account(AGENT_USDC, AGENT)
        .token_checked(USER_USDC, AGENT_USDC, USER, 64)
    )
    (row,) = decode(builder, encoding).rows
    assert (row.agent_wallet, row.mint, row.amount_raw) == (AGENT, USDC, 64)


def test_metadata_and_json_dicts_are_plain_json(encoding: str) -> None:
    decoded = decode(TxBuilder(fee_payer=USER).sol(USER, AGENT, 1).memo(payment_memo()), encoding)
    document = decoded.to_json_dict()
    row = document["rows"][0]
    assert (row["amount"], row["amount_raw"], row["task_id"]) == ("0.000000001", "1", str(TASK))
    metadata = decoded.rows[0].metadata_dict()
    assert metadata["legs"][0]["amount_raw"] == "1"
    assert (metadata["memo"], metadata["fee_payer"]) == (payment_memo(), USER)


def test_the_three_encodings_decode_to_the_same_result() -> None:
    builder = (
        TxBuilder(fee_payer=USER, version=0, lookup={USER_2})
        .token_account(USER_USDC, USER)
        .token_account(AGENT_USDC, AGENT)
        .sol(USER, AGENT, 10)
        .cpi(ROUTER)
        .token(USER_USDC, AGENT_USDC, USER, 20)
        .sol(USER_2, AGENT, 5)
        .top()
        .memo(payment_memo())
    )
    results = []
    for encoding in ENCODINGS:
        document = decode(builder, encoding).to_json_dict()
        del document["encoding"]
        results.append(document)
    assert results[0] == results[1] == results[2]
    assert results[0]["conflicts"] == [AGENT]


# ---------------------------------------------------------------- task ownership
def test_payment_for_a_task_of_another_agent_is_no_valid_memo(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=USER).sol(USER, AGENT, 5).memo(payment_memo()),
        encoding,
        task_owner={TASK: AGENT_B}.get,
    )
    (row,) = decoded.rows
    assert (row.transaction_type, row.task_id, row.memo_rejection) == ("funding", None, "task_agent_mismatch")
    assert decoded.memo_rejection is not None
    assert decoded.memo_rejection.reason == "task_agent_mismatch"


def test_task_check_is_per_agent(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=USER).sol(USER, AGENT, 5).sol(USER, AGENT_B, 6).memo(payment_memo()),
        encoding,
        watched={AGENT, AGENT_B},
        task_owner={TASK: AGENT}.get,
    )
    by_agent = {row.agent_wallet: row.transaction_type for row in decoded.rows}
    assert by_agent == {AGENT: "payment", AGENT_B: "funding"}


def test_refund_of_a_task_of_another_agent_is_skipped(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=AGENT).sol(AGENT, USER, 5).memo(payment_memo("refund")),
        encoding,
        task_owner={TASK: AGENT_B}.get,
    )
    assert decoded.rows == ()
    assert decoded.skipped[0].reason == "outgoing_not_refund"
    assert decoded.memo_rejection is not None
    assert decoded.memo_rejection.reason == "task_agent_mismatch"


def test_unknown_task_is_no_valid_memo(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=USER).sol(USER, AGENT, 5).memo(payment_memo()),
        encoding,
        task_owner=lambda task: None,
    )
    assert decoded.rows[0].memo_rejection == "unknown_task"


def test_task_owner_matching_keeps_the_payment(encoding: str) -> None:
    decoded = decode(
        TxBuilder(fee_payer=USER).sol(USER, AGENT, 5).memo(payment_memo()),
        encoding,
        task_owner={TASK: AGENT}.get,
    )
    assert decoded.rows[0].transaction_type == "payment"
    assert decoded.memo_rejection is None


def test_bytes_entry_point_accepts_envelope_and_result() -> None:
    import orjson

    result = TxBuilder(fee_payer=USER).sol(USER, AGENT, 5).render("json")
    envelope = {"jsonrpc": "2.0", "result": result, "id": 1}
    a = decode_transaction_bytes(orjson.dumps(result), {AGENT})
    b = decode_transaction_bytes(orjson.dumps(envelope), {AGENT})
    assert a == b
    assert a.rows[0].amount_raw == 5


def test_memo_data_decoded_once_is_kept_and_stays_right(monkeypatch: pytest.MonkeyPatch) -> None:
    """`json` memo data is base58; a memo seen before is taken from a bounded cache, which
    evicts when full without changing any result. Non-text data is still refused."""
    one = functools.lru_cache(maxsize=1)(decoder._memo_bytes.__wrapped__)
    monkeypatch.setattr(decoder, "_memo_bytes", one)
    payment = TxBuilder(fee_payer=USER).sol(USER, AGENT, 1_000).memo(f"amoca:1:payment;task={TASK}")
    funding = TxBuilder(fee_payer=USER).sol(USER, AGENT, 2_000).memo("amoca:1:funding")
    kinds = [decode(builder, "json").rows[0].transaction_type
             for builder in (payment, payment, funding, payment)]
    assert kinds == ["payment", "payment", "funding", "payment"]
    info = one.cache_info()  # the second payment hit; the funding evicted it, so the third missed
    assert (info.hits, info.misses, info.currsize) == (1, 3, 1)

    raw = payment.render("json")
    keys = raw["transaction"]["message"]["accountKeys"]
    for ix in raw["transaction"]["message"]["instructions"]:
        if keys[ix["programIdIndex"]] == MEMO_V2:
            ix["data"] = 5
    with pytest.raises(DecodeError) as info:
        decode_transaction(raw, {AGENT})
    assert info.value.reason == "bad_instruction_data"
