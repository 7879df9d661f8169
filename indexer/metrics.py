"""Every Prometheus metric the indexer exports (prefix ``amoca_indexer_``), in one place.

A :class:`Metrics` object is built per registry and injected into the stages that count,
so tests pass their own ``CollectorRegistry`` and read the values back. Names are a
contract with the dashboards and alert rules in ``deploy/``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_Family = TypeVar("_Family", bound=MetricWrapperBase)

PREFIX = "amoca_indexer"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# Notification → commit: finer where the targets are (p50 ≤ 10 ms, p99 ≤ 50 ms), so a
# quantile read from the buckets is off by a few ms at most, not by half a bucket.
_INGEST_BUCKETS = (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.0125, 0.015, 0.02, 0.025,
                   0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    """The indexer's metrics, registered in ``registry``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

        def counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
            return Counter(f"{PREFIX}_{name}", doc, labels, registry=registry)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"{PREFIX}_{name}", doc, labels, registry=registry)

        def histogram(name: str, doc: str, labels: tuple[str, ...] = (),
                      buckets: tuple[float, ...] = _LATENCY_BUCKETS) -> Histogram:
            return Histogram(f"{PREFIX}_{name}", doc, labels, registry=registry, buckets=buckets)

        # Intake
        self.notifications = counter(
            "notifications_total", "Websocket notifications received, by kind.", ("kind",))
        self.signatures_seen = counter(
            "signatures_seen_total", "Signatures queued for fetching, by source.", ("source",))
        # Decode
        self.decoded = counter(
            "transactions_decoded_total", "Marketplace rows decoded, by type and status.",
            ("type", "status"))
        self.decode_errors = counter(
            "decode_errors_total", "Payloads that could not be decoded, by reason.", ("reason",))
        self.memo_rejections = counter(
            "memo_rejections_total", "Memos that were not valid AMOCA memos, by reason.", ("reason",))
        self.skipped_legs = counter(
            "skipped_legs_total", "Transfer legs that are not marketplace transactions, by reason.",
            ("reason",))
        # Sink
        self.written = counter(
            "transactions_written_total", "Rows inserted into transactions, by type and status.",
            ("type", "status"))
        self.duplicates = counter(
            "duplicates_total", "Rows already present (idempotent re-delivery).")
        self.dead_letters = counter(
            "dead_letters_total", "Inputs set aside in dead_letters, by stage and reason.",
            ("stage", "reason"))
        self.db_batch_rows = histogram(
            "db_batch_rows", "Rows per database batch.", buckets=_BATCH_BUCKETS)
        self.db_batch_seconds = histogram(
            "db_batch_seconds", "Duration of one database batch (rows + cursors, one transaction).")
        self.db_errors = counter(
            "db_errors_total", "Database write errors, by kind: transient, permanent, or server_changed"
            " (the database lost commits or failed over; the daemon starts over from its cursors).",
            ("kind",))
        # Latency and lag
        self.ingest_latency = histogram(
            "ingest_latency_seconds", "Notification received to row committed.", ("source",),
            buckets=_INGEST_BUCKETS)
        self.block_to_commit = histogram(
            "block_to_commit_seconds", "Block time to row committed (live and gap-fill rows; not backfill).",
            buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600))
        self.chain_slot = gauge("chain_slot", "Newest slot the RPC node reports, by commitment.",
                                ("commitment",))
        self.indexed_slot = gauge("indexed_slot", "Newest slot whose transactions are committed.")
        self.slot_lag = gauge("slot_lag", "chain_slot{confirmed} minus indexed_slot.")
        # RPC
        self.rpc_requests = counter(
            "rpc_requests_total", "JSON-RPC requests, by method and outcome.", ("method", "outcome"))
        self.rpc_latency = histogram(
            "rpc_request_seconds", "JSON-RPC request latency, by method.", ("method",))
        # Websocket
        self.ws_connections = gauge("ws_connections", "Open PubSub websocket connections.")
        self.ws_subscriptions = gauge("ws_subscriptions", "Active logsSubscribe subscriptions.")
        self.ws_reconnects = counter("ws_reconnects_total", "PubSub websocket reconnects.")
        self.watched_wallets = gauge("watched_wallets", "Agent wallets this replica watches.")
        # Replicas: the other gauges keep their last values while a replica stands by.
        self.shard_active = gauge(
            "shard_active", "1 while this replica holds its shard's lock (active), 0 as a standby.",
            ("shard",))
        # Finality
        self.pending_rows = gauge("pending_finality_rows", "Rows waiting for finality.")
        self.finality_transitions = counter(
            "finality_transitions_total", "Status changes made by the finality tracker.", ("to",))
        self.finality_update_seconds = histogram(
            "finality_update_seconds",
            "Duration of one finality pass's status changes (one transaction, holding the rows'"
            " and their totals' locks: the writer waits while it lasts).",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        # Rankings
        self.rankings_seconds = histogram(
            "rankings_refresh_seconds", "Duration of update_leaderboard_rankings().",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
        self.rankings_last_success = gauge(
            "rankings_last_success_timestamp_seconds", "Unix time of the last successful refresh.")
        # Retention
        self.retention_deleted = counter(
            "retention_deleted_rows_total", "Rows deleted by data retention, by table.", ("table",))
        self.retention_last_success = gauge(
            "retention_last_success_timestamp_seconds", "Unix time of the last completed prune.")
        # Backfill
        self.backfill_signatures = counter(
            "backfill_signatures_total", "Signatures scanned by backfills.")
        self.backfill_transactions = counter(
            "backfill_transactions_total", "Transactions fetched and processed by backfills.")
        self.backfill_wallets_remaining = gauge(
            "backfill_wallets_remaining", "Wallets a running backfill has still to finish.")

    def child(self, family: _Family, *values: str) -> _Family:
        """``family.labels(*values)``, looked up once: ``labels()`` takes a lock and builds a
        key every call, which costs more than the ``inc()``/``observe()`` on hot paths."""
        key = (id(family), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = family.labels(*values)
        return found


def observe_many(histogram: Histogram, value: float, times: int) -> None:
    """``times`` observations of ``value``: ``histogram.observe(value)`` repeated, at the
    cost of one. The calls of one JSON-RPC batch share one latency, and observing it once
    per call (100 a batch, each taking two locks and searching the buckets in Python) was
    1-2% of a backfill's CPU. prometheus_client has no such call, so this adds to the sum
    and to the one bucket ``value`` falls in, as its ``observe`` does
    (``tests/unit/test_metrics.py`` holds the two equal)."""
    if times == 1:
        histogram.observe(value)
        return
    histogram._sum.inc(value * times)
    for bound, bucket in zip(histogram._upper_bounds, histogram._buckets, strict=True):
        if value <= bound:
            bucket.inc(times)
            break
