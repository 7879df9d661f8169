"""One PubSub websocket connection carrying many `logsSubscribe` subscriptions.

A reader task owns the socket's receive side: answers (matched by request id) resolve
the waiting subscribe calls, so subscribe requests are pipelined -- many in flight at
once; notifications go to a queue read by :meth:`notifications`. A malformed message is
counted and logged, never fatal. When the socket closes, :meth:`notifications` raises
``PubSubClosed`` (transient): reconnecting and resubscribing is the subscription
manager's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from indexer.config import redact_url
from indexer.errors import IndexerError, TransientError
from indexer.rpc.protocol import error_from

log = structlog.get_logger(__name__)


class PubSubClosed(TransientError):
    """The websocket closed; everything on it must be resubscribed."""


@dataclass(frozen=True, slots=True)
class LogsNotification:
    subscription: int
    slot: int
    signature: str
    err: Any
    logs: tuple[str, ...]


class PubSubConnection:
    def __init__(self, ws: ClientConnection, url: str) -> None:
        self._ws = ws
        self.url = url
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._queue: asyncio.Queue[LogsNotification | None] = asyncio.Queue()
        self.malformed = 0
        self._reader = asyncio.create_task(self._read(), name="pubsub-reader")

    @classmethod
    async def connect(cls, url: str, *, open_timeout: float = 10.0,
                      ping_interval: float | None = 20.0) -> PubSubConnection:
        try:
            ws = await connect(url, open_timeout=open_timeout, ping_interval=ping_interval,
                               max_size=2**24, compression=None)
        except (OSError, TimeoutError, WebSocketException) as exc:
            raise PubSubClosed(f"cannot connect to {redact_url(url)}: {type(exc).__name__}") from None
        return cls(ws, url)

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                self._dispatch(raw)
        except WebSocketException:
            pass
        finally:
            closed = PubSubClosed(f"websocket to {redact_url(self.url)} closed")
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(closed)
            self._waiting.clear()
            self._queue.put_nowait(None)

    def _dispatch(self, raw: str | bytes) -> None:
        try:
            message = orjson.loads(raw)
            if "id" in message and message["id"] is not None:
                future = self._waiting.pop(int(message["id"]), None)
                if future is not None and not future.done():
                    if isinstance(message.get("error"), dict):
                        future.set_exception(error_from(message["error"], "pubsub"))
                    else:
                        future.set_result(message.get("result"))
                return
            if message.get("method") == "logsNotification":
                params = message["params"]
                value = params["result"]["value"]
                self._queue.put_nowait(LogsNotification(
                    subscription=int(params["subscription"]),
                    slot=int(params["result"]["context"]["slot"]),
                    signature=str(value["signature"]), err=value.get("err"),
                    logs=tuple(value.get("logs") or ())))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            self.malformed += 1
            log.warning("pubsub_malformed_message", error=type(exc).__name__)

    async def request(self, method: str, params: list[Any]) -> Any:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        payload = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            await self._ws.send(orjson.dumps(payload).decode())
        except (WebSocketException, OSError) as exc:
            self._waiting.pop(request_id, None)
            raise PubSubClosed(f"send failed: {type(exc).__name__}") from None
        return await future

    async def subscribe_logs(self, mentions: str, commitment: str = "confirmed") -> int:
        result = await self.request("logsSubscribe", [{"mentions": [mentions]},
                                                      {"commitment": commitment}])
        if not isinstance(result, int):
            raise IndexerError(f"logsSubscribe answered {result!r}, not a subscription id")
        return result

    async def unsubscribe_logs(self, subscription: int) -> None:
        await self.request("logsUnsubscribe", [subscription])

    async def notifications(self) -> AsyncIterator[LogsNotification]:
        while True:
            note = await self._queue.get()
            if note is None:
                raise PubSubClosed(f"websocket to {redact_url(self.url)} closed")
            yield note

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(Exception):
            await self._ws.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader
