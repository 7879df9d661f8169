"""Ledger records as a real node renders them: getTransaction results in `json`,
`jsonParsed` and `base64`, signature-list entries, statuses and notification values.
Pure functions; the key sets and nesting follow the mainnet fixtures in ../shared."""

from __future__ import annotations

import base64
from typing import Any

from indexer.decode.base58 import b58encode
from indexer.localnet.ledger import ALT_PROGRAM, MEMO_PROGRAMS, TOKEN_PROGRAMS, TxRecord

SYSTEM_PROGRAM = "11111111111111111111111111111111"


def _status(err: Any) -> dict[str, Any]:
    return {"Ok": None} if err is None else {"Err": err}


def _inner(record: TxRecord) -> list[dict[str, Any]]:
    return [{"index": i, "instructions": [dict(ix, data=b58encode(ix["data"])) for ix in group]}
            for i, group in enumerate(record.inner) if group]


def meta(record: TxRecord, *, parsed: bool = False) -> dict[str, Any]:
    inner = _inner(record)
    if parsed:
        inner = [{"index": g["index"], "instructions": [
            parse_instruction(record, ix["programIdIndex"], ix["accounts"],
                              _b58_to_bytes(record, g["index"], n), ix["stackHeight"])
            for n, ix in enumerate(g["instructions"])]} for g in inner]
    body: dict[str, Any] = {
        "err": record.err, "status": _status(record.err), "fee": record.fee,
        "preBalances": record.pre_balances, "postBalances": record.post_balances,
        "innerInstructions": inner, "logMessages": record.logs,
        "preTokenBalances": record.pre_tokens, "postTokenBalances": record.post_tokens,
        "rewards": [],
        "loadedAddresses": {"writable": record.loaded_writable, "readonly": record.loaded_readonly},
        "computeUnitsConsumed": record.compute_units,
    }
    if parsed:
        del body["loadedAddresses"]  # jsonParsed shows sources in accountKeys instead
    return body


def _b58_to_bytes(record: TxRecord, group: int, position: int) -> bytes:
    return bytes(record.inner[group][position]["data"])


def _header(record: TxRecord) -> dict[str, int]:
    header = record.tx.message.header
    return {"numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts}


def _lookups(record: TxRecord) -> list[dict[str, Any]]:
    return [{"accountKey": str(lookup.account_key),
             "writableIndexes": list(bytes(lookup.writable_indexes)),
             "readonlyIndexes": list(bytes(lookup.readonly_indexes))}
            for lookup in getattr(record.tx.message, "address_table_lookups", None) or []]


def _writable(record: TxRecord, index: int) -> bool:
    message = record.tx.message
    static = len(message.account_keys)
    if index >= static:
        return index < static + len(record.loaded_writable)
    return bool(message.is_maybe_writable(index)) if hasattr(message, "is_maybe_writable") else True


def transaction_result(record: TxRecord, encoding: str, *, versioned_ok: bool) -> dict[str, Any]:
    """The `result` of getTransaction. ``versioned_ok``: maxSupportedTransactionVersion given."""
    message = record.tx.message
    signatures = [str(s) for s in record.tx.signatures]
    if encoding == "base64":
        transaction: Any = [base64.b64encode(bytes(record.tx)).decode(), "base64"]
    elif encoding == "jsonParsed":
        static = len(message.account_keys)
        keys = [{"pubkey": key, "writable": _writable(record, i),
                 "signer": i < message.header.num_required_signatures,
                 "source": "transaction" if i < static else "lookupTable"}
                for i, key in enumerate(record.account_keys)]
        body: dict[str, Any] = {
            "accountKeys": keys, "recentBlockhash": str(message.recent_blockhash),
            "instructions": [parse_instruction(record, ix.program_id_index, list(bytes(ix.accounts)),
                                               bytes(ix.data), None) for ix in message.instructions]}
        if record.versioned:
            body["addressTableLookups"] = _lookups(record)
        transaction = {"signatures": signatures, "message": body}
    else:
        body = {"header": _header(record), "accountKeys": [str(k) for k in message.account_keys],
                "recentBlockhash": str(message.recent_blockhash),
                "instructions": [{"programIdIndex": ix.program_id_index,
                                  "accounts": list(bytes(ix.accounts)),
                                  "data": b58encode(bytes(ix.data)), "stackHeight": None}
                                 for ix in message.instructions]}
        if record.versioned:
            body["addressTableLookups"] = _lookups(record)
        transaction = {"signatures": signatures, "message": body}
    result: dict[str, Any] = {"slot": record.slot, "transaction": transaction,
                              "meta": meta(record, parsed=encoding == "jsonParsed"),
                              "blockTime": record.block_time}
    if versioned_ok:
        result["version"] = 0 if record.versioned else "legacy"
    return result


def parse_instruction(record: TxRecord, program_index: int, accounts: list[int], data: bytes,
                      stack_height: int | None) -> dict[str, Any]:
    """A jsonParsed instruction: parsed for System, SPL Token and Memo, raw otherwise."""
    keys = record.account_keys
    program = keys[program_index]
    acct = [keys[i] for i in accounts]
    parsed: Any = None
    name = None
    if program == SYSTEM_PROGRAM and len(data) >= 12 and data[0] == 2:
        name = "system"
        parsed = {"type": "transfer", "info": {
            "source": acct[0], "destination": acct[1],
            "lamports": int.from_bytes(data[4:12], "little")}}
    elif program in TOKEN_PROGRAMS and data[:1] == b"\x03" and len(data) >= 9:
        name = "spl-token"
        parsed = {"type": "transfer", "info": {
            "source": acct[0], "destination": acct[1], "authority": acct[2],
            "amount": str(int.from_bytes(data[1:9], "little"))}}
    elif program in TOKEN_PROGRAMS and data[:1] == b"\x0c" and len(data) >= 10:
        name = "spl-token"
        amount, decimals = int.from_bytes(data[1:9], "little"), data[9]
        parsed = {"type": "transferChecked", "info": {
            "source": acct[0], "mint": acct[1], "destination": acct[2], "authority": acct[3],
            "tokenAmount": {"amount": str(amount), "decimals": decimals,
                            "uiAmount": amount / 10**decimals,
                            "uiAmountString": _ui(amount, decimals)}}}
    elif program in MEMO_PROGRAMS:
        name = "spl-memo"
        parsed = data.decode("utf-8", "replace")
    if parsed is None or name is None:
        out: dict[str, Any] = {"programId": program, "accounts": acct, "data": b58encode(data)}
    else:
        out = {"program": name, "programId": program, "parsed": parsed}
    out["stackHeight"] = stack_height
    return out


def _ui(amount: int, decimals: int) -> str:
    from indexer.localnet.ledger import _ui_string

    return _ui_string(amount, decimals)


def memo_field(record: TxRecord) -> str | None:
    """getSignaturesForAddress's `memo`: "[len] text" per memo, joined by "; "."""
    if not record.memos:
        return None
    return "; ".join(f"[{len(m.encode())}] {m}" for m in record.memos)


def signature_entry(record: TxRecord, level: str) -> dict[str, Any]:
    return {"signature": record.signature, "slot": record.slot, "err": record.err,
            "memo": memo_field(record), "blockTime": record.block_time,
            "confirmationStatus": level}


def status_entry(record: TxRecord, current_slot: int, level: str) -> dict[str, Any]:
    return {"slot": record.slot,
            "confirmations": None if level == "finalized" else current_slot - record.slot,
            "err": record.err, "status": _status(record.err), "confirmationStatus": level}


def logs_value(record: TxRecord) -> dict[str, Any]:
    return {"signature": record.signature, "err": record.err, "logs": record.logs}


__all__ = ["ALT_PROGRAM", "logs_value", "memo_field", "signature_entry", "status_entry",
           "transaction_result"]
