"""Decoder throughput: ``python tests/bench/bench_decode.py`` prints figures, asserts nothing.

Measures, on one core, getTransaction responses as raw bytes -> DecodedTransaction
(JSON parse included) for the two typical marketplace transfers, in ``json``:

* SOL System transfer + AMOCA memo,
* USDC transferChecked + AMOCA memo (with the token balances that resolve owners),

and compares with decoding the same bytes through solders' typed response objects
(``GetTransactionResp.from_json`` then walking its typed fields to extract the same
legs and memo) in the same process. Also the real fixtures, per encoding, when the
shared fixtures folder is beside the repository (or at ``AMOCA_SHARED_DIR``).
Target: >= 20,000 tx/s for the typical transfers.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from solders.pubkey import Pubkey
from solders.rpc.responses import GetTransactionResp
from solders.signature import Signature

from indexer.decode import decode_transaction_bytes, parse_memo
from indexer.decode.base58 import b58decode, b58encode

SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105  (a program id)
MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
USER = str(Pubkey(bytes([4]) * 32))
AGENT = str(Pubkey(bytes([2]) * 32))
USER_USDC = str(Pubkey(bytes([14]) * 32))
AGENT_USDC = str(Pubkey(bytes([12]) * 32))
SIGNATURE = str(Signature(bytes([7]) * 64))
MEMO_TEXT = "amoca:1:payment;task=3f2b8c1e-5d4a-4b6f-9c7e-1a2b3c4d5e6f"
WATCHED = frozenset({AGENT})


def _envelope(
    keys: list[str],
    instructions: list[dict[str, Any]],
    logs: list[str],
    token_balances: tuple[list[Any], list[Any]] = ([], []),
) -> bytes:
    """A json-encoded getTransaction response shaped like a current mainnet node's."""
    result = {
        "blockTime": 1_731_232_782,
        "meta": {
            "computeUnitsConsumed": 6_500,
            "err": None,
            "fee": 5_000,
            "innerInstructions": [],
            "loadedAddresses": {"readonly": [], "writable": []},
            "logMessages": logs,
            "postBalances": [9_744_995_000, 1_250_000_000, 1, 521_498_880][: len(keys)]
            + [1] * max(0, len(keys) - 4),
            "postTokenBalances": token_balances[1],
            "preBalances": [9_995_000_000, 1_000_000_000, 1, 521_498_880][: len(keys)]
            + [1] * max(0, len(keys) - 4),
            "preTokenBalances": token_balances[0],
            "rewards": [],
            "status": {"Ok": None},
        },
        "slot": 300_547_625,
        "transaction": {
            "message": {
                "accountKeys": keys,
                "header": {
                    "numReadonlySignedAccounts": 0,
                    "numReadonlyUnsignedAccounts": 2,
                    "numRequiredSignatures": 1,
                },
                "instructions": instructions,
                "recentBlockhash": "7F3ptA9dwyosGYK2RMZneutNEfc6PruonnZcqVH35wyG",
            },
            "signatures": [SIGNATURE],
        },
        "version": 0,
    }
    return orjson.dumps({"jsonrpc": "2.0", "result": result, "id": 1})


def sol_payment() -> bytes:
    keys = [USER, AGENT, SYSTEM, MEMO]
    data = b58encode((2).to_bytes(4, "little") + (250_000_000).to_bytes(8, "little"))
    instructions = [
        {"accounts": [0, 1], "data": data, "programIdIndex": 2, "stackHeight": None},
        {"accounts": [], "data": b58encode(MEMO_TEXT.encode()), "programIdIndex": 3, "stackHeight": None},
    ]
    logs = [
        f"Program {SYSTEM} invoke [1]",
        f"Program {SYSTEM} success",
        f"Program {MEMO} invoke [1]",
        f'Program log: Memo (len {len(MEMO_TEXT)}): "{MEMO_TEXT}"',
        f"Program {MEMO} consumed 7000 of 200000 compute units",
        f"Program {MEMO} success",
    ]
    return _envelope(keys, instructions, logs)


def usdc_payment() -> bytes:
    keys = [USER, USER_USDC, AGENT_USDC, USDC, TOKEN, MEMO]
    data = b58encode(b"\x0c" + (2_500_000).to_bytes(8, "little") + bytes([6]))
    instructions = [
        {"accounts": [1, 3, 2, 0], "data": data, "programIdIndex": 4, "stackHeight": None},
        {"accounts": [], "data": b58encode(MEMO_TEXT.encode()), "programIdIndex": 5, "stackHeight": None},
    ]

    def balance(index: int, owner: str, amount: int) -> dict[str, Any]:
        return {
            "accountIndex": index,
            "mint": USDC,
            "owner": owner,
            "programId": TOKEN,
            "uiTokenAmount": {
                "amount": str(amount),
                "decimals": 6,
                "uiAmount": amount / 1e6,
                "uiAmountString": str(amount / 1e6),
            },
        }

    pre = [balance(1, USER, 10_000_000), balance(2, AGENT, 0)]
    post = [balance(1, USER, 7_500_000), balance(2, AGENT, 2_500_000)]
    logs = [
        f"Program {TOKEN} invoke [1]",
        "Program log: Instruction: TransferChecked",
        f"Program {TOKEN} consumed 6200 of 200000 compute units",
        f"Program {TOKEN} success",
        f"Program {MEMO} invoke [1]",
        f'Program log: Memo (len {len(MEMO_TEXT)}): "{MEMO_TEXT}"',
        f"Program {MEMO} consumed 7000 of 200000 compute units",
        f"Program {MEMO} success",
    ]
    return _envelope(keys, instructions, logs, (pre, post))


def decode_with_solders(raw: bytes) -> tuple[list[tuple[str, str, int, str | None]], Any]:
    """The same legs and memo, through solders' typed response objects."""
    response = GetTransactionResp.from_json(raw.decode())
    value = response.value
    assert value is not None
    encoded = value.transaction
    meta = encoded.meta
    message = encoded.transaction.message
    keys = [str(key) for key in message.account_keys]
    if meta.loaded_addresses is not None:
        keys += [str(key) for key in meta.loaded_addresses.writable]
        keys += [str(key) for key in meta.loaded_addresses.readonly]
    owners: dict[str, tuple[str, str]] = {}
    for balances in (meta.pre_token_balances or [], meta.post_token_balances or []):
        for balance in balances:
            owners[keys[balance.account_index]] = (str(balance.owner), str(balance.mint))
    legs: list[tuple[str, str, int, str | None]] = []
    memo: Any = None
    for ix in message.instructions:
        program = keys[ix.program_id_index]
        data = b58decode(ix.data)
        accounts = [keys[i] for i in ix.accounts]
        if program == SYSTEM and data[:4] == b"\x02\x00\x00\x00":
            legs.append((accounts[0], accounts[1], int.from_bytes(data[4:12], "little"), None))
        elif program == TOKEN and data[:1] == b"\x0c":
            source, destination = owners[accounts[0]], owners[accounts[2]]
            legs.append((source[0], destination[0], int.from_bytes(data[1:9], "little"), source[1]))
        elif program == MEMO:
            memo = parse_memo(data)
    return legs, memo


def measure(
    label: str,
    function: Callable[[bytes], Any],
    payloads: list[bytes],
    *,
    runs: int = 7,
    minimum_s: float = 0.4,
) -> float:
    """Median tx/s over ``runs`` runs, each long enough to be timed reliably."""
    loops = 1
    while True:  # calibrate the loop count to about minimum_s per run
        start = time.perf_counter()
        for _ in range(loops):
            for payload in payloads:
                function(payload)
        elapsed = time.perf_counter() - start
        if elapsed >= minimum_s / 4:
            loops = max(1, int(loops * minimum_s / elapsed))
            break
        loops *= 4
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(loops):
            for payload in payloads:
                function(payload)
        rates.append(loops * len(payloads) / (time.perf_counter() - start))
    median = statistics.median(rates)
    spread = (min(rates), max(rates))
    print(
        f"  {label:<46} {median:>10,.0f} tx/s  ({1e6 / median:6.1f} us/tx; "
        f"min {spread[0]:,.0f} max {spread[1]:,.0f}, {runs} runs x {loops * len(payloads):,} tx)"
    )
    return median


def _fixtures() -> Path:
    override = os.environ.get("AMOCA_SHARED_DIR")
    base = Path(override) if override else Path(__file__).resolve().parents[2].parent / "shared"
    return base / "fixtures" / "getTransaction"


def main() -> None:
    print(f"decode benchmark: Python {platform.python_version()} on {platform.machine()}, one core")
    sol, usdc = sol_payment(), usdc_payment()
    typical = [sol, usdc]
    # Sanity: both paths find the same legs before anything is timed.
    for raw in typical:
        decoded = decode_transaction_bytes(raw, WATCHED)
        legs, _ = decode_with_solders(raw)
        assert [(r.counterparty_wallet, r.agent_wallet, r.amount_raw, r.mint) for r in decoded.rows] == legs
        assert decoded.rows[0].transaction_type == "payment"
    print(f"typical marketplace transfers, json encoding, raw bytes ({len(sol)} / {len(usdc)} bytes):")

    def ours(raw: bytes) -> Any:
        return decode_transaction_bytes(raw, WATCHED)

    rate_sol = measure("SOL transfer + memo (ours)", ours, [sol])
    rate_usdc = measure("USDC transferChecked + memo (ours)", ours, [usdc])
    rate_ours = measure("mix 1:1 (ours)", ours, typical)
    rate_solders = measure("mix 1:1 (solders typed responses)", decode_with_solders, typical)
    measure("mix 1:1 (orjson.loads only, for reference)", orjson.loads, typical)
    print(
        f"  ratio ours / solders typed: {rate_ours / rate_solders:.2f}x; "
        f"target 20,000 tx/s: {'met' if min(rate_sol, rate_usdc) >= 20_000 else 'NOT met'}"
    )

    directory = _fixtures()
    if directory.is_dir():
        print(f"real fixtures ({directory.name}/), everything watched:")

        class Everyone:
            def __contains__(self, item: object) -> bool:
                return True

        everyone = Everyone()
        for encoding in ("json.", "jsonParsed.", "json_parsed.", "base64."):
            files = sorted(p for p in directory.glob(f"*.{encoding}*") if "request" not in p.name)
            if files:
                payloads = [p.read_bytes() for p in files]
                measure(
                    f"{encoding.rstrip('.')} ({len(files)} files)",
                    lambda raw: decode_transaction_bytes(raw, everyone),
                    payloads,
                )
    else:
        print(f"(fixtures not found at {directory}; skipped)", file=sys.stderr)


if __name__ == "__main__":
    main()
