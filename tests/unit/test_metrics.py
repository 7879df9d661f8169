"""``observe_many``: what a JSON-RPC batch's calls add to a latency histogram at once must
be what as many ``observe()`` calls add (it reaches into prometheus_client's histogram)."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from indexer.metrics import observe_many


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str | None], float]:
    return {(sample.name, sample.labels.get("le")): sample.value
            for family in registry.collect() for sample in family.samples
            if not sample.name.endswith("_created")}


@pytest.mark.parametrize("times", [1, 2, 100])
@pytest.mark.parametrize("value", [0.0, 0.0005, 0.001, 0.003, 0.7, 60.0, 61.5])
def test_observe_many_adds_what_as_many_observe_calls_add(value: float, times: int) -> None:
    one_by_one, at_once = CollectorRegistry(), CollectorRegistry()
    buckets = (0.001, 0.01, 1, 60)
    repeated = Histogram("latency", "doc", ("method",), registry=one_by_one, buckets=buckets).labels("m")
    batched = Histogram("latency", "doc", ("method",), registry=at_once, buckets=buckets).labels("m")
    for _ in range(times):
        repeated.observe(value)
    observe_many(batched, value, times)

    expected, got = _samples(one_by_one), _samples(at_once)
    assert got.keys() == expected.keys()
    assert got[("latency_count", None)] == times
    for key, amount in expected.items():
        assert got[key] == pytest.approx(amount), key
