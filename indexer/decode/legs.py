"""Transfer legs and memo data from instructions, whatever the encoding.

The transaction module turns each encoding's instructions into :class:`Instruction`
(program id, account addresses, raw data bytes or the node's ``parsed`` object) and
keeps only programs that matter here. This module reads them:

* System Program ``transfer`` (u32 LE discriminant 2, u64 LE lamports; accounts
  from, to) and ``transferWithSeed`` (11, u64 lamports, seed, owner; accounts from,
  base, to).
* SPL Token and Token-2022 ``transfer`` (u8 3, u64 amount; accounts source,
  destination, authority) and ``transferChecked`` (12, u64 amount, u8 decimals;
  accounts source, mint, destination, authority), resolved to OWNER wallets through
  the transaction's pre/post token balances.
* SPL Memo v1 and v2 data.

Raw data shorter than its layout is not a transfer (the program would have rejected
it), so it yields no leg rather than an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from indexer.decode.models import SOL_DECIMALS, Leg, UnattributedLeg
from indexer.errors import DecodeError

SYSTEM_PROGRAM = "11111111111111111111111111111111"
TOKEN_PROGRAM = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105  (a program id, not a secret)
TOKEN_2022_PROGRAM = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"  # noqa: S105  (a program id, not a secret)
MEMO_V1_PROGRAM = "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVDDwQDxFMNo"
MEMO_V2_PROGRAM = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
ASSOCIATED_TOKEN_PROGRAM = "ATokenGPvbdGVxr1b2hvZbsiqW5xWH25efTNsLJA8knL"  # noqa: S105  (a program id, not a secret)

TOKEN_PROGRAMS = {TOKEN_PROGRAM: "spl-token", TOKEN_2022_PROGRAM: "spl-token-2022"}
MEMO_PROGRAMS = frozenset({MEMO_V1_PROGRAM, MEMO_V2_PROGRAM})
# Programs whose instructions the decoder materialises; everything else is passed over.
RELEVANT_PROGRAMS = frozenset({SYSTEM_PROGRAM, *TOKEN_PROGRAMS, *MEMO_PROGRAMS})

_SYSTEM_TRANSFER = 2
_SYSTEM_TRANSFER_WITH_SEED = 11
_TOKEN_TRANSFER = 3
_TOKEN_TRANSFER_CHECKED = 12


class TokenAccount(NamedTuple):
    """What the token balances say about one token account (internal to the decoder)."""

    owner: str | None
    mint: str
    decimals: int


class Instruction(NamedTuple):
    """One instruction of a relevant program, in execution order.

    ``data`` holds raw bytes (json, base64, or jsonParsed's fallback for instructions
    the node could not parse); ``parsed`` holds jsonParsed's ``parsed`` value.
    ``outer_program`` is the program of the top-level instruction this one runs under
    (itself when top-level): System transfers made by the Associated Token Account
    program are rent for a new token account, not payments. A NamedTuple rather than
    a dataclass: it never leaves the decoder, and it is built for every instruction.
    """

    program_id: str
    accounts: tuple[str, ...]
    data: bytes | None
    parsed: Any
    instruction_index: int
    inner_index: int | None
    outer_program: str


def memo_data(ix: Instruction) -> bytes | str | None:
    """The memo text (jsonParsed) or bytes, or None when ``ix`` is not a memo."""
    if ix.program_id not in MEMO_PROGRAMS:
        return None
    if isinstance(ix.parsed, str):
        return ix.parsed
    return ix.data


def decode_leg(ix: Instruction, token_accounts: Mapping[str, TokenAccount]) -> Leg | UnattributedLeg | None:
    """The transfer ``ix`` makes, or None when it is not a transfer."""
    if ix.program_id == SYSTEM_PROGRAM:
        return _system_leg(ix)
    program = TOKEN_PROGRAMS.get(ix.program_id)
    if program is not None:
        return _token_leg(ix, program, token_accounts)
    return None


def _system_leg(ix: Instruction) -> Leg | None:
    if ix.parsed is not None:
        kind, info = _parsed_info(ix)
        if kind not in ("transfer", "transferWithSeed"):
            return None
        source = _str(info, "source")
        destination = _str(info, "destination")
        lamports = _amount(info.get("lamports"))
    else:
        data = ix.data or b""
        if len(data) < 12:
            return None
        discriminant = int.from_bytes(data[:4], "little")
        if discriminant == _SYSTEM_TRANSFER and len(ix.accounts) >= 2:
            kind = "transfer"
            source, destination = ix.accounts[0], ix.accounts[1]
        elif discriminant == _SYSTEM_TRANSFER_WITH_SEED and len(ix.accounts) >= 3:
            kind = "transferWithSeed"
            source, destination = ix.accounts[0], ix.accounts[2]
        else:
            return None
        lamports = int.from_bytes(data[4:12], "little")
    return Leg(  # positional (program, instruction, wallets, accounts, ...): built for every transfer
        "system",
        kind,  # type: ignore[arg-type]  # one of the two checked above
        source,
        destination,
        source,
        destination,
        lamports,
        None,
        SOL_DECIMALS,
        ix.inner_index is not None,
        ix.instruction_index,
        ix.inner_index,
    )


def _token_leg(
    ix: Instruction, program: str, token_accounts: Mapping[str, TokenAccount]
) -> Leg | UnattributedLeg | None:
    mint: str | None
    decimals: int | None
    if ix.parsed is not None:
        kind, info = _parsed_info(ix)
        if kind not in ("transfer", "transferChecked"):
            return None
        source = _str(info, "source")
        destination = _str(info, "destination")
        authority = info.get("authority") or info.get("multisigAuthority")
        if authority is not None and not isinstance(authority, str):
            raise DecodeError("malformed_instruction", "token authority is not a string")
        if kind == "transfer":
            amount = _amount(info.get("amount"))
            mint, decimals = None, None
        else:
            token_amount = info.get("tokenAmount")
            if not isinstance(token_amount, Mapping):
                raise DecodeError("malformed_instruction", "transferChecked without tokenAmount")
            amount = _amount(token_amount.get("amount"))
            mint = _str(info, "mint")
            decimals = _small_int(token_amount.get("decimals"))
    else:
        data = ix.data or b""
        accounts = ix.accounts
        if data[:1] == b"\x03" and len(data) >= 9 and len(accounts) >= 3:
            kind = "transfer"
            source, destination, authority = accounts[0], accounts[1], accounts[2]
            mint, decimals = None, None
        elif data[:1] == b"\x0c" and len(data) >= 10 and len(accounts) >= 4:
            kind = "transferChecked"
            source, mint, destination, authority = accounts[0], accounts[1], accounts[2], accounts[3]
            decimals = data[9]
        else:
            return None
        amount = int.from_bytes(data[1:9], "little")
    source_info = token_accounts.get(source)
    destination_info = token_accounts.get(destination)
    if mint is None:
        known = source_info or destination_info
        if known is not None:
            mint = known.mint
    if decimals is None:
        known = destination_info or source_info
        if known is not None:
            decimals = known.decimals
    source_owner = source_info.owner if source_info is not None else None
    destination_owner = destination_info.owner if destination_info is not None else None
    inner = ix.inner_index is not None
    if source_owner is None or destination_owner is None or mint is None or decimals is None:
        return UnattributedLeg(
            program=program,
            instruction=kind,
            source_account=source,
            destination_account=destination,
            authority=authority,
            source_wallet=source_owner,
            destination_wallet=destination_owner,
            amount_raw=amount,
            mint=mint,
            decimals=decimals,
            inner=inner,
            instruction_index=ix.instruction_index,
            inner_index=ix.inner_index,
            reason="token_owner_unknown",
        )
    return Leg(  # positional, as in _system_leg
        program,  # type: ignore[arg-type]  # a value of TOKEN_PROGRAMS
        kind,  # type: ignore[arg-type]  # one of the two checked above
        source_owner,
        destination_owner,
        source,
        destination,
        amount,
        mint,
        decimals,
        inner,
        ix.instruction_index,
        ix.inner_index,
    )


def _parsed_info(ix: Instruction) -> tuple[str, Mapping[str, Any]]:
    parsed = ix.parsed
    if not isinstance(parsed, Mapping):
        raise DecodeError("malformed_instruction", f"parsed instruction of {ix.program_id} is not an object")
    kind = parsed.get("type")
    info = parsed.get("info")
    if not isinstance(kind, str) or not isinstance(info, Mapping):
        raise DecodeError("malformed_instruction", f"parsed instruction of {ix.program_id} lacks type/info")
    return kind, info


def _str(info: Mapping[str, Any], key: str) -> str:
    value = info.get(key)
    if not isinstance(value, str):
        raise DecodeError("malformed_instruction", f"parsed transfer lacks {key}")
    return value


def _amount(value: Any) -> int:
    """A u64 amount: jsonParsed gives lamports as a number and token amounts as a string."""
    if isinstance(value, bool):
        raise DecodeError("malformed_instruction", "amount is a boolean")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        amount = int(value)
    else:
        raise DecodeError("malformed_instruction", "amount is not an unsigned integer")
    if not 0 <= amount < 1 << 64:
        raise DecodeError("malformed_instruction", "amount out of u64 range")
    return amount


def _small_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise DecodeError("malformed_instruction", "decimals is not a u8")
    return value
