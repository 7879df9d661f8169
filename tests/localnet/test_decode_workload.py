"""Localnet-generated marketplace traffic decodes exactly to the workload's ground truth.

The workload derives its expected rows from what it sent; the decoder derives rows from
what the node returns. They must agree on every row, in every encoding a node serves.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any
from uuid import UUID

import pytest

from indexer.decode import decode_transaction
from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet.workload import WorkloadConfig, run_workload
from indexer.rpc import RpcClient


def _decoded_view(row: Any) -> tuple[Any, ...]:
    return (row.counterparty_wallet, row.transaction_type, row.amount_raw, row.mint,
            None if row.task_id is None else str(row.task_id), row.refund_of, row.period,
            row.status == "failed")


def _truth_view(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["counterparty_wallet"], row["transaction_type"], row["amount_raw"], row["mint"],
            row["task_id"], row["refund_of"], row["period"], row["status"] == "failed")


@pytest.mark.parametrize("encoding", ["json", "jsonParsed", "base64"])
async def test_workload_traffic_decodes_to_its_ground_truth(encoding: str) -> None:
    async with Localnet(LocalnetConfig(port=0, slot_ms=20, finality_slots=4, seed=5)) as net:
        summary = await run_workload(WorkloadConfig(
            rpc_url=net.http_url, rate=2000, count=120, agents=5, users=8, seed=31))
        signatures = sorted({row["signature"] for row in summary.truth})
        async with RpcClient([net.http_url], encoding=encoding) as rpc:
            results = await rpc.get_transactions(signatures)
    watched = set(summary.agent_wallets)
    owners = {UUID(task): wallet for task, wallet in summary.task_owners.items()}
    decoded: dict[tuple[str, str], tuple[Any, ...]] = {}
    kinds: dict[str, int] = defaultdict(int)
    for signature, result in zip(signatures, results, strict=True):
        assert isinstance(result, dict), f"{signature}: {result!r}"
        transaction = decode_transaction(result, watched, task_owner=owners.get)
        assert transaction.conflicts == ()
        for row in transaction.rows:
            decoded[(signature, row.agent_wallet)] = _decoded_view(row)
    expected = {(r["signature"], r["agent_wallet"]): _truth_view(r) for r in summary.truth}
    for row in summary.truth:
        kinds[row.get("kind", "?")] += 1
    assert decoded == expected
    assert len(kinds) >= 10, kinds  # every kind of the mix was exercised
