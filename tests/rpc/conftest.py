"""A scripted JSON-RPC node on a real socket: each HTTP answer is taken from a queue
(status, headers, body builder); once the queue is empty it answers from ``handler``."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

Handler = Callable[[dict[str, Any]], Any]


@dataclass
class FakeNode:
    url: str = ""
    scripted: deque[tuple[int, dict[str, str], bytes | None]] = field(default_factory=deque)
    handler: Handler = lambda request: None
    requests: list[Any] = field(default_factory=list)

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        result = self.handler(request)
        if isinstance(result, dict) and "__error__" in result:
            return {"jsonrpc": "2.0", "id": request["id"], "error": result["__error__"]}
        return {"jsonrpc": "2.0", "id": request["id"], "result": result}


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = FakeNode()

    async def rpc(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        fake.requests.append(body)
        if fake.scripted:
            status, headers, raw = fake.scripted.popleft()
            if raw is not None:
                return web.Response(status=status, headers=headers, body=raw)
        if isinstance(body, list):
            answers = [fake.answer(r) for r in body]
            answers.reverse()  # real nodes need not keep the order
            return web.json_response(answers)
        return web.json_response(fake.answer(body))

    app = web.Application()
    app.router.add_post("/{tail:.*}", rpc)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{runner.addresses[0][1]}/secret-key-123?api-key=abc"
    yield fake
    await runner.cleanup()
