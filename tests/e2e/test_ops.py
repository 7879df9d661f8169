"""The operations endpoint of a real daemon process: `/metrics` carries the DESIGN's metrics
with values that match the traffic it indexed, `/healthz` and `/readyz` answer, and the
RPC URL's secret path reaches neither the metrics nor the log."""

from __future__ import annotations

import math
import time
from typing import Any

import aiohttp
import orjson
from prometheus_client.parser import text_string_to_metric_families

from indexer.localnet import Localnet, LocalnetConfig
from indexer.localnet.workload import WorkloadConfig, run_workload
from tests.deploy.artifacts import (
    PROMETHEUS_BUILTINS,
    deployment_metric_names,
    exported_families,
    family_of,
)
from tests.e2e.harness import (
    database_rows,
    differences,
    eventually,
    eventually_async,
    expected_rows,
    metric_samples,
    running_daemon,
)

CLUSTER = LocalnetConfig(port=0, slot_ms=40, finality_slots=6, seed=13)
SECRET = "secret-key-xyz"  # noqa: S105 -- a fake API key, to catch leaks


async def test_metrics_health_and_readiness_after_a_workload(db_url: str) -> None:
    async with Localnet(CLUSTER) as net, aiohttp.ClientSession() as http:
        secret_url = f"{net.http_url}/{SECRET}"  # the localnet ignores the path
        async with running_daemon(db_url, secret_url, net.ws_url) as daemon:
            await daemon.wait_logged("ops_listening")
            base = f"http://127.0.0.1:{daemon.ops_port}"
            summary = await run_workload(WorkloadConfig(
                rpc_url=net.http_url, rate=300, count=80, agents=4, users=6, seed=31,
                database_url=db_url))
            expected = expected_rows(summary.truth)
            await eventually(lambda: differences(expected, database_rows(db_url)), deadline=60,
                             what="database equal to the ground truth")

            metrics: dict[str, float] = {}
            text = ""

            def metrics_problems() -> list[str]:
                wanted = {
                    "amoca_indexer_transactions_written_total": lambda v: v >= len(expected),
                    "amoca_indexer_rpc_requests_total": lambda v: v > 0,
                    "amoca_indexer_ws_connections": lambda v: v >= 1,
                    # every agent wallet and its USDC token account
                    "amoca_indexer_ws_subscriptions": lambda v: v >= len(summary.agent_wallets),
                    "amoca_indexer_watched_wallets": lambda v: v >= len(summary.agent_wallets),
                    "amoca_indexer_notifications_total": lambda v: v > 0,
                    "amoca_indexer_ingest_latency_seconds_count": lambda v: v > 0,
                    "amoca_indexer_pending_finality_rows": lambda v: v == 0,
                    "amoca_indexer_finality_transitions_total": lambda v: v > 0,
                    "amoca_indexer_finality_update_seconds_count": lambda v: v > 0,
                    "amoca_indexer_db_batch_seconds_count": lambda v: v > 0,
                    "amoca_indexer_chain_slot": lambda v: v > 0,
                    "amoca_indexer_transactions_decoded_total": lambda v: v >= len(expected),
                    "amoca_indexer_rpc_request_seconds_count": lambda v: v > 0,
                    "amoca_indexer_block_to_commit_seconds_count": lambda v: v > 0,
                    "amoca_indexer_db_batch_rows_count": lambda v: v > 0,
                    # present from the start, whatever their value
                    "amoca_indexer_slot_lag": lambda v: v >= 0,
                    "amoca_indexer_ws_reconnects_total": lambda v: v >= 0,
                    "amoca_indexer_duplicates_total": lambda v: v >= 0,
                    "amoca_indexer_rankings_refresh_seconds_count": lambda v: v >= 0,
                    "amoca_indexer_rankings_last_success_timestamp_seconds": lambda v: v >= 0,
                    "amoca_indexer_backfill_wallets_remaining": lambda v: v >= 0,
                }
                return [f"{name} = {metrics.get(name)}" for name, ok in wanted.items()
                        if name not in metrics or not ok(metrics[name])]

            async def poll() -> list[str]:
                nonlocal metrics, text
                async with http.get(f"{base}/metrics") as response:
                    assert response.status == 200
                    text = await response.text()
                metrics = metric_samples(text)
                return metrics_problems()

            await eventually_async(poll, deadline=30, what="metrics after the workload")
            assert metrics["amoca_indexer_ingest_latency_seconds_sum"] >= 0

            # Everything the dashboard and the alert rules query is in this scrape, sane.
            async def deployment_metrics() -> list[str]:
                await poll()
                return deployment_metric_problems(text, rows=len(expected),
                                                  agents=len(summary.agent_wallets))

            await eventually_async(deployment_metrics, deadline=30,
                                   what="every metric the dashboard and alerts use")

            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
                assert (await response.json())["status"] == "ok"

            readiness: dict[str, Any] = {}

            async def ready() -> list[str]:
                nonlocal readiness
                async with http.get(f"{base}/readyz") as response:
                    readiness = await response.json()
                    return [] if response.status == 200 else [f"{response.status}: {readiness}"]

            await eventually_async(ready, deadline=30, what="/readyz 200")
            assert readiness["ready"] is True
            assert readiness["checks"], readiness
            assert all(check["ok"] for check in readiness["checks"].values())

            assert SECRET not in text
            assert SECRET not in orjson.dumps(readiness).decode()
            assert await daemon.stop() == 0, daemon.tail()
        assert daemon.log, "the daemon logged nothing"
        assert not [line for line in daemon.log if SECRET in line]


# Counted only when something goes wrong (or by jobs this workload does not start): the
# exposition carries their family, and no sample until the first event.
_ONLY_ON_EVENTS = frozenset({
    "amoca_indexer_decode_errors_total", "amoca_indexer_dead_letters_total",
    "amoca_indexer_db_errors_total", "amoca_indexer_retention_deleted_rows_total",
})


def deployment_metric_problems(text: str, *, rows: int, agents: int) -> list[str]:
    """Every metric deploy/ queries, found in a scrape of ``text`` with a sane value."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    values: dict[str, list[float]] = {}
    for family in families.values():
        for sample in family.samples:
            values.setdefault(sample.name, []).append(sample.value)
    exported = exported_families()
    problems = []
    for name in sorted(deployment_metric_names() - PROMETHEUS_BUILTINS):
        family_name = family_of(name, exported)
        if family_name not in families:
            problems.append(f"{name}: not in /metrics")
            continue
        found = values.get(name, [])
        if not found and name not in _ONLY_ON_EVENTS:
            problems.append(f"{name}: no sample after the workload")
        problems += [f"{name} = {v}: not a finite, non-negative number" for v in found
                     if not (v >= 0 and math.isfinite(v))]
        if exported[family_name] == "histogram":
            problems += histogram_problems(families[family_name])

    def one(name: str) -> float:
        return sum(values.get(name, [0.0]))

    chain, indexed = one("amoca_indexer_chain_slot"), one("amoca_indexer_indexed_slot")
    now = time.time()
    sane = {
        "written rows cover the workload": one("amoca_indexer_transactions_written_total") >= rows,
        "the node's slot is known": chain > 0,
        "indexed slot is set and not ahead of the chain": 0 < indexed <= chain,
        "caught up: slot lag under the readiness threshold": one("amoca_indexer_slot_lag") <= 150,
        "every agent watched": one("amoca_indexer_watched_wallets") >= agents,
        "the only replica is active": one("amoca_indexer_shard_active") == 1,
        "a websocket is open": one("amoca_indexer_ws_connections") >= 1,
        "no row left pending": one("amoca_indexer_pending_finality_rows") == 0,
        "finality moved rows": one("amoca_indexer_finality_transitions_total") > 0,
        "requests succeeded": sum(sample.value for sample in families["amoca_indexer_rpc_requests"].samples
                                  if sample.labels.get("outcome") == "ok") > 0,
        "rankings refreshed within the last 5 minutes":
            now - 300 < one("amoca_indexer_rankings_last_success_timestamp_seconds") <= now + 1,
    }
    return problems + [f"not sane: {what}" for what, ok in sane.items() if not ok]


def histogram_problems(family: Any) -> list[str]:
    """Buckets never decrease, and the +Inf bucket equals the count (per label set)."""
    problems = []
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
    counts: dict[tuple[tuple[str, str], ...], float] = {}
    for sample in family.samples:
        key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        if sample.name.endswith("_bucket"):
            series.setdefault(key, []).append((float(sample.labels["le"]), sample.value))
        elif sample.name.endswith("_count"):
            counts[key] = sample.value
    for key, buckets in series.items():
        ordered = [value for _, value in sorted(buckets)]
        if ordered != sorted(ordered):
            problems.append(f"{family.name}{dict(key)}: buckets decrease")
        if ordered and ordered[-1] != counts.get(key):
            problems.append(f"{family.name}{dict(key)}: +Inf bucket {ordered[-1]} != count {counts.get(key)}")
    return problems
