"""Decoder throughput: ``python tests/bench/bench_decode.py [rounds]`` prints figures, asserts nothing.

Measures, on one core, getTransaction responses as raw bytes -> DecodedTransaction
(JSON parse included) for the two typical marketplace transfers:

* SOL System transfer + AMOCA memo,
* USDC transferChecked + AMOCA memo (with the token balances that resolve owners),

each served in ``json`` (the headline figure), ``jsonParsed`` and ``base64``. The
baseline is the same decoder with solders' typed response objects as its parser
(``GetTransactionResp.from_json``, then walking the typed fields into the same
instructions and token accounts); everything after the walk is shared, and both
paths must produce equal results before anything is timed, so the ratio compares
parse + walk and nothing else.

Noise on a shared machine: every candidate is timed once per round, round-robin, so
a slow spell hits all of them; figures are medians over the rounds, the ratio is the
median of the per-round ratios. Rates are per CPU second of this process
(``time.process_time``), the measure of one core's throughput; wall-clock rates are
shown beside them. Also the real fixtures, per encoding (``../shared`` beside the
repository, or ``AMOCA_SHARED_DIR``). Target: >= 20,000 tx/s for the typical
transfers in json.

Memo texts are parsed once and cached (``indexer.decode.memo``): these loops decode the
same transfers over and over, so every memo after the first is a cache hit. One more
candidate clears the cache before every decode, for the cost of a memo never seen before
(on the workload's stream of transfers, 90% of memos are hits).
"""

from __future__ import annotations

import base64
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from solders.hash import Hash
from solders.instruction import CompiledInstruction
from solders.message import MessageHeader, MessageV0
from solders.pubkey import Pubkey
from solders.rpc.responses import GetTransactionResp
from solders.signature import Signature
from solders.transaction import VersionedTransaction

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for tests.support

from indexer.decode import DecodedTransaction, decode_transaction_bytes
from indexer.decode.base58 import b58decode, b58encode
from indexer.decode.legs import RELEVANT_PROGRAMS, Instruction, TokenAccount
from indexer.decode.memo import _parse_text
from indexer.decode.transaction import _assemble, _memo_bytes, _Message
from tests.support.paths import shared_dir

SYSTEM = "11111111111111111111111111111111"
TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105  (a program id)
MEMO = "MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
USER = str(Pubkey(bytes([4]) * 32))
AGENT = str(Pubkey(bytes([2]) * 32))
USER_USDC = str(Pubkey(bytes([14]) * 32))
AGENT_USDC = str(Pubkey(bytes([12]) * 32))
SIGNATURE = str(Signature(bytes([7]) * 64))
BLOCKHASH = "7F3ptA9dwyosGYK2RMZneutNEfc6PruonnZcqVH35wyG"
MEMO_TEXT = "amoca:1:payment;task=3f2b8c1e-5d4a-4b6f-9c7e-1a2b3c4d5e6f"
WATCHED = frozenset({AGENT})
ENCODINGS = ("json", "jsonParsed", "base64")


@dataclass(frozen=True)
class Transfer:
    """One typical transfer, rendered in every encoding the way a current mainnet node does."""

    keys: list[str]
    readonly_unsigned: int
    instructions: list[tuple[int, list[int], bytes, Any]]  # program index, accounts, data, parsed
    logs: list[str]
    token_balances: tuple[list[Any], list[Any]] = ([], [])

    def render(self, encoding: str) -> bytes:
        count = len(self.keys)
        meta: dict[str, Any] = {
            "computeUnitsConsumed": 6_500,
            "err": None,
            "fee": 5_000,
            "innerInstructions": [],
            "loadedAddresses": {"readonly": [], "writable": []},
            "logMessages": self.logs,
            "postBalances": ([9_744_995_000, 1_250_000_000, 1, 521_498_880] + [1] * count)[:count],
            "postTokenBalances": self.token_balances[1],
            "preBalances": ([9_995_000_000, 1_000_000_000, 1, 521_498_880] + [1] * count)[:count],
            "preTokenBalances": self.token_balances[0],
            "rewards": [],
            "status": {"Ok": None},
        }
        header = {
            "numReadonlySignedAccounts": 0,
            "numReadonlyUnsignedAccounts": self.readonly_unsigned,
            "numRequiredSignatures": 1,
        }
        transaction: Any
        if encoding == "json":
            instructions = [
                {"accounts": accounts, "data": b58encode(data), "programIdIndex": index, "stackHeight": None}
                for index, accounts, data, _ in self.instructions
            ]
            transaction = {
                "message": {
                    "accountKeys": self.keys,
                    "header": header,
                    "instructions": instructions,
                    "recentBlockhash": BLOCKHASH,
                },
                "signatures": [SIGNATURE],
            }
        elif encoding == "jsonParsed":
            del meta["loadedAddresses"]  # jsonParsed lists lookup-table sources in accountKeys
            writable_end = count - self.readonly_unsigned
            keys = [
                {"pubkey": key, "signer": i == 0, "source": "transaction", "writable": i < writable_end}
                for i, key in enumerate(self.keys)
            ]
            parsed = [
                {"parsed": parsed, "program": name, "programId": self.keys[program], "stackHeight": None}
                for program, _, _, (name, parsed) in self.instructions
            ]
            transaction = {
                "message": {"accountKeys": keys, "instructions": parsed, "recentBlockhash": BLOCKHASH},
                "signatures": [SIGNATURE],
            }
        else:
            message = MessageV0(
                MessageHeader(1, 0, self.readonly_unsigned),
                [Pubkey.from_string(key) for key in self.keys],
                Hash.from_string(BLOCKHASH),
                [CompiledInstruction(i, data, bytes(accounts)) for i, accounts, data, _ in self.instructions],
                [],
            )
            wire = bytes(VersionedTransaction.populate(message, [Signature.from_string(SIGNATURE)]))
            transaction = [base64.b64encode(wire).decode(), "base64"]
        result = {
            "blockTime": 1_731_232_782,
            "meta": meta,
            "slot": 300_547_625,
            "transaction": transaction,
            "version": 0,
        }
        return orjson.dumps({"jsonrpc": "2.0", "result": result, "id": 1})


def _memo_logs(program_logs: list[str]) -> list[str]:
    return [
        *program_logs,
        f"Program {MEMO} invoke [1]",
        f'Program log: Memo (len {len(MEMO_TEXT)}): "{MEMO_TEXT}"',
        f"Program {MEMO} consumed 7000 of 200000 compute units",
        f"Program {MEMO} success",
    ]


def sol_payment() -> Transfer:
    lamports = 250_000_000
    transfer = {"info": {"destination": AGENT, "lamports": lamports, "source": USER}, "type": "transfer"}
    return Transfer(
        keys=[USER, AGENT, SYSTEM, MEMO],
        readonly_unsigned=2,
        instructions=[
            (2, [0, 1], (2).to_bytes(4, "little") + lamports.to_bytes(8, "little"), ("system", transfer)),
            (3, [], MEMO_TEXT.encode(), ("spl-memo", MEMO_TEXT)),
        ],
        logs=_memo_logs([f"Program {SYSTEM} invoke [1]", f"Program {SYSTEM} success"]),
    )


def usdc_payment() -> Transfer:
    amount = 2_500_000

    def balance(index: int, owner: str, raw: int) -> dict[str, Any]:
        return {
            "accountIndex": index,
            "mint": USDC,
            "owner": owner,
            "programId": TOKEN,
            "uiTokenAmount": {
                "amount": str(raw),
                "decimals": 6,
                "uiAmount": raw / 1e6,
                "uiAmountString": str(raw / 1e6),
            },
        }

    ui = {"amount": str(amount), "decimals": 6, "uiAmount": amount / 1e6, "uiAmountString": str(amount / 1e6)}
    transfer = {
        "info": {
            "authority": USER,
            "destination": AGENT_USDC,
            "mint": USDC,
            "source": USER_USDC,
            "tokenAmount": ui,
        },
        "type": "transferChecked",
    }
    return Transfer(
        keys=[USER, USER_USDC, AGENT_USDC, USDC, TOKEN, MEMO],
        readonly_unsigned=3,
        instructions=[
            (4, [1, 3, 2, 0], b"\x0c" + amount.to_bytes(8, "little") + bytes([6]), ("spl-token", transfer)),
            (5, [], MEMO_TEXT.encode(), ("spl-memo", MEMO_TEXT)),
        ],
        logs=_memo_logs(
            [
                f"Program {TOKEN} invoke [1]",
                "Program log: Instruction: TransferChecked",
                f"Program {TOKEN} consumed 6200 of 200000 compute units",
                f"Program {TOKEN} success",
            ]
        ),
        token_balances=(
            [balance(1, USER, 10_000_000), balance(2, AGENT, 0)],
            [balance(1, USER, 7_500_000), balance(2, AGENT, 2_500_000)],
        ),
    )


def decode_with_solders(raw: bytes) -> DecodedTransaction:
    """The baseline: the same decoder with solders' typed responses as the parser (json only).

    Parse with ``GetTransactionResp.from_json``, walk the typed fields into the same
    instructions and token accounts our json walk builds, then the shared second half.
    """
    response: Any = GetTransactionResp.from_json(raw.decode())  # typed by solders; Any to walk it
    value = response.value
    assert value is not None
    encoded = value.transaction
    meta = encoded.meta
    assert meta is not None
    message = encoded.transaction.message
    keys = [str(key) for key in message.account_keys]
    if meta.loaded_addresses is not None:
        keys += [str(key) for key in meta.loaded_addresses.writable]
        keys += [str(key) for key in meta.loaded_addresses.readonly]
    token_accounts: dict[str, TokenAccount] = {}
    for balances in (meta.pre_token_balances or [], meta.post_token_balances or []):
        for balance in balances:
            owner = None if balance.owner is None else str(balance.owner)
            token_accounts[keys[balance.account_index]] = TokenAccount(
                owner, str(balance.mint), balance.ui_token_amount.decimals
            )
    inner: dict[int, list[Any]] = {}
    for group in meta.inner_instructions or []:
        inner.setdefault(group.index, []).extend(group.instructions)
    instructions: list[Instruction] = []
    for index, compiled in enumerate(message.instructions):
        outer = keys[compiled.program_id_index]
        for position, ix in [(None, compiled), *enumerate(inner.get(index, ()))]:
            program = keys[ix.program_id_index]
            if program in RELEVANT_PROGRAMS:
                accounts = tuple(keys[i] for i in ix.accounts)
                data = b58decode(ix.data)
                instructions.append(Instruction(program, accounts, data, None, index, position, outer))
    parsed = _Message("json", str(encoded.transaction.signatures[0]), keys, instructions)
    version: Literal["legacy", 0] = 0 if encoded.version == 0 else "legacy"
    return _assemble(
        parsed, token_accounts, value.slot, value.block_time, version, meta.fee, meta.err, WATCHED, None
    )


def ours(raw: bytes) -> DecodedTransaction:
    return decode_transaction_bytes(raw, WATCHED)


def ours_memo_unseen(raw: bytes) -> DecodedTransaction:
    _parse_text.cache_clear()
    _memo_bytes.cache_clear()
    return decode_transaction_bytes(raw, WATCHED)


@dataclass
class Candidate:
    label: str
    function: Callable[[bytes], Any]
    payloads: list[bytes]
    loops: int = 1
    cpu_rates: list[float] = field(default_factory=list)
    wall_rates: list[float] = field(default_factory=list)


def _time(candidate: Candidate) -> tuple[float, float]:
    function, payloads = candidate.function, candidate.payloads
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(candidate.loops):
        for payload in payloads:
            function(payload)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    count = candidate.loops * len(payloads)
    return count / max(cpu, 1e-9), count / wall


def run_interleaved(candidates: list[Candidate], rounds: int, seconds_each: float = 0.25) -> None:
    """Calibrate each candidate to about ``seconds_each`` of CPU, then time them round-robin."""
    for candidate in candidates:
        while True:
            start = time.process_time()
            _time(candidate)
            if time.process_time() - start >= seconds_each / 5:
                candidate.loops = max(1, int(candidate.loops * seconds_each / (time.process_time() - start)))
                break
            candidate.loops *= 5
    for _ in range(rounds):
        for candidate in candidates:
            cpu, wall = _time(candidate)
            candidate.cpu_rates.append(cpu)
            candidate.wall_rates.append(wall)


def report(candidate: Candidate) -> float:
    cpu, wall = candidate.cpu_rates, candidate.wall_rates
    median = statistics.median(cpu)
    print(
        f"  {candidate.label:<44} {median:>9,.0f} tx/s per CPU s ({1e6 / median:5.1f} us/tx; "
        f"min {min(cpu):,.0f} max {max(cpu):,.0f}) | wall median {statistics.median(wall):,.0f}"
    )
    return median


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    python = f"Python {platform.python_version()} on {platform.machine()}"
    print(f"decode benchmark: {python}, one core, {rounds} rounds")
    transfers = {"SOL": sol_payment(), "USDC": usdc_payment()}
    rendered = {(name, enc): t.render(enc) for name, t in transfers.items() for enc in ENCODINGS}
    # Both paths must agree, in every encoding, before anything is timed.
    for (name, encoding), raw in rendered.items():
        decoded = ours(raw)
        assert decoded.encoding == encoding
        assert [(row.transaction_type, row.agent_wallet, row.amount_raw) for row in decoded.rows] == [
            ("payment", AGENT, 250_000_000 if name == "SOL" else 2_500_000)
        ], (name, encoding, decoded)
        reference = ours(rendered[(name, "json")])
        assert decoded.rows == reference.rows, (name, encoding)
        assert decoded.memo == reference.memo, (name, encoding)
        if encoding == "json":
            assert decode_with_solders(raw) == decoded, name
    json_mix, parsed_mix, base64_mix = ([rendered["SOL", enc], rendered["USDC", enc]] for enc in ENCODINGS)
    print(
        f"typical marketplace transfers, raw response bytes, parse included "
        f"(json {len(json_mix[0])} / {len(json_mix[1])} bytes):"
    )
    candidates = [
        Candidate("json, mix 1:1 (ours)", ours, json_mix),
        Candidate("json, mix 1:1 (solders typed responses)", decode_with_solders, json_mix),
        Candidate("json, SOL transfer + memo (ours)", ours, [rendered[("SOL", "json")]]),
        Candidate("json, USDC transferChecked + memo (ours)", ours, [rendered[("USDC", "json")]]),
        Candidate("jsonParsed, mix 1:1 (ours)", ours, parsed_mix),
        Candidate("base64, mix 1:1 (ours)", ours, base64_mix),
        Candidate("json, mix 1:1 (orjson.loads only, reference)", orjson.loads, json_mix),
        Candidate("json, mix 1:1 (ours, every memo unseen)", ours_memo_unseen, json_mix),
    ]
    run_interleaved(candidates, rounds)
    medians = [report(candidate) for candidate in candidates]
    ours_rates, solders_rates = candidates[0].cpu_rates, candidates[1].cpu_rates
    ratios = [a / b for a, b in zip(ours_rates, solders_rates, strict=True)]
    parse_only = [a / b for a, b in zip(candidates[6].cpu_rates, ours_rates, strict=True)]
    print(
        f"  one json decode costs {statistics.median(parse_only):.1f}x one orjson.loads of the same bytes "
        f"(median of per-round ratios: a load-independent view of the same figure)"
    )
    worst = min(medians[2], medians[3])
    print(
        f"  ratio ours / solders typed (median of per-round ratios): {statistics.median(ratios):.2f}x "
        f"(min {min(ratios):.2f} max {max(ratios):.2f})"
    )
    verdict = "met" if worst >= 20_000 else "NOT met"
    print(f"  target 20,000 tx/s (json, the slower of SOL and USDC: {worst:,.0f}): {verdict}")

    directory = shared_dir() / "fixtures" / "getTransaction"
    if not directory.is_dir():
        print(f"(fixtures not found at {directory}; skipped)", file=sys.stderr)
        return

    class Everyone:
        def __contains__(self, item: object) -> bool:
            return True

    everyone = Everyone()
    fixtures = []
    for encoding in ("json", "jsonParsed", "base64"):
        names = ("json_parsed", "jsonParsed") if encoding == "jsonParsed" else (encoding,)
        files = sorted(p for name in names for p in directory.glob(f"*.{name}.*") if "request" not in p.name)
        if files:
            fixtures.append(
                Candidate(
                    f"{encoding} ({len(files)} files)",
                    lambda raw: decode_transaction_bytes(raw, everyone),
                    [p.read_bytes() for p in files],
                )
            )
    print(f"real fixtures ({directory.name}/, mainnet/devnet responses of every size), everything watched:")
    run_interleaved(fixtures, rounds)
    for candidate in fixtures:
        report(candidate)


if __name__ == "__main__":
    main()
