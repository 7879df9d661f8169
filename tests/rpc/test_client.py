"""The RPC client against a real local HTTP server: batching, retries, fail-over, errors."""

from __future__ import annotations

import socket
import time
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from indexer.errors import RpcError, RpcUnavailable
from indexer.metrics import Metrics
from indexer.rpc import RpcClient
from indexer.rpc.protocol import retry_after_seconds
from tests.rpc.conftest import FakeNode
from tests.support.paths import shared_dir


class Sleeps:
    """An injected sleep: records the delays the retry policy asked for, waits none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def echo_slot(request: dict[str, Any]) -> Any:
    if request["method"] == "getSlot":
        return 4242
    if request["method"] == "getTransaction":
        sig = request["params"][0]
        return None if sig == "missing" else {"slot": 1, "sig": sig}
    return None


async def test_single_call_and_batch_matched_by_id(node: FakeNode) -> None:
    node.handler = echo_slot
    async with RpcClient([node.url], batch_size=3) as rpc:
        assert await rpc.get_slot() == 4242
        results = await rpc.get_transactions(["a", "b", "missing", "c", "d"])
    assert results == [{"slot": 1, "sig": "a"}, {"slot": 1, "sig": "b"}, None,
                       {"slot": 1, "sig": "c"}, {"slot": 1, "sig": "d"}]
    assert [len(r) for r in node.requests[1:]] == [3, 2]  # two batches of at most 3


async def test_the_rate_limit_counts_every_call_of_a_batch(node: FakeNode) -> None:
    """Providers count each call of a batch against their limit: at 20 calls a second, 60
    calls go in HTTP requests of at most 20 and take at least 2 s (the bucket starts full,
    then refills at 20 a second). A lower bound on the time: a slow machine only adds."""
    node.handler = echo_slot
    async with RpcClient([node.url], batch_size=100, requests_per_second=20) as rpc:
        started = time.monotonic()
        results = await rpc.get_transactions([f"s{i}" for i in range(60)])
        elapsed = time.monotonic() - started
    assert results == [{"slot": 1, "sig": f"s{i}"} for i in range(60)]
    assert [len(r) for r in node.requests] == [20, 20, 20]
    assert elapsed >= 1.9
    async with RpcClient([node.url], requests_per_second=0.5) as slow:  # under one call a second
        assert await slow.get_slot() == 4242


async def test_per_item_errors_stay_in_place(node: FakeNode) -> None:
    def handler(request: dict[str, Any]) -> Any:
        if request["params"][0] == "bad":
            return {"__error__": {"code": -32602, "message": "Invalid param: bad signature",
                                  "data": {"detail": "not base58"}}}
        return {"ok": request["params"][0]}

    node.handler = handler
    async with RpcClient([node.url]) as rpc:
        results = await rpc.get_transactions(["x", "bad", "y"])
    assert results[0] == {"ok": "x"}
    assert isinstance(results[1], RpcError)
    assert (results[1].code, results[1].data) == (-32602, {"detail": "not base58"})
    assert results[2] == {"ok": "y"}


async def test_an_item_answered_with_a_transient_error_is_asked_again_alone(node: FakeNode) -> None:
    """A load-balanced node behind its peers answers one call of a batch with -32005: that
    call alone is sent again, after the policy's backoff; its neighbours keep their answers."""
    asked: list[str] = []

    def handler(request: dict[str, Any]) -> Any:
        signature = request["params"][0]
        asked.append(signature)
        if signature == "late" and asked.count("late") == 1:
            return {"__error__": {"code": -32005, "message": "Node is behind by 3 slots"}}
        return {"ok": signature}

    node.handler = handler
    sleeps = Sleeps()
    async with RpcClient([node.url], sleep=sleeps) as rpc:
        results = await rpc.get_transactions(["x", "late", "y"])
    assert results == [{"ok": "x"}, {"ok": "late"}, {"ok": "y"}]
    assert asked == ["x", "late", "y", "late"]
    assert len(sleeps.delays) == 1


async def test_429_honours_retry_after_then_succeeds(node: FakeNode) -> None:
    node.handler = echo_slot
    node.scripted.append((429, {"Retry-After": "7"}, b"Too many requests"))
    sleeps = Sleeps()
    registry = CollectorRegistry()
    async with RpcClient([node.url], sleep=sleeps, metrics=Metrics(registry)) as rpc:
        assert await rpc.get_slot() == 4242
    assert sleeps.delays[0] >= 7
    assert registry.get_sample_value("amoca_indexer_rpc_requests_total",
                                     {"method": "getSlot", "outcome": "RpcRateLimited"}) == 1
    assert registry.get_sample_value("amoca_indexer_rpc_requests_total",
                                     {"method": "getSlot", "outcome": "ok"}) == 1


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retried(node: FakeNode, status: int) -> None:
    node.handler = echo_slot
    node.scripted.extend([(status, {}, b"<html>bad gateway</html>")] * 2)
    sleeps = Sleeps()
    async with RpcClient([node.url], sleep=sleeps) as rpc:
        assert await rpc.get_slot() == 4242
    assert len(sleeps.delays) == 2


async def test_node_behind_is_transient_and_invalid_params_is_not(node: FakeNode) -> None:
    behind = orjson.dumps({"jsonrpc": "2.0", "id": 1, "error": {
        "code": -32005, "message": "Node is behind by 42 slots", "data": {"numSlotsBehind": 42}}})
    node.handler = echo_slot
    node.scripted.append((200, {}, behind.replace(b'"id":1', b'"id":null')))
    sleeps = Sleeps()
    async with RpcClient([node.url], sleep=sleeps) as rpc:
        assert await rpc.get_slot() == 4242
        node.handler = lambda r: {"__error__": {"code": -32602, "message": "Invalid params"}}
        with pytest.raises(RpcError, match="-32602"):
            await rpc.call("getBalance", ["nope"])
    assert len(sleeps.delays) == 1  # the permanent error was not retried


async def test_fail_over_to_the_next_endpoint(node: FakeNode) -> None:
    node.handler = echo_slot
    sleeps = Sleeps()
    async with RpcClient([dead_url(), node.url], sleep=sleeps) as rpc:
        with capture_logs() as logs:
            assert await rpc.get_slot() == 4242
    assert any(entry["event"] == "rpc_failover" for entry in logs)


async def test_gives_up_after_the_deadline_with_the_last_error() -> None:
    clock = {"now": 0.0}

    async def fast_sleep(delay: float) -> None:
        clock["now"] += delay

    async with RpcClient([dead_url()], sleep=fast_sleep, give_up_after=0.0) as rpc:
        with pytest.raises(RpcUnavailable, match="ClientConnectorError"):
            await rpc.get_slot()


@pytest.mark.parametrize("body", [b"<html>502</html>", b"[1, 2]", b'{"jsonrpc": "2.0", "id": 999}',
                                  b'{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}'])
async def test_malformed_answers_are_transient(node: FakeNode, body: bytes) -> None:
    node.handler = echo_slot
    node.scripted.append((200, {}, body))
    sleeps = Sleeps()
    async with RpcClient([node.url], sleep=sleeps) as rpc:
        assert await rpc.get_slot() == 4242
    assert len(sleeps.delays) == 1


async def test_secrets_never_reach_errors_or_logs(node: FakeNode) -> None:
    secret_url = dead_url() + "secret-key-123?api-key=abc"
    with capture_logs() as logs:
        async with RpcClient([secret_url, node.url], sleep=Sleeps()) as rpc:
            node.handler = lambda r: {"__error__": {"code": 401, "message": "unauthorized"}}
            node.scripted.append((401, {}, b"unauthorized"))
            with pytest.raises(RpcError) as caught:
                await rpc.get_slot()
    assert caught.value.code == 401
    text = str(caught.value) + repr(logs)
    assert "rpc_failover" in text
    assert "secret-key-123" not in text
    assert "api-key=abc" not in text


def test_retry_after_parses_seconds_and_dates() -> None:
    assert retry_after_seconds("3") == 3
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 10) == 10
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


async def test_signature_pages_follow_before_and_stop_at_until(node: FakeNode) -> None:
    entries = orjson.loads((shared_dir() / "fixtures" / "getSignaturesForAddress" /
                            "solanago_mainnet_1000sigs.result.json").read_bytes())
    if isinstance(entries, dict):
        entries = entries.get("result", entries)
    signatures = [e["signature"] for e in entries]

    def pages(request: dict[str, Any]) -> Any:
        config = request["params"][1]
        start = signatures.index(config["before"]) + 1 if "before" in config else 0
        stop = signatures.index(config["until"]) if "until" in config else len(signatures)
        return entries[start:min(stop, start + config["limit"])]

    node.handler = pages
    async with RpcClient([node.url]) as rpc:
        seen = [info async for page in rpc.iter_signatures("W", limit=300) for info in page]
        bounded = [info async for page in rpc.iter_signatures(
            "W", until=signatures[500], before=signatures[99], limit=150) for info in page]
    assert [i.signature for i in seen] == signatures
    assert seen[0].slot >= seen[-1].slot
    assert [i.signature for i in bounded] == signatures[100:500]
