"""JSON-RPC methods of the local cluster: method name + params in, result or error out.

Errors are raised as :class:`RpcFailure` with the codes and messages real nodes use
(see ../shared/fixtures/errors); the server turns them into JSON-RPC error objects.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import orjson
from solders.pubkey import Pubkey
from solders.transaction import VersionedTransaction

from indexer.decode.base58 import b58decode, b58encode, is_signature
from indexer.localnet import encoding
from indexer.localnet.ledger import COMMITMENTS, Ledger, SendError

VERSION = {"solana-core": "2.1.0-amoca-localnet", "feature-set": 1}
STATUS_CACHE_SLOTS = 300  # agave's status cache: MAX_CACHE_ENTRIES (= MAX_RECENT_BLOCKHASHES)
MAX_BLOCKS_RANGE = 500_000  # agave's MAX_GET_CONFIRMED_BLOCKS_RANGE: getBlocks(WithLimit)'s bound


class RpcFailure(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


def invalid(message: str) -> RpcFailure:
    return RpcFailure(-32602, message)


def _config(params: list[Any], index: int) -> dict[str, Any]:
    value = params[index] if len(params) > index else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(f"Invalid params: expected a config object at position {index}")
    return value


def _commitment(config: dict[str, Any], default: str = "finalized") -> str:
    value = config.get("commitment", default)
    if value not in COMMITMENTS:
        raise invalid(f"Invalid params: unknown commitment {value!r}")
    return str(value)


def _confirmed_commitment(config: dict[str, Any]) -> str:
    """:func:`_commitment`, for the methods that answer only from confirmed blocks on."""
    commitment = _commitment(config)
    if commitment == "processed":
        raise invalid("Method does not support commitment below `confirmed`")
    return commitment


def _pubkey(params: list[Any], index: int = 0) -> Pubkey:
    try:
        return Pubkey.from_string(params[index])
    except (IndexError, TypeError, ValueError):
        raise invalid("Invalid param: Invalid") from None


def _signature(value: Any) -> str:
    if not is_signature(value):
        raise invalid("Invalid param: Invalid")
    return str(value)


def _context(ledger: Ledger, commitment: str, value: Any) -> dict[str, Any]:
    return {"context": {"apiVersion": VERSION["solana-core"], "slot": ledger.slot_at(commitment)},
            "value": value}


def _min_context(ledger: Ledger, config: dict[str, Any], commitment: str) -> None:
    wanted = config.get("minContextSlot")
    if wanted is not None and ledger.slot_at(commitment) < int(wanted):
        raise RpcFailure(-32016, "Minimum context slot has not been reached",
                         {"contextSlot": ledger.slot_at(commitment)})


def _decode_wire(params: list[Any], config: dict[str, Any]) -> VersionedTransaction:
    if not params or not isinstance(params[0], str):
        raise invalid("Invalid params: missing transaction")
    enc = config.get("encoding", "base58")
    try:
        raw = base64.b64decode(params[0], validate=True) if enc == "base64" else b58decode(params[0])
        return VersionedTransaction.from_bytes(raw)
    except (ValueError, TypeError) as exc:
        raise invalid(f"invalid transaction: {type(exc).__name__}") from None


class Methods:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.table: dict[str, Callable[[list[Any]], Any]] = {
            name[4:]: getattr(self, name) for name in dir(self) if name.startswith("rpc_")}

    def call(self, method: str, params: Any) -> Any:
        handler = self.table.get(method)
        if handler is None:
            raise RpcFailure(-32601, "Method not found")
        if params is None:
            params = []
        if not isinstance(params, list):
            raise invalid("Invalid params: expected an array")
        return handler(params)

    # -- cluster ----------------------------------------------------------------------
    def rpc_getHealth(self, params: list[Any]) -> str:
        return "ok"

    def rpc_getVersion(self, params: list[Any]) -> dict[str, Any]:
        return VERSION

    def rpc_getGenesisHash(self, params: list[Any]) -> str:
        return self.ledger.genesis_hash

    def rpc_getSlot(self, params: list[Any]) -> int:
        config = _config(params, 0)
        commitment = _commitment(config)
        _min_context(self.ledger, config, commitment)
        return self.ledger.slot_at(commitment)

    def rpc_getBlockHeight(self, params: list[Any]) -> int:
        return self.ledger.slot_at(_commitment(_config(params, 0)))

    def rpc_getEpochInfo(self, params: list[Any]) -> dict[str, Any]:
        slot = self.ledger.slot_at(_commitment(_config(params, 0)))
        return {"absoluteSlot": slot, "blockHeight": slot, "epoch": slot // 432000,
                "slotIndex": slot % 432000, "slotsInEpoch": 432000,
                "transactionCount": len(self.ledger.by_signature)}

    def rpc_getLatestBlockhash(self, params: list[Any]) -> dict[str, Any]:
        commitment = _commitment(_config(params, 0))
        blockhash, last_valid = self.ledger.latest_blockhash
        return _context(self.ledger, commitment,
                        {"blockhash": blockhash, "lastValidBlockHeight": last_valid})

    def rpc_isBlockhashValid(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], str):
            raise invalid("Invalid params: missing blockhash")
        commitment = _commitment(_config(params, 1))
        return _context(self.ledger, commitment, self.ledger.blockhash_valid(params[0]))

    def rpc_getMinimumBalanceForRentExemption(self, params: list[Any]) -> int:
        if not params or not isinstance(params[0], int):
            raise invalid("Invalid params: expected a data length")
        return int(self.ledger.svm.minimum_balance_for_rent_exemption(params[0]))

    # -- accounts ---------------------------------------------------------------------
    def rpc_getBalance(self, params: list[Any]) -> dict[str, Any]:
        key = _pubkey(params)
        commitment = _commitment(_config(params, 1))
        return _context(self.ledger, commitment, self.ledger.svm.get_balance(key) or 0)

    def rpc_getAccountInfo(self, params: list[Any]) -> dict[str, Any]:
        key = _pubkey(params)
        config = _config(params, 1)
        commitment = _commitment(config)
        account = self.ledger.svm.get_account(key)
        if account is None or (account.lamports == 0 and not account.data):
            return _context(self.ledger, commitment, None)
        enc = config.get("encoding", "base58")
        data = bytes(account.data)
        rendered: Any = ([base64.b64encode(data).decode(), "base64"] if enc in ("base64", "jsonParsed")
                         else [b58encode(data), "base58"])
        return _context(self.ledger, commitment, {
            "lamports": account.lamports, "owner": str(account.owner), "data": rendered,
            "executable": account.executable, "rentEpoch": 18446744073709551615,
            "space": len(data)})

    def rpc_getTokenAccountsByOwner(self, params: list[Any]) -> dict[str, Any]:
        owner = _pubkey(params)
        selector = _config(params, 1)
        config = _config(params, 2)
        if not selector or not ({"mint", "programId"} & selector.keys()):
            raise invalid("Invalid params: expected {\"mint\": ...} or {\"programId\": ...}")
        accounts = []
        for key, program in sorted(self.ledger.token_accounts.get(str(owner), {}).items()):
            if "programId" in selector and selector["programId"] != program:
                continue
            account = self.ledger.svm.get_account(Pubkey.from_string(key))
            if account is None or len(account.data) < 165:
                continue
            data = bytes(account.data)
            if bytes(owner) != data[32:64]:
                continue  # the owner changed since (SetAuthority)
            if "mint" in selector and str(Pubkey(data[0:32])) != selector["mint"]:
                continue
            accounts.append({"pubkey": key, "account": {
                "lamports": account.lamports, "owner": program,
                "data": [base64.b64encode(data).decode(), "base64"], "executable": False,
                "rentEpoch": 18446744073709551615, "space": len(data)}})
        return _context(self.ledger, _commitment(config), accounts)

    def rpc_requestAirdrop(self, params: list[Any]) -> str:
        key = _pubkey(params)
        if len(params) < 2 or not isinstance(params[1], int) or params[1] <= 0:
            raise invalid("Invalid params: lamports")
        return self.ledger.airdrop(key, params[1])

    # -- transactions -----------------------------------------------------------------
    def rpc_sendTransaction(self, params: list[Any]) -> str:
        config = _config(params, 1)
        tx = _decode_wire(params, config)
        try:
            return self.ledger.send(tx, skip_preflight=bool(config.get("skipPreflight", False)))
        except SendError as exc:
            raise RpcFailure(exc.code, exc.message, exc.data) from None

    def rpc_simulateTransaction(self, params: list[Any]) -> dict[str, Any]:
        config = _config(params, 1)
        tx = _decode_wire(params, config)
        err, logs, units = self.ledger.simulate(tx)
        return _context(self.ledger, _commitment(config), {
            "err": err, "logs": logs, "accounts": None, "unitsConsumed": units,
            "returnData": None})

    def rpc_getSignatureStatuses(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], list):
            raise invalid("Invalid params: expected a list of signatures")
        if len(params[0]) > 256:
            raise invalid("Too many inputs provided; max 256")
        # Without searchTransactionHistory a node answers from its status cache alone: the
        # slots of the last STATUS_CACHE_SLOTS roots and what is newer.
        searched = bool(_config(params, 1).get("searchTransactionHistory"))
        oldest = 0 if searched else self.ledger.slot_at("finalized") - STATUS_CACHE_SLOTS
        values: list[dict[str, Any] | None] = []
        for text in params[0]:
            record = self.ledger.by_signature.get(_signature(text))
            if record is None or record.slot < oldest:
                values.append(None)
            else:
                level = self.ledger.level_of(record.slot)
                values.append(encoding.status_entry(record, self.ledger.slot, level))
        return _context(self.ledger, "processed", values)

    def rpc_getSignaturesForAddress(self, params: list[Any]) -> list[orjson.Fragment]:
        key = _pubkey(params)
        config = _config(params, 1)
        commitment = _confirmed_commitment(config)
        _min_context(self.ledger, config, commitment)
        limit = config.get("limit") or 1000
        if not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise invalid("Invalid limit; max 1000")
        before = _signature(config["before"]) if config.get("before") else None
        until = _signature(config["until"]) if config.get("until") else None
        records = self.ledger.signatures_for(str(key), commitment=commitment, before=before,
                                             until=until, limit=limit)
        entries: list[orjson.Fragment] = []
        for record in records:
            level = self.ledger.level_of(record.slot)
            entry = record.listed.get(level)
            if entry is None:
                entry = record.listed[level] = orjson.Fragment(orjson.dumps(
                    encoding.signature_entry(record, level)))
            entries.append(entry)
        return entries

    def rpc_getTransaction(self, params: list[Any]) -> orjson.Fragment | None:
        if not params:
            raise invalid("Invalid params: missing signature")
        # A signature the ledger holds (or held) is valid: skip decoding it again.
        known = isinstance(params[0], str) and (params[0] in self.ledger.by_signature
                                                or params[0] in self.ledger.dropped_signatures)
        signature = params[0] if known else _signature(params[0])
        config = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        if len(params) > 1 and isinstance(params[1], str):
            config = {"encoding": params[1]}
        commitment = _confirmed_commitment(config)
        enc = config.get("encoding", "json")
        if enc not in ("json", "jsonParsed", "base64", "base58"):
            raise invalid(f"Invalid params: unknown encoding {enc!r}")
        if enc == "base58":
            raise invalid("Invalid params: base58 encoding is deprecated, use base64")
        record = self.ledger.transaction(signature, commitment)
        if record is None:
            return None
        max_version = config.get("maxSupportedTransactionVersion")
        if record.versioned and max_version is None:
            raise RpcFailure(-32015, "Transaction version (0) is not supported by the requesting "
                             "client. Please try the request again with the following configuration "
                             "parameter: \"maxSupportedTransactionVersion\": 0")
        key = (enc, max_version is not None)
        rendered = record.rendered.get(key)
        if rendered is None:
            rendered = record.rendered[key] = orjson.Fragment(orjson.dumps(
                encoding.transaction_result(record, enc, versioned_ok=key[1])))
        return rendered

    def rpc_getBlockTime(self, params: list[Any]) -> int:
        if not params or not isinstance(params[0], int):
            raise invalid("Invalid params: expected a slot")
        block = self.ledger.block(params[0])
        if block is None:
            raise _missing_block(self.ledger, params[0])
        return block.block_time

    def rpc_getBlocksWithLimit(self, params: list[Any]) -> list[int]:
        """Slots that hold a block, from ``start_slot`` on, at most ``limit`` of them (agave:
        confirmed or finalized only, a limit of at most 500,000)."""
        if len(params) < 2 or not all(type(p) is int and p >= 0 for p in params[:2]):
            raise invalid("Invalid params: expected a start slot and a limit")
        start, limit = params[0], params[1]
        if limit > MAX_BLOCKS_RANGE:
            raise invalid(f"Limit too large; max {MAX_BLOCKS_RANGE}")
        commitment = _confirmed_commitment(_config(params, 2))
        found: list[int] = []
        for slot in range(start, self.ledger.slot_at(commitment) + 1):
            if len(found) == limit:
                break
            if self.ledger.block(slot) is not None:
                found.append(slot)
        return found

    def rpc_getBlock(self, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], int):
            raise invalid("Invalid params: expected a slot")
        config = _config(params, 1)
        commitment = _commitment(config)
        block = self.ledger.block(params[0])
        if block is None or block.slot > self.ledger.slot_at(commitment):
            raise _missing_block(self.ledger, params[0])
        details = config.get("transactionDetails", "full")
        enc = config.get("encoding", "json")
        body: dict[str, Any] = {"blockHeight": block.slot, "blockTime": block.block_time,
                                "blockhash": block.blockhash, "parentSlot": block.parent,
                                "previousBlockhash": self._previous_hash(block)}
        if details == "full":
            body["transactions"] = [
                {k: v for k, v in encoding.transaction_result(
                    r, enc, versioned_ok=config.get("maxSupportedTransactionVersion") is not None).items()
                 if k in ("transaction", "meta", "version")} for r in block.transactions]
        elif details == "signatures":
            body["signatures"] = [r.signature for r in block.transactions]
        return body

    def _previous_hash(self, block: Any) -> str:
        parent = self.ledger.blocks.get(block.parent)
        return parent.blockhash if parent is not None else self.ledger.genesis_hash


def _missing_block(ledger: Ledger, slot: int) -> RpcFailure:
    if slot in ledger.dropped_slots or (slot < ledger.slot and slot not in ledger.blocks):
        return RpcFailure(-32007, f"Slot {slot} was skipped, or missing due to ledger jump to "
                                  "recent snapshot")
    return RpcFailure(-32004, f"Block not available for slot {slot}")
