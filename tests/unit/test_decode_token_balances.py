"""Token accounts resolved from pre/post token balances, entry by entry.

The decoder reads pre then post balances; a later entry replaces an earlier one for the
same account, except that an entry without ``owner`` keeps the owner already known (nodes
before 1.7 sent no owner). The usual post entry repeats its pre entry exactly; these
tests pin the cases where it does not.
"""

from __future__ import annotations

from typing import Any

import pytest
from solders.pubkey import Pubkey

from indexer.decode import decode_transaction
from indexer.decode.base58 import b58encode

TOKEN = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105  (a program id)
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
OTHER_MINT = str(Pubkey(bytes([9]) * 32))
USER, AGENT, USER_USDC, AGENT_USDC = (str(Pubkey(bytes([n]) * 32)) for n in (4, 2, 14, 12))


def balance(index: int, owner: str | None, mint: str = USDC, decimals: int = 6) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "accountIndex": index,
        "mint": mint,
        "uiTokenAmount": {"amount": "1", "decimals": decimals, "uiAmount": None, "uiAmountString": "0"},
    }
    if owner is not None:
        entry["owner"] = owner
    return entry


def transfer(pre: list[dict[str, Any]], post: list[dict[str, Any]]) -> dict[str, Any]:
    """A json getTransaction result: USER pays AGENT 2.5 USDC with ``transfer`` (no mint in the data)."""
    data = b58encode(b"\x03" + (2_500_000).to_bytes(8, "little"))
    return {
        "slot": 7,
        "blockTime": 1_700_000_000,
        "meta": {"err": None, "fee": 5000, "preTokenBalances": pre, "postTokenBalances": post},
        "transaction": {
            "signatures": ["5" * 88],
            "message": {
                "accountKeys": [USER, USER_USDC, AGENT_USDC, TOKEN],
                "instructions": [{"programIdIndex": 3, "accounts": [1, 2, 0], "data": data}],
            },
        },
    }


@pytest.mark.parametrize(
    ("pre", "post"),
    [
        ([balance(1, USER), balance(2, AGENT)], [balance(1, USER), balance(2, AGENT)]),  # post repeats pre
        ([balance(1, USER), balance(2, AGENT)], [balance(1, None), balance(2, None)]),  # post without owner
        ([], [balance(1, USER), balance(2, AGENT)]),  # post only (accounts created in this transaction)
        ([balance(1, USER), balance(2, AGENT)], []),  # pre only (accounts closed in this transaction)
    ],
)
def test_owners_resolve_from_either_balance_list(pre: list[Any], post: list[Any]) -> None:
    (row,) = decode_transaction(transfer(pre, post), {AGENT}).rows
    assert (row.agent_wallet, row.counterparty_wallet, row.amount_raw, row.mint, row.decimals) == (
        AGENT, USER, 2_500_000, USDC, 6,
    )


def test_a_later_entry_with_different_values_replaces_the_earlier_one() -> None:
    pre = [balance(1, USER, OTHER_MINT, 9), balance(2, USER, OTHER_MINT, 9)]
    post = [balance(1, USER), balance(2, AGENT)]
    (row,) = decode_transaction(transfer(pre, post), {AGENT}).rows
    assert (row.agent_wallet, row.mint, row.decimals) == (AGENT, USDC, 6)


def test_no_owner_anywhere_leaves_the_leg_unattributed() -> None:
    result = transfer([balance(1, None), balance(2, None)], [balance(2, None)])
    decoded = decode_transaction(result, {AGENT_USDC})
    assert decoded.rows == ()
    (leg,) = decoded.unattributed
    assert (leg.reason, leg.source_wallet, leg.destination_wallet) == ("token_owner_unknown", None, None)
    assert leg.mint == USDC
