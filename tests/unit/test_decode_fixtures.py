"""Golden tests: real mainnet/devnet getTransaction responses, checked against ground truth.

The fixtures live beside the repository (``../shared/fixtures``), or wherever
``AMOCA_SHARED_DIR`` points. ``ground_truth.json`` was computed from the responses'
pre/post balances, independently of this decoder, so the conservation test below
(every token balance change is explained by the decoded legs) is a real cross-check.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from indexer.decode import DecodedTransaction, Leg, decode_transaction_bytes
from indexer.decode.models import jsonb_key_order
from indexer.errors import DecodeError


def _shared_dir() -> Path:
    override = os.environ.get("AMOCA_SHARED_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared"


FIXTURES = _shared_dir() / "fixtures"
TRANSACTIONS = FIXTURES / "getTransaction"
GROUND_TRUTH: dict[str, Any] = json.loads((FIXTURES / "ground_truth.json").read_text())
RESPONSE_FILES = sorted(name for name in GROUND_TRUTH if (TRANSACTIONS / name).is_file())


class _Everyone:
    """A watched set containing every wallet: decode every leg of a transaction."""

    def __contains__(self, item: object) -> bool:
        return True


def decode_file(name: str, *watched: str) -> DecodedTransaction:
    return decode_transaction_bytes((TRANSACTIONS / name).read_bytes(), set(watched))


def all_legs(decoded: DecodedTransaction) -> list[Leg]:
    """Each leg once, whether it made a row or was skipped."""
    legs: dict[tuple[int, int | None], Leg] = {}
    for row in decoded.rows:
        for leg in row.legs:
            legs[leg.instruction_index, leg.inner_index] = leg
    for skipped in decoded.skipped:
        legs[skipped.leg.instruction_index, skipped.leg.inner_index] = skipped.leg
    return [legs[key] for key in sorted(legs, key=lambda k: (k[0], -1 if k[1] is None else k[1]))]


def test_fixtures_are_present() -> None:
    assert len(RESPONSE_FILES) == 14, f"fixtures not found under {FIXTURES}"


@pytest.mark.parametrize("name", RESPONSE_FILES)
def test_every_fixture_decodes_and_matches_ground_truth_header(name: str) -> None:
    truth = GROUND_TRUTH[name]
    decoded = decode_transaction_bytes((TRANSACTIONS / name).read_bytes(), _Everyone())
    assert decoded.signature == truth["signature"]
    assert decoded.slot == truth["slot"]
    assert decoded.block_time == truth["blockTime"]
    assert decoded.fee_payer == truth["fee_payer"]
    assert decoded.fee == truth["fee"]
    assert decoded.err == truth["err"]
    assert decoded.status_seed == ("failed" if truth["err"] else "pending")
    assert decoded.version == (0 if truth["version_field"] == 0 else "legacy")
    expected_encoding = {"json": "json", "jsonParsed": "jsonParsed", "base64": "base64"}[truth["encoding"]]
    assert decoded.encoding == expected_encoding
    memo_logs = [line.strip('"') for line in truth["memo_logs"]]
    assert ([decoded.memo] if decoded.memo is not None else []) == memo_logs


def _objects(value: Any) -> list[dict[str, Any]]:
    """Every JSON object in ``value``, nested ones too."""
    if isinstance(value, dict):
        return [value, *(o for v in value.values() for o in _objects(v))]
    if isinstance(value, list):
        return [o for v in value for o in _objects(v)]
    return []


@pytest.mark.parametrize("name", RESPONSE_FILES)
def test_metadata_keys_come_in_jsonb_storage_order(name: str) -> None:
    """The server's sort of each object's keys then finds them sorted (a DB test checks
    that ``jsonb_key_order`` is PostgreSQL's own order)."""
    decoded = decode_transaction_bytes((TRANSACTIONS / name).read_bytes(), _Everyone())
    for row in decoded.rows:
        for obj in _objects(row.metadata_dict()):
            assert list(obj) == sorted(obj, key=jsonb_key_order)


@pytest.mark.parametrize("name", [n for n in RESPONSE_FILES if "spl-to-spl" not in n])
def test_token_balance_changes_are_explained_by_legs(name: str) -> None:
    """Conservation: for every token account, sum of legs in - sum of legs out = its balance delta."""
    truth = GROUND_TRUTH[name]
    decoded = decode_transaction_bytes((TRANSACTIONS / name).read_bytes(), _Everyone())
    net: Counter[str] = Counter()
    for leg in all_legs(decoded):
        if leg.mint is not None:
            net[leg.source_account] -= leg.amount_raw
            net[leg.destination_account] += leg.amount_raw
    assert {a: v for a, v in net.items() if v} == {t["account"]: t["delta"] for t in truth["token_deltas"]}


# The USDC fixture's payer also funds a new token account with createAccount, which is
# not a transfer, so its lamports are not explained by legs.
_SOL_EXPLAINED = [n for n in RESPONSE_FILES if "usdc_transferChecked" not in n]


@pytest.mark.parametrize("name", _SOL_EXPLAINED)
def test_lamport_changes_are_explained_by_legs_and_fee(name: str) -> None:
    truth = GROUND_TRUTH[name]
    token_accounts = {t["account"] for t in truth["token_deltas"]}
    decoded = decode_transaction_bytes((TRANSACTIONS / name).read_bytes(), _Everyone())
    net: Counter[str] = Counter({truth["fee_payer"]: -truth["fee"]})
    for leg in all_legs(decoded):
        if leg.mint is None:
            net[leg.source_account] -= leg.amount_raw
            net[leg.destination_account] += leg.amount_raw
    expected = {a: v for a, v in truth["lamport_deltas"].items() if a not in token_accounts}
    assert {a: v for a, v in net.items() if v and a not in token_accounts} == expected


# ---------------------------------------------------------------- per fixture
def test_sol_transfer() -> None:
    decoded = decode_file(
        "keyappkit_trx-transfer-sol-ok.jsonParsed.result.json", "3h1zGmCwsRJnVk5BuRNMLsPaQu1y2aqXqXDWYCgrp5UG"
    )
    (row,) = decoded.rows
    assert (row.transaction_type, row.direction, row.counterparty_wallet) == (
        "funding",
        "in",
        "6QuXb6mB6WmRASP2y8AavXh6aabBXEH5ZzrSH5xRrgSm",
    )
    assert (row.amount_raw, row.amount, row.mint, row.memo) == (10_000_000, Decimal("0.01"), None, None)
    assert (row.slot, row.block_time, row.status) == (72410024, 1617684067, "pending")


def test_sol_transfer_seen_from_the_sender_is_skipped() -> None:
    decoded = decode_file(
        "keyappkit_trx-transfer-sol-ok.jsonParsed.result.json", "6QuXb6mB6WmRASP2y8AavXh6aabBXEH5ZzrSH5xRrgSm"
    )
    assert decoded.rows == ()
    assert [(s.reason, s.leg.amount_raw) for s in decoded.skipped] == [("outgoing_not_refund", 10_000_000)]


def test_sol_transfer_with_wallet_memo() -> None:
    decoded = decode_file(
        "keyappkit_sendvialink_sol_transfer_memo.jsonParsed.response.json",
        "2b7iQq3PbWwWTotRSDFNXT9DauU418aCHK4jcAzETUem",
    )
    (row,) = decoded.rows
    assert (row.transaction_type, row.amount_raw, row.counterparty_wallet) == (
        "funding",
        1_000_000,
        "DT1mBDFsNBc1UXa25RdxNvnjL5Lro7su7gX1zpLyCmWe",
    )
    assert (row.memo, row.memo_rejection) == ("transfer", "not_amoca")
    assert row.fee_payer == "FG4Y3yX4AAchp1HvNZ7LfzFTewF2f6nDoMDCohTFrdpT"
    assert decoded.memo_rejection is not None
    assert decoded.memo_rejection.reason == "not_amoca"


def test_usdc_transfer_checked_with_memo() -> None:
    decoded = decode_file(
        "keyappkit_sendvialink_usdc_transferChecked_memo.jsonParsed.response.json",
        "3i476kTBBTy7pBGx4CXwJpJ6phuwLQgcwLTdHhU3c7ui",
    )
    (row,) = decoded.rows
    assert (row.amount_raw, row.amount, row.decimals) == (1000, Decimal("0.001"), 6)
    assert row.mint == "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
    assert row.counterparty_wallet == "8fusVwhgo4oS1fGpZKeRaXrJXQk9auKnAgcj9A97wR3t"
    (leg,) = row.legs
    assert (leg.source_account, leg.destination_account) == (
        "9rB2Poc468mPpY9WMUmaqEPsvJah8SpPB8bKqAjjXp5H",
        "H51DXRt3ubThhdhNeDMScfkbC5X4AWzYfHaZS3JKEfPh",
    )
    assert (leg.instruction, leg.instruction_index, leg.inner) == ("transferChecked", 1, False)
    assert row.memo == "transfer"


def test_ata_rent_payer_gets_no_row() -> None:
    # The fee payer funded the recipient's new token account (createAccount): no transfer.
    decoded = decode_file(
        "keyappkit_sendvialink_usdc_transferChecked_memo.jsonParsed.response.json",
        "FG4Y3yX4AAchp1HvNZ7LfzFTewF2f6nDoMDCohTFrdpT",
    )
    assert (decoded.rows, decoded.skipped) == ((), ())


def test_token_transfer_without_owners_is_unattributed() -> None:
    decoded = decode_file(
        "keyappkit_trx-transfer-spl-to-spl-ok.jsonParsed.result.json",
        "3h1zGmCwsRJnVk5BuRNMLsPaQu1y2aqXqXDWYCgrp5UG",
    )
    assert decoded.rows == ()
    (leg,) = decoded.unattributed
    assert (leg.reason, leg.amount_raw, leg.mint, leg.decimals) == (
        "token_owner_unknown",
        12111,
        "SRMuApVNdxXokk5GT7XD5cUUgXMBCoAz2LHeuAoKWRt",
        6,
    )
    assert leg.authority == "3h1zGmCwsRJnVk5BuRNMLsPaQu1y2aqXqXDWYCgrp5UG"


def test_failed_swap() -> None:
    decoded = decode_file(
        "keyappkit_trx-swap-orca-error.jsonParsed.result.json", "G8PrkEwmVx3kt3rXBin5o1bdDC1cvz7oBnXbHksNg7R4"
    )
    assert decoded.status_seed == "failed"
    assert decoded.err == {"InstructionError": [3, {"Custom": 16}]}
    assert decoded.rows == ()  # createAccount/approve/swap: no transfer leg


def test_devnet_faucet_base64() -> None:
    decoded = decode_file(
        "crosschain_5U2Yvv_devnet_faucet_1SOL_transfer.base64.result.json",
        "Hzn3n914JaSpnxo5mBbmuCDmGL6mxWN9Ac2HzEXFSGtb",
    )
    (row,) = decoded.rows
    assert (row.amount_raw, row.amount) == (1_000_000_000, Decimal(1))
    assert row.counterparty_wallet == "9B5XszUGdMaxCZ7uSQhPzdks5ZQSmWxrmzCSvtJ6Ns6g"
    assert decoded.encoding == "base64"


V0_ALT = "crosschain_2aoWC4_mainnet_v0_alt_SOL_USDC.base64.result.json"


def test_v0_sol_leg_to_a_loaded_writable_address() -> None:
    decoded = decode_file(V0_ALT, "3RY3ngufsn1aPSWE46Ga7sX5pZi2KPCvZG5uGS6TFLZJ")
    (row,) = decoded.rows
    assert (row.amount_raw, row.mint, row.counterparty_wallet) == (
        2_460_497,
        None,
        "41fkvu8LhJDqkF325GTz6HuQRvZmCXVtYoYWPZeVCdux",
    )
    (leg,) = row.legs
    assert (leg.inner, leg.instruction_index, leg.inner_index) == (True, 2, 3)
    assert decoded.version == 0


def test_v0_usdc_legs_resolved_through_loaded_accounts() -> None:
    decoded = decode_file(V0_ALT, "3CznQLcJWpyNKrYyq7qCvZsHn19csgB8g5wvisx4us47")
    (row,) = decoded.rows
    assert (row.amount_raw, row.amount, row.mint) == (
        4_608_152_451,
        Decimal("4608.152451"),
        "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
    )
    decoded = decode_file(V0_ALT, "41fkvu8LhJDqkF325GTz6HuQRvZmCXVtYoYWPZeVCdux")
    (row,) = decoded.rows
    # BT72p68J (a loaded writable token account, owner EM1GQEer) pays into E6GtXLPf.
    assert (row.amount_raw, row.counterparty_wallet) == (
        16_838_513,
        "EM1GQEerfKsrT6eJbehX4nwV3MdTCdjvhUYVytFAuEVg",
    )
    assert sorted(s.leg.amount_raw for s in decoded.skipped) == [2_460_497, 4_608_152_451]


AUDIUS = "audius_2ML2h2_mainnet_v0_4alts_jupiter_swap.json.response.json"


def test_v0_four_lookup_tables_json() -> None:
    decoded = decode_file(AUDIUS, "8dbEDtUgZZ3EFFGfeAg65cCiBCrj4ccxGeijQFiVwxjt")
    (row,) = decoded.rows
    assert (row.transaction_type, row.amount_raw, row.mint, row.decimals) == (
        "funding",
        125_330_271_683,
        "iotEVVZLEywoTn1QdwNPddxPWszn3zFhEot3MfL9fns",
        6,
    )
    assert row.amount == Decimal("125330.271683")
    # The IOT reached the payer from the router's intermediate account (a CPI 18 deep
    # in instruction 2), owned by the router authority 2MFoS3MP.
    assert row.counterparty_wallet == "2MFoS3MPtvyQ4Wh4M9pdfPjz6UhVoNbFbGJAskCPCj3h"
    (leg,) = row.legs
    assert (leg.source_account, leg.destination_account) == (
        "2VLv56bYGyzahopzj9ZcBD2YUseadwVuthAsVva2k2Er",
        "HWRNE1CVdbPWeB6DPAt6JT3Me3KqaMwm9ZHo2Qf1UFst",
    )
    assert (leg.inner, leg.instruction_index, leg.inner_index) == (True, 2, 18)
    # ...and it left the pool's account HVBuRsZH, an address loaded from a lookup table.
    pool = decode_file(AUDIUS, "Cx6WqD4ViGZArdA3nPcneNBJxECftm36CZbtdb7jw9gP")
    assert [s.leg.source_account for s in pool.skipped if s.leg.amount_raw == 125_330_271_683] == [
        "HVBuRsZHAGHL8xKp4DmJFVhLsSDXaDVsxbCykPvnUmHL"
    ]
    (skip,) = decoded.skipped
    assert (skip.reason, skip.leg.amount_raw, skip.leg.mint) == (
        "outgoing_not_refund",
        35_612_273_038,
        "9LzCMqDgTKYz9Drzqnpgee3SGa89up3a247ypMj2xrqM",
    )
    assert skip.leg.source_account == "9WyYVAkVmfnEWJsTrWgCGXSzrkBCq4XpczBRnFa1yKoS"


def test_legacy_version_field() -> None:
    decoded = decode_file(
        "chainbuff_3Vfp5q_mainnet_legacy_SOL_transfer.jsonParsed.web3js_result.json",
        "buffaAJKmNLao65TDTUGq8oB9HgxkfPLGqPMFQapotJ",
    )
    (row,) = decoded.rows
    assert (row.amount_raw, row.amount, row.counterparty_wallet) == (
        1000,
        Decimal("0.000001"),
        "web3xFMwEPrc92NeeXdAigni95NDnnd2NPuajTirao2",
    )
    assert decoded.version == "legacy"


def test_ata_creation_rent_transfer_is_skipped_as_rent() -> None:
    decoded = decode_file(
        "blocto_4Dj8X_devnet_ata_create.json.response.json", "27kVX7JpPZ1bsrSckbR76mV6GeRqtrjoddubfg2zBpHZ"
    )
    assert decoded.rows == ()
    assert [(s.reason, s.leg.amount_raw, s.leg.inner) for s in decoded.skipped] == [
        ("account_rent", 2_039_280, True)
    ]


def _comparable(decoded: DecodedTransaction) -> dict[str, Any]:
    document = decoded.to_json_dict()
    del document["encoding"]
    return document


@pytest.mark.parametrize(
    ("names", "wallets"),
    [
        (
            [
                "solders_vote_4zExa6_mainnet.json.response.json",
                "solders_vote_4zExa6_mainnet.json_parsed.response.json",
                "solders_vote_4zExa6_mainnet.base64.response.json",
            ],
            ["5p8qKVyKthA9DUb1rwQDzjcmTkaZdwN97J3LiaEywUjd", "EsEtxoyhFTgfvudcy2VwwQJ1qA6BScLUW39PKpYczuxF"],
        ),
        (
            [
                "blocto_4Dj8X_devnet_ata_create.json.response.json",
                "blocto_4Dj8X_devnet_ata_create.base64.response.json",
            ],
            ["27kVX7JpPZ1bsrSckbR76mV6GeRqtrjoddubfg2zBpHZ", "AyHWro8zumyZN68Mhuk6mhNUUQ2VX5qux2pMD4HnN3aJ"],
        ),
    ],
)
def test_same_transaction_in_each_encoding_decodes_alike(names: list[str], wallets: list[str]) -> None:
    results = [_comparable(decode_file(name, *wallets)) for name in names]
    assert all(result == results[0] for result in results[1:])


# ---------------------------------------------------------------- what is not decodable
@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "not_json"),
        (b"[1, 2]", "not_an_object"),
        (b'{"jsonrpc":"2.0","result":null,"id":1}', "null_result"),
        (
            b'{"jsonrpc":"2.0","id":1,"error":{"code":-32015,'
            b'"message":"Transaction version (0) is not supported"}}',
            "rpc_error_envelope",
        ),
        (b'{"slot":1,"transaction":{}}', "missing_field"),
    ],
)
def test_undecodable_payloads_raise_decode_error(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_transaction_bytes(payload, set())
    assert info.value.reason == reason


def _mutated(name: str, mutate: Any) -> bytes:
    document = json.loads((TRANSACTIONS / name).read_bytes())
    mutate(document.get("result", document))
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("name", "mutate", "reason"),
    [
        (V0_ALT, lambda r: r.update(version=1), "unsupported_version"),
        (V0_ALT, lambda r: r.update(transaction=[r["transaction"][0], "base58"]), "unsupported_encoding"),
        (V0_ALT, lambda r: r.update(transaction=["@@@", "base64"]), "bad_base64"),
        (V0_ALT, lambda r: r.update(transaction=[r["transaction"][0] + "==", "base64"]), "bad_base64"),
        (V0_ALT, lambda r: r.update(transaction=["AAAA\u00e9", "base64"]), "bad_base64"),  # not ASCII
        (V0_ALT, lambda r: r.update(transaction=["AAAA", "base64"]), "bad_wire_transaction"),
        (V0_ALT, lambda r: r["meta"].pop("loadedAddresses"), "missing_field"),
        (AUDIUS, lambda r: r["meta"]["loadedAddresses"]["readonly"].clear(), "bad_account_index"),
        (
            AUDIUS,
            lambda r: r["meta"]["innerInstructions"][0]["instructions"][0].update(data="0OIl"),
            "bad_instruction_data",
        ),
        (AUDIUS, lambda r: r.pop("meta"), "missing_field"),
        (AUDIUS, lambda r: r.update(slot="209280836"), "bad_field"),
        (
            "keyappkit_trx-transfer-sol-ok.jsonParsed.result.json",
            lambda r: r["transaction"]["message"]["instructions"][0]["parsed"]["info"].pop("lamports"),
            "malformed_instruction",
        ),
    ],
)
def test_broken_fixtures_raise_decode_error(name: str, mutate: Any, reason: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode_transaction_bytes(_mutated(name, mutate), set())
    assert info.value.reason == reason
