"""Entry points: a getTransaction result, in any encoding, to a :class:`DecodedTransaction`.

Encodings real nodes serve, told apart by shape:

* ``base64``: ``transaction`` is ``[<b64>, "base64"]``; the wire bytes are parsed by
  ``solders.transaction.VersionedTransaction``; inner instructions and balances come
  from ``meta`` exactly as in ``json``.
* ``json``: ``message.accountKeys`` are strings, instructions index into them and
  carry base58 ``data``.
* ``jsonParsed``: ``message.accountKeys`` are objects and already include addresses
  loaded from lookup tables; known instructions come ``parsed``, others raw with
  account addresses and base58 ``data``.

For v0 transactions in ``json``/``base64`` the account list is the static keys, then
``meta.loadedAddresses.writable``, then ``readonly``; ``accountIndex`` in token
balances and every instruction index refer to that list.

A payload that cannot be decoded at all raises ``DecodeError`` with a reason from
``DECODE_ERROR_REASONS``, for the caller to dead-letter with the raw payload. A
transaction that is merely not a marketplace transfer is no error: it decodes to no
rows, with its skipped and unattributed legs listed.
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeGuard
from uuid import UUID

import orjson
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from indexer.decode.base58 import b58decode
from indexer.decode.classify import classify
from indexer.decode.legs import (
    ASSOCIATED_TOKEN_PROGRAM,
    MEMO_PROGRAMS,
    RELEVANT_PROGRAMS,
    Instruction,
    TokenAccount,
    decode_leg,
    memo_data,
)
from indexer.decode.memo import select_memo
from indexer.decode.models import DecodedTransaction, Encoding, Leg, Memo, UnattributedLeg
from indexer.errors import DecodeError

DECODE_ERROR_REASONS = (
    "not_json",  # the bytes are not JSON
    "not_an_object",  # the JSON (or the envelope's result) is not an object
    "rpc_error_envelope",  # a JSON-RPC error answer instead of a result
    "null_result",  # result null: transaction not found (or not yet confirmed)
    "missing_field",  # a field every getTransaction result has is absent
    "bad_field",  # a field has the wrong type or an impossible value
    "unsupported_encoding",  # e.g. base58, or an unknown [data, encoding] pair
    "unsupported_version",  # a transaction version other than legacy and 0
    "bad_base64",  # base64 transaction text that does not decode
    "bad_wire_transaction",  # wire bytes solders cannot parse
    "bad_account_index",  # an index outside the (static + loaded) account list
    "bad_instruction_data",  # instruction data that is not base58
    "malformed_instruction",  # a jsonParsed transfer/memo without its usual fields
    "malformed_payload",  # any other structural surprise (last-resort guard)
)

TaskOwner = Callable[[UUID], "str | None"]
_ABSENT = object()


def decode_transaction_bytes(
    raw: bytes | str, watched: Container[str], *, task_owner: TaskOwner | None = None
) -> DecodedTransaction:
    """Decode the JSON of a getTransaction ``result``, or of the whole JSON-RPC envelope."""
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("not_json", str(exc)[:200]) from exc
    return decode_transaction(document, watched, task_owner=task_owner)


def decode_transaction(
    result: Mapping[str, Any], watched: Container[str], *, task_owner: TaskOwner | None = None
) -> DecodedTransaction:
    """Decode one getTransaction result (an envelope is unwrapped too)."""
    if not _is_object(result):
        raise DecodeError("not_an_object", f"got {type(result).__name__}")
    if "jsonrpc" in result:
        result = _unwrap(result)
    try:
        return _decode(result, watched, task_owner)
    except DecodeError:
        raise
    except KeyError as exc:
        raise DecodeError("missing_field", repr(exc.args[0])[:100] if exc.args else "") from exc
    except (IndexError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        # Last-resort guard: a payload shaped in a way no real node sends must be
        # dead-lettered with a reason, never crash the pipeline.
        raise DecodeError("malformed_payload", f"{type(exc).__name__}: {exc}"[:200]) from exc


def _unwrap(envelope: Mapping[str, Any]) -> Mapping[str, Any]:
    error = envelope.get("error")
    if error is not None:
        if isinstance(error, Mapping):
            detail = f"{error.get('code')}: {str(error.get('message'))[:200]}"
        else:
            detail = str(error)[:200]
        raise DecodeError("rpc_error_envelope", detail)
    if "result" not in envelope:
        raise DecodeError("missing_field", "envelope has neither result nor error")
    result = envelope["result"]
    if result is None:
        raise DecodeError("null_result", "transaction not found")
    if not _is_object(result):
        raise DecodeError("not_an_object", "result is not an object")
    return result


class _Message:
    """The parts of a transaction the decoder needs, independent of the encoding."""

    __slots__ = ("encoding", "instructions", "keys", "signature")

    def __init__(
        self, encoding: Encoding, signature: str, keys: list[str], instructions: list[Instruction]
    ) -> None:
        self.encoding = encoding
        self.signature = signature
        self.keys = keys
        self.instructions = instructions


def _decode(
    result: Mapping[str, Any], watched: Container[str], task_owner: TaskOwner | None
) -> DecodedTransaction:
    meta = result.get("meta")
    if not _is_object(meta):
        raise DecodeError("missing_field", "meta")
    slot = _uint(result, "slot")
    block_time = result.get("blockTime")
    if block_time is not None and (isinstance(block_time, bool) or not isinstance(block_time, int)):
        raise DecodeError("bad_field", "blockTime is not an integer")
    version = _version(result.get("version", _ABSENT))
    fee = _uint(meta, "fee")
    err = meta.get("err")
    transaction = result.get("transaction")
    if isinstance(transaction, list):
        message = _wire_message(transaction, meta)
    elif _is_object(transaction):
        message = _json_message(transaction, meta)
    else:
        raise DecodeError("missing_field", "transaction")
    if not message.keys:
        raise DecodeError("bad_field", "transaction has no account keys")
    token_accounts = _token_accounts(meta, message.keys)
    return _assemble(message, token_accounts, slot, block_time, version, fee, err, watched, task_owner)


def _assemble(
    message: _Message,
    token_accounts: Mapping[str, TokenAccount],
    slot: int,
    block_time: int | None,
    version: Literal["legacy", 0],
    fee: int,
    err: Any,
    watched: Container[str],
    task_owner: TaskOwner | None,
) -> DecodedTransaction:
    """Instructions -> legs and memo -> rows: the encoding-independent second half.

    (The decoder benchmark's baseline feeds it instructions walked from solders' typed
    responses, so that only the parse + walk differs between the two.)
    """
    legs: list[Leg] = []
    rent_legs: list[Leg] = []
    unattributed: list[UnattributedLeg] = []
    memos: list[bytes | str] = []
    for ix in message.instructions:
        if ix.program_id in MEMO_PROGRAMS:
            data = memo_data(ix)
            if data is not None:
                memos.append(data)
            continue
        leg = decode_leg(ix, token_accounts)
        if leg is None:
            continue
        if isinstance(leg, UnattributedLeg):
            if any(address is not None and address in watched for address in leg.addresses()):
                unattributed.append(leg)
        elif leg.program == "system" and ix.outer_program == ASSOCIATED_TOKEN_PROGRAM:
            rent_legs.append(leg)
        else:
            legs.append(leg)

    memo_text, memo = select_memo(memos)
    status: Literal["pending", "failed"] = "failed" if err is not None else "pending"
    fee_payer = message.keys[0]
    classified = classify(
        legs,
        rent_legs,
        memo,
        memo_text,
        watched,
        signature=message.signature,
        slot=slot,
        block_time=block_time,
        fee_payer=fee_payer,
        status=status,
        task_owner=task_owner,
    )
    rejection = classified.memo_rejection
    if memo is not None and not isinstance(memo, Memo):
        rejection = memo
    return DecodedTransaction(  # positional: this runs for every transaction
        message.signature,
        slot,
        block_time,
        fee_payer,
        fee,
        err,
        status,
        message.encoding,
        version,
        classified.rows,
        classified.skipped,
        tuple(unattributed),
        memo_text,
        rejection,
        classified.conflicts,
        tuple([(account, info.owner) for account, info in token_accounts.items()
               if info.owner is not None and info.owner in watched]),
    )


def _is_object(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object: orjson gives dicts (checked first, cheaply); callers may pass any Mapping."""
    return type(value) is dict or isinstance(value, Mapping)


def _uint(mapping: Mapping[str, Any], key: str) -> int:
    value = mapping.get(key)
    if value is None:
        raise DecodeError("missing_field", key)
    if type(value) is not int or value < 0:
        raise DecodeError("bad_field", f"{key} is not an unsigned integer")
    return value


def _version(value: Any) -> Literal["legacy", 0]:
    if value is _ABSENT or value is None or value == "legacy":
        return "legacy"
    if value == 0 and not isinstance(value, bool):
        return 0
    raise DecodeError("unsupported_version", f"version {str(value)[:20]!r}")


def _token_accounts(meta: Mapping[str, Any], keys: Sequence[str]) -> dict[str, TokenAccount]:
    """Token account address -> owner/mint/decimals, from pre then post balances."""
    accounts: dict[str, TokenAccount] = {}
    for field in ("preTokenBalances", "postTokenBalances"):
        balances = meta.get(field)
        if not balances:
            continue
        if not isinstance(balances, list):
            raise DecodeError("bad_field", f"{field} is not a list")
        for balance in balances:
            address = _key(keys, balance["accountIndex"])
            owner = balance.get("owner")
            mint = balance["mint"]
            decimals = balance["uiTokenAmount"]["decimals"]
            if type(mint) is not str or type(decimals) is not int:
                raise DecodeError("bad_field", f"{field}: mint/decimals")
            known = accounts.get(address)
            if type(owner) is not str:
                owner = known.owner if known is not None else None
            # A post balance usually repeats its pre balance: keep the equal value.
            if known is None or known != (owner, mint, decimals):
                accounts[address] = TokenAccount(owner, mint, decimals)
    return accounts


def _key(keys: Sequence[str], index: Any) -> str:
    # type() rather than isinstance: excludes bool, and this runs for every instruction.
    if type(index) is not int or not 0 <= index < len(keys):
        raise DecodeError("bad_account_index", f"index {index!r} of {len(keys)} accounts")
    return keys[index]


def _loaded_addresses(meta: Mapping[str, Any]) -> list[str]:
    loaded = meta.get("loadedAddresses")
    if not loaded:
        return []
    writable = loaded.get("writable") or []
    readonly = loaded.get("readonly") or []
    if not isinstance(writable, list) or not isinstance(readonly, list):
        raise DecodeError("bad_field", "loadedAddresses")
    return writable + readonly if writable or readonly else []


def _b58(data: Any) -> bytes:
    if not isinstance(data, str):
        raise DecodeError("bad_instruction_data", "instruction data is not a string")
    try:
        return b58decode(data)
    except ValueError:
        raise DecodeError("bad_instruction_data", "instruction data is not base58") from None


# Memo instruction data as `json` sends it (base58), by its text. Memos repeat (every
# payment of a task carries the same one; see indexer.decode.memo), and base58 of a
# memo's 80-odd characters was an eighth of a `json` decode. Transfer data is not kept:
# it holds the amount. An LRU of 4,096, like the memo parses; bad data raises each time.
@functools.lru_cache(maxsize=4096)
def _memo_bytes(text: str) -> bytes:
    return _b58(text)


def _memo_b58(data: Any) -> bytes:
    return _memo_bytes(data) if type(data) is str else _b58(data)


def _inner_by_index(meta: Mapping[str, Any]) -> dict[int, list[Any]]:
    inner = meta.get("innerInstructions")
    if not inner:
        return {}
    if not isinstance(inner, list):
        raise DecodeError("bad_field", "innerInstructions is not a list")
    by_index: dict[int, list[Any]] = {}
    for entry in inner:
        by_index.setdefault(entry["index"], []).extend(entry["instructions"])
    return by_index


def _compiled(
    keys: Sequence[str],
    program: str,
    account_indexes: Any,
    data: Any,
    instruction_index: int,
    inner_index: int | None,
    outer_program: str | None,
) -> Instruction | None:
    """A json/base64 instruction (``program`` resolved from its index by the caller, who
    needs it too; account indexes + base58 or raw data), if its program matters.

    Positional parameters: this runs for every instruction (keyword calls cost more).
    """
    if program not in RELEVANT_PROGRAMS:
        return None
    if account_indexes:
        # bytes (base64) or a list of ints (json); a negative index must not wrap around.
        if min(account_indexes) < 0 or max(account_indexes) >= len(keys):
            raise DecodeError("bad_account_index", f"instruction of {program} indexes past the accounts")
        accounts = tuple([keys[index] for index in account_indexes])
    else:
        accounts = ()
    return Instruction(
        program,
        accounts,
        data if isinstance(data, bytes) else _memo_b58(data) if program in MEMO_PROGRAMS else _b58(data),
        None,
        instruction_index,
        inner_index,
        outer_program or program,
    )


def _raw_inner(
    keys: Sequence[str], inner: Mapping[int, list[Any]], outer_index: int, outer_program: str
) -> Iterator[Instruction]:
    for position, raw in enumerate(inner.get(outer_index, ())):
        ix = _compiled(
            keys, _key(keys, raw["programIdIndex"]), raw["accounts"], raw["data"], outer_index, position,
            outer_program,
        )
        if ix is not None:
            yield ix


def _wire_message(transaction: list[Any], meta: Mapping[str, Any]) -> _Message:
    if len(transaction) != 2 or transaction[1] != "base64" or not isinstance(transaction[0], str):
        encoding = transaction[1] if len(transaction) == 2 else "?"
        raise DecodeError("unsupported_encoding", f"transaction encoding {str(encoding)[:20]!r}")
    try:
        # strict_mode: validated in C (b64decode's validate=True runs a regular expression
        # over the whole text first, half the cost of the decode).
        wire = binascii.a2b_base64(transaction[0], strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("bad_base64", str(exc)[:200]) from exc
    try:
        parsed = VersionedTransaction.from_bytes(wire)
    except ValueError as exc:  # solders raises its own ValueError subclasses
        raise DecodeError("bad_wire_transaction", str(exc)[:200]) from exc
    message = parsed.message
    keys = _key_texts(message.account_keys)
    if (
        isinstance(message, MessageV0)
        and message.address_table_lookups
        and not meta.get("loadedAddresses")
    ):
        raise DecodeError("missing_field", "meta.loadedAddresses for a v0 transaction")
    keys.extend(_loaded_addresses(meta))
    signatures = parsed.signatures  # a new list of solders objects at every access
    if not signatures:
        raise DecodeError("bad_wire_transaction", "no signatures")
    inner = _inner_by_index(meta)
    instructions: list[Instruction] = []
    for index, compiled in enumerate(message.instructions):
        program = _key(keys, compiled.program_id_index)
        # An irrelevant program's accounts and data are not read: each read copies them
        # out of solders (mainnet transactions carry compute-budget instructions, say).
        if program in RELEVANT_PROGRAMS and (
                ix := _compiled(keys, program, compiled.accounts, compiled.data, index, None, None)):
            instructions.append(ix)
        if inner:
            instructions.extend(_raw_inner(keys, inner, index, program))
    return _Message("base64", str(signatures[0]), keys, instructions)


# Account keys as text, by key. str(Pubkey) encodes base58 (0.2 us a key); the same keys
# come back in transaction after transaction (programs, the agents, their payers), and a
# dict lookup is a quarter of that. Emptied when full.
_KEY_TEXTS: dict[Pubkey, str] = {}
_KEY_TEXTS_KEPT = 65_536


def _key_texts(keys: Sequence[Pubkey]) -> list[str]:
    known = _KEY_TEXTS
    texts = []
    for key in keys:
        text = known.get(key)
        if text is None:
            if len(known) >= _KEY_TEXTS_KEPT:
                known.clear()
            text = known[key] = str(key)
        texts.append(text)
    return texts


def _json_message(transaction: Mapping[str, Any], meta: Mapping[str, Any]) -> _Message:
    signatures = transaction.get("signatures")
    message = transaction.get("message")
    if not isinstance(signatures, list) or not signatures or not isinstance(signatures[0], str):
        raise DecodeError("missing_field", "transaction.signatures")
    if not _is_object(message):
        raise DecodeError("missing_field", "transaction.message")
    account_keys = message.get("accountKeys")
    if not isinstance(account_keys, list) or not account_keys:
        raise DecodeError("missing_field", "message.accountKeys")
    raw_instructions = message.get("instructions")
    if not isinstance(raw_instructions, list):
        raise DecodeError("missing_field", "message.instructions")
    inner = _inner_by_index(meta)
    signature = signatures[0]

    if isinstance(account_keys[0], str):  # json
        keys = list(account_keys)
        if message.get("addressTableLookups") and not meta.get("loadedAddresses"):
            raise DecodeError("missing_field", "meta.loadedAddresses for a v0 transaction")
        keys.extend(_loaded_addresses(meta))
        instructions: list[Instruction] = []
        for index, raw in enumerate(raw_instructions):
            program = _key(keys, raw["programIdIndex"])
            ix = _compiled(keys, program, raw["accounts"], raw["data"], index, None, None)
            if ix is not None:
                instructions.append(ix)
            if inner:
                instructions.extend(_raw_inner(keys, inner, index, program))
        return _Message("json", signature, keys, instructions)

    # jsonParsed: accountKeys already include lookup-table addresses. A node that also
    # sends meta.loadedAddresses lists them a second time, so only add them when the
    # balances show the list is short.
    keys = [entry["pubkey"] for entry in account_keys]
    loaded = _loaded_addresses(meta)
    balances = meta.get("preBalances")
    if loaded and isinstance(balances, list) and len(keys) + len(loaded) == len(balances):
        keys.extend(loaded)
    instructions = []
    for index, raw in enumerate(raw_instructions):
        program = raw["programId"]
        ix = _parsed_instruction(raw, index, None, program)
        if ix is not None:
            instructions.append(ix)
        for position, inner_raw in enumerate(inner.get(index, ())):
            inner_ix = _parsed_instruction(inner_raw, index, position, program)
            if inner_ix is not None:
                instructions.append(inner_ix)
    return _Message("jsonParsed", signature, keys, instructions)


def _parsed_instruction(
    raw: Mapping[str, Any], instruction_index: int, inner_index: int | None, outer_program: str
) -> Instruction | None:
    program = raw["programId"]
    if program not in RELEVANT_PROGRAMS:
        return None
    parsed = raw.get("parsed")
    if parsed is not None:
        return Instruction(program, (), None, parsed, instruction_index, inner_index, outer_program)
    accounts = raw.get("accounts") or []
    if not all(isinstance(account, str) for account in accounts):
        raise DecodeError("malformed_instruction", "jsonParsed raw instruction accounts")
    data = _b58(raw.get("data", ""))
    return Instruction(
        program, tuple(accounts), data, None, instruction_index, inner_index, outer_program
    )
