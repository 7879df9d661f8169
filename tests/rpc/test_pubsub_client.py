"""The PubSub connection against a real local websocket server."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from indexer.errors import RpcError
from indexer.rpc import PubSubClosed, PubSubConnection


class FakePubSub:
    def __init__(self) -> None:
        self.ids = itertools.count(100)
        self.subscriptions: dict[int, str] = {}
        self.connections: list[ServerConnection] = []
        self.server: Server | None = None
        self.url = ""

    async def handle(self, ws: ServerConnection) -> None:
        self.connections.append(ws)
        async for raw in ws:
            request: dict[str, Any] = orjson.loads(raw)
            if request["method"] == "logsSubscribe":
                mentions = request["params"][0]["mentions"]
                if len(mentions) != 1:
                    await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "error": {
                        "code": -32602, "message": "Invalid Request: Only 1 address supported"}}))
                    continue
                sub = next(self.ids)
                self.subscriptions[sub] = mentions[0]
                await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": sub}))
            elif request["method"] == "logsUnsubscribe":
                self.subscriptions.pop(request["params"][0], None)
                await ws.send(orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": True}))

    async def notify(self, sub: int, signature: str) -> None:
        message = {"jsonrpc": "2.0", "method": "logsNotification", "params": {
            "result": {"context": {"slot": 5}, "value": {"signature": signature, "err": None,
                                                         "logs": ["Program log: hi"]}},
            "subscription": sub}}
        await self.connections[-1].send(orjson.dumps(message))


@pytest.fixture
async def pubsub() -> AsyncIterator[FakePubSub]:
    fake = FakePubSub()
    async with serve(fake.handle, "127.0.0.1", 0) as server:
        fake.server = server
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}"
        yield fake


async def test_pipelined_subscribes_and_notifications(pubsub: FakePubSub) -> None:
    conn = await PubSubConnection.connect(pubsub.url)
    try:
        wallets = [f"Wallet{i}" for i in range(100)]
        ids = await asyncio.gather(*(conn.subscribe_logs(w) for w in wallets))
        assert len(set(ids)) == 100
        assert {pubsub.subscriptions[i] for i in ids} == set(wallets)
        await pubsub.connections[-1].send(b"{not json")
        await pubsub.connections[-1].send(orjson.dumps({"method": "logsNotification"}))
        await pubsub.notify(ids[3], "SigA")
        stream = conn.notifications()
        note = await asyncio.wait_for(anext(stream), 10)
        assert (note.subscription, note.signature, note.slot) == (ids[3], "SigA", 5)
        assert conn.malformed == 2
        await conn.unsubscribe_logs(ids[3])
        assert ids[3] not in pubsub.subscriptions
    finally:
        await conn.close()


async def test_error_answers_and_closed_sockets(pubsub: FakePubSub) -> None:
    conn = await PubSubConnection.connect(pubsub.url)
    try:
        with pytest.raises(RpcError, match="Only 1 address"):
            await conn.request("logsSubscribe", [{"mentions": ["a", "b"]}])
        await pubsub.connections[-1].close()
        with pytest.raises(PubSubClosed):
            async for _ in conn.notifications():
                pass
        with pytest.raises(PubSubClosed):
            await conn.subscribe_logs("late")
    finally:
        await conn.close()


async def test_connect_refused_is_transient() -> None:
    with pytest.raises(PubSubClosed, match="cannot connect"):
        await PubSubConnection.connect("ws://127.0.0.1:9/", open_timeout=2)
