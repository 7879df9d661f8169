"""The local cluster's I/O shell: JSON-RPC over HTTP on ``port``, PubSub over websocket
on ``port + 1`` (as solana-test-validator), the slot clock, and the fault admin.

Admin interface (JSON over HTTP on the RPC port; admin requests are never faulted):

    POST /admin/drop-websockets                 close every websocket connection now
    POST /admin/refuse          {"seconds": N}  reset new HTTP and websocket connections
    POST /admin/http-errors     {"status": 429|5xx, "fraction": F, "seconds": N, "retry_after": S}
    POST /admin/latency         {"ms": N, "seconds": N}
    POST /admin/drop-notifications {"fraction": F, "seconds": N}   silently lose notifications
    POST /admin/fork            {"slot": N} or {}  drop a confirmed, unfinalized slot (and later)
    POST /admin/clear                           remove every fault
    GET  /admin/state                           faults, slots, counts
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from indexer.errors import ConfigError
from indexer.localnet import encoding
from indexer.localnet.ledger import Ledger, TxRecord
from indexer.localnet.rpc import Methods, RpcFailure

log = structlog.get_logger(__name__)
PARSE_ERROR = {"code": -32700, "message": "Parse error"}
INVALID_REQUEST = {"code": -32600, "message": "Invalid request"}


@dataclass(frozen=True, slots=True)
class LocalnetConfig:
    host: str = "127.0.0.1"
    port: int = 8899  # 0: pick free ports
    slot_ms: int = 400
    finality_slots: int = 32
    confirm_slots: int = 1
    seed: int | None = None


@dataclass(slots=True)
class Faults:
    rng: random.Random = field(default_factory=random.Random)
    refuse_until: float = 0.0
    http_status: int = 0
    http_fraction: float = 0.0
    http_until: float = 0.0
    retry_after: float = 1.0
    latency_ms: float = 0.0
    latency_until: float = 0.0
    drop_fraction: float = 0.0
    drop_until: float = 0.0
    dropped_notifications: int = 0

    def refusing(self, now: float) -> bool:
        return now < self.refuse_until

    def http_error(self, now: float) -> int | None:
        if now < self.http_until and self.rng.random() < self.http_fraction:
            return self.http_status
        return None

    def delay(self, now: float) -> float:
        return self.latency_ms / 1000 if now < self.latency_until else 0.0

    def drop_notification(self, now: float) -> bool:
        if now < self.drop_until and self.rng.random() < self.drop_fraction:
            self.dropped_notifications += 1
            return True
        return False

    def clear(self) -> None:
        self.refuse_until = self.http_until = self.latency_until = self.drop_until = 0.0

    def state(self, now: float) -> dict[str, Any]:
        return {"refusing": self.refusing(now),
                "http_errors": {"status": self.http_status, "fraction": self.http_fraction,
                                "active": now < self.http_until},
                "latency_ms": self.latency_ms if now < self.latency_until else 0,
                "drop_notifications": self.drop_fraction if now < self.drop_until else 0,
                "dropped_notifications": self.dropped_notifications}


@dataclass(slots=True)
class _Subscription:
    id: int
    kind: str  # logs | signature | slot | root
    commitment: str
    client: _Client
    mention: str | None = None  # logs: pubkey or None (all)
    signature: str | None = None


class _Client:
    """One websocket connection with an ordered outgoing queue."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()
        self.subscriptions: set[int] = set()

    async def writer(self) -> None:
        while (text := await self.queue.get()) is not None:
            if self.ws.closed:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self.ws.send_str(text)


class PubSub:
    """Subscriptions indexed for O(accounts in a transaction) fan-out."""

    def __init__(self, ledger: Ledger, faults: Faults) -> None:
        self.ledger = ledger
        self.faults = faults
        self.ids = 0
        self.subs: dict[int, _Subscription] = {}
        self.by_mention: dict[str, set[int]] = {}
        self.all_logs: set[int] = set()
        self.by_signature: dict[str, set[int]] = {}
        self.slot_subs: set[int] = set()
        self.root_subs: set[int] = set()
        self.notified_up_to = {"confirmed": ledger.slot_at("confirmed"),
                               "finalized": ledger.slot_at("finalized")}
        self.sent = 0

    def subscribe(self, client: _Client, method: str, params: list[Any]) -> int:
        config = params[1] if len(params) > 1 and isinstance(params[1], dict) else {}
        commitment = config.get("commitment", "finalized")
        if commitment not in ("processed", "confirmed", "finalized"):
            raise RpcFailure(-32602, "Invalid params: unknown commitment")
        self.ids += 1
        sub = _Subscription(self.ids, method, commitment, client)
        if method == "logsSubscribe":
            target = params[0] if params else None
            if target in ("all", "allWithVotes"):
                self.all_logs.add(sub.id)
            elif isinstance(target, dict) and isinstance(target.get("mentions"), list):
                mentions = target["mentions"]
                if len(mentions) != 1:
                    raise RpcFailure(-32602, "Invalid Request: Only 1 address supported")
                sub.mention = str(mentions[0])
                self.by_mention.setdefault(sub.mention, set()).add(sub.id)
            else:
                raise RpcFailure(-32602, "Invalid params: expected \"all\" or {\"mentions\": [...]}")
            sub.kind = "logs"
        elif method == "signatureSubscribe":
            if not params or not isinstance(params[0], str):
                raise RpcFailure(-32602, "Invalid params: signature")
            sub.kind, sub.signature = "signature", params[0]
            record = self.ledger.by_signature.get(params[0])
            self.by_signature.setdefault(params[0], set()).add(sub.id)
            if record is not None and self.ledger.visible(record, commitment):
                asyncio.get_running_loop().call_soon(self._signature_done, record, commitment)
        elif method == "slotSubscribe":
            sub.kind = "slot"
            self.slot_subs.add(sub.id)
        else:
            sub.kind = "root"
            self.root_subs.add(sub.id)
        self.subs[sub.id] = sub
        client.subscriptions.add(sub.id)
        return sub.id

    def unsubscribe(self, sub_id: Any) -> bool:
        sub = self.subs.pop(sub_id, None) if isinstance(sub_id, int) else None
        if sub is None:
            raise RpcFailure(-32602, "Invalid subscription id.")
        sub.client.subscriptions.discard(sub.id)
        if sub.mention is not None:
            self.by_mention.get(sub.mention, set()).discard(sub.id)
        for group in (self.all_logs, self.slot_subs, self.root_subs):
            group.discard(sub.id)
        if sub.signature is not None:
            self.by_signature.get(sub.signature, set()).discard(sub.id)
        return True

    def drop_client(self, client: _Client) -> None:
        for sub_id in list(client.subscriptions):
            with contextlib.suppress(RpcFailure):
                self.unsubscribe(sub_id)

    def _send(self, sub: _Subscription, method: str, result: Any) -> None:
        if method != "slotNotification" and self.faults.drop_notification(time.monotonic()):
            return
        message = {"jsonrpc": "2.0", "method": method,
                   "params": {"result": result, "subscription": sub.id}}
        sub.client.queue.put_nowait(orjson.dumps(message).decode())
        self.sent += 1

    def _logs(self, record: TxRecord, level: str) -> None:
        targets = set(self.all_logs)
        for key in record.account_keys:
            targets |= self.by_mention.get(key, set())
        value = encoding.logs_value(record)
        for sub_id in targets:
            sub = self.subs.get(sub_id)
            if sub is not None and sub.commitment == level:
                self._send(sub, "logsNotification", {"context": {"slot": record.slot}, "value": value})
        self._signature_done(record, level)

    def _signature_done(self, record: TxRecord, level: str) -> None:
        for sub_id in list(self.by_signature.get(record.signature, ())):
            sub = self.subs.get(sub_id)
            if sub is not None and sub.commitment == level:
                self._send(sub, "signatureNotification",
                           {"context": {"slot": record.slot}, "value": {"err": record.err}})
                self.unsubscribe(sub_id)  # signature subscriptions end after one notification

    def on_landed(self, record: TxRecord) -> None:
        self._logs(record, "processed")

    def on_tick(self, closed_slot: int) -> None:
        for sub_id in list(self.slot_subs):
            self._send(self.subs[sub_id], "slotNotification", {
                "parent": closed_slot, "root": self.ledger.slot_at("finalized"),
                "slot": self.ledger.slot})
        for level in ("confirmed", "finalized"):
            upto = self.ledger.slot_at(level)
            for slot in range(self.notified_up_to[level] + 1, upto + 1):
                block = self.ledger.block(slot)
                for record in block.transactions if block is not None else ():
                    self._logs(record, level)
                if level == "finalized":
                    for sub_id in list(self.root_subs):
                        self._send(self.subs[sub_id], "rootNotification", slot)
            self.notified_up_to[level] = max(self.notified_up_to[level], upto)


def _free_port_pair(host: str) -> int:
    for _ in range(100):
        with socket.socket() as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
        with socket.socket() as second:
            try:
                second.bind((host, port + 1))
            except OSError:
                continue
        return port
    raise OSError("no free pair of ports")


class Localnet:
    """``async with Localnet(LocalnetConfig(...)) as net``: a running local cluster."""

    def __init__(self, config: LocalnetConfig = LocalnetConfig()) -> None:
        self.config = config
        self.ledger = Ledger(finality_slots=config.finality_slots, confirm_slots=config.confirm_slots)
        self.faults = Faults(rng=random.Random(config.seed))
        self.methods = Methods(self.ledger)
        self.pubsub = PubSub(self.ledger, self.faults)
        self.ledger.listeners.append(self.pubsub.on_landed)
        self.clients: set[_Client] = set()
        self._runners: list[web.AppRunner] = []
        self._clock_task: asyncio.Task[None] | None = None
        self._slot_event = asyncio.Event()
        self.port = config.port

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.port + 1}"

    @property
    def admin_url(self) -> str:
        return f"{self.http_url}/admin"

    async def __aenter__(self) -> Localnet:
        if self.port == 0:
            self.port = _free_port_pair(self.config.host)
        http = web.Application(client_max_size=2**24)
        http.router.add_post("/admin/{action}", self._admin)
        http.router.add_get("/admin/state", self._admin_state)
        http.router.add_route("*", "/{tail:.*}", self._http)
        ws = web.Application()
        ws.router.add_get("/{tail:.*}", self._websocket)
        for app, port in ((http, self.port), (ws, self.port + 1)):
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
            await runner.setup()
            self._runners.append(runner)
            try:
                await web.TCPSite(runner, self.config.host, port, reuse_address=True).start()
            except OSError as exc:  # a port in use is the user's to fix: one clear line
                await self.__aexit__()
                raise ConfigError(f"the local cluster cannot listen on {self.config.host}:{port}: "
                                  f"{exc.strerror or exc} (choose another --port)") from exc
        self._clock_task = asyncio.create_task(self._clock(), name="localnet-clock")
        log.info("localnet_started", http=self.http_url, ws=self.ws_url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
        await self.drop_websockets()
        for runner in self._runners:
            await runner.cleanup()

    # -- slot clock ---------------------------------------------------------------------
    async def _clock(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.config.slot_ms / 1000
        next_tick = loop.time() + period
        while True:
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            next_tick += period
            closed = self.ledger.tick()
            self.pubsub.on_tick(closed.slot)
            self._slot_event.set()
            self._slot_event = asyncio.Event()

    async def wait_for_slot(self, slot: int, commitment: str = "processed") -> None:
        """Until the cluster reaches ``slot`` at ``commitment`` (callers bound the wait)."""
        while self.ledger.slot_at(commitment) < slot:
            await self._slot_event.wait()

    async def wait_for_signature(self, signature: str, commitment: str = "confirmed") -> None:
        while self.ledger.transaction(signature, commitment) is None:
            await self._slot_event.wait()

    # -- HTTP ---------------------------------------------------------------------------
    def _one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or request.get("jsonrpc") != "2.0" or \
                not isinstance(request.get("method"), str):
            return {"jsonrpc": "2.0", "error": INVALID_REQUEST,
                    "id": request.get("id") if isinstance(request, dict) else None}
        try:
            result = self.methods.call(request["method"], request.get("params"))
        except RpcFailure as failure:
            return {"jsonrpc": "2.0", "error": failure.to_dict(), "id": request.get("id")}
        return {"jsonrpc": "2.0", "result": result, "id": request.get("id")}

    async def _http(self, request: web.Request) -> web.StreamResponse:
        now = time.monotonic()
        if self.faults.refusing(now) and request.transport is not None:
            request.transport.abort()
            return web.Response(status=503)
        if request.method != "POST":
            return web.Response(status=405,
                                text="Used HTTP Method is not allowed. POST or OPTIONS is required")
        if (delay := self.faults.delay(now)) > 0:
            await asyncio.sleep(delay)
        status = self.faults.http_error(now)
        if status == 429:
            return web.Response(status=429, headers={"Retry-After": f"{self.faults.retry_after:g}"},
                                text="Too many requests for a specific RPC call")
        if status is not None:
            return web.Response(status=status, text="Internal error")
        if request.content_type not in ("application/json", ""):
            return web.Response(status=415, text="Supplied content type is not allowed. "
                                                 "Content-Type: application/json is required")
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _json({"jsonrpc": "2.0", "error": PARSE_ERROR, "id": None})
        if isinstance(body, list):
            if not body:
                return _json({"jsonrpc": "2.0", "error": INVALID_REQUEST, "id": None})
            return _json([self._one(item) for item in body])
        return _json(self._one(body))

    # -- websocket ----------------------------------------------------------------------
    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if self.faults.refusing(time.monotonic()) and request.transport is not None:
            request.transport.abort()
            return web.Response(status=503)
        ws = web.WebSocketResponse(heartbeat=None, autoping=True, max_msg_size=2**22)
        await ws.prepare(request)
        client = _Client(ws)
        self.clients.add(client)
        writer = asyncio.create_task(client.writer())
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                client.queue.put_nowait(orjson.dumps(self._ws_request(client, message.data)).decode())
        finally:
            self.clients.discard(client)
            self.pubsub.drop_client(client)
            client.queue.put_nowait(None)
            writer.cancel()
        return ws

    def _ws_request(self, client: _Client, text: str) -> dict[str, Any]:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError:
            return {"jsonrpc": "2.0", "error": PARSE_ERROR, "id": None}
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {"jsonrpc": "2.0", "error": INVALID_REQUEST, "id": None}
        method, params = request["method"], request.get("params") or []
        try:
            if method in ("logsSubscribe", "signatureSubscribe", "slotSubscribe", "rootSubscribe"):
                result: Any = self.pubsub.subscribe(client, method, params)
            elif method in ("logsUnsubscribe", "signatureUnsubscribe", "slotUnsubscribe",
                            "rootUnsubscribe"):
                result = self.pubsub.unsubscribe(params[0] if params else None)
            else:
                raise RpcFailure(-32601, "Method not found")
        except RpcFailure as failure:
            return {"jsonrpc": "2.0", "error": failure.to_dict(), "id": request.get("id")}
        return {"jsonrpc": "2.0", "result": result, "id": request.get("id")}

    # -- faults -------------------------------------------------------------------------
    async def drop_websockets(self) -> int:
        clients = list(self.clients)
        for client in clients:
            with contextlib.suppress(Exception):
                # Do not wait long for the peer's close frame: a dead peer never sends one.
                async with asyncio.timeout(1.0):
                    await client.ws.close(code=1001, message=b"dropped by fault injection")
        return len(clients)

    def fork(self, slot: int | None = None) -> dict[str, Any]:
        if slot is None:
            finalized = self.ledger.slot_at("finalized")
            candidates = [s for s, b in self.ledger.blocks.items()
                          if s > finalized and b.transactions and s not in self.ledger.dropped_slots]
            if not candidates:
                raise ValueError("no confirmed, unfinalized slot holds transactions")
            slot = max(candidates)
        return {"slot": slot, "signatures": self.ledger.drop_from(slot)}

    async def _admin(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        body = await request.json() if request.can_read_body else {}
        now = time.monotonic()
        faults = self.faults
        until = now + float(body.get("seconds", 3600))
        handlers: dict[str, Callable[[], Awaitable[Any] | Any]] = {
            "drop-websockets": self.drop_websockets,
            "refuse": lambda: setattr(faults, "refuse_until", until),
            "http-errors": lambda: _set(faults, http_status=int(body.get("status", 429)),
                                        http_fraction=float(body.get("fraction", 1.0)),
                                        retry_after=float(body.get("retry_after", 1)),
                                        http_until=until),
            "latency": lambda: _set(faults, latency_ms=float(body.get("ms", 100)), latency_until=until),
            "drop-notifications": lambda: _set(faults, drop_fraction=float(body.get("fraction", 1.0)),
                                               drop_until=until),
            "fork": lambda: self.fork(body.get("slot")),
            "clear": faults.clear,
        }
        handler = handlers.get(action)
        if handler is None:
            return web.json_response({"error": f"unknown admin action {action}"}, status=404)
        try:
            result = handler()
            if asyncio.iscoroutine(result):
                result = await result
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response({"ok": True, "result": result}, dumps=_dumps)

    async def _admin_state(self, request: web.Request) -> web.Response:
        return web.json_response({
            "faults": self.faults.state(time.monotonic()),
            "slots": {level: self.ledger.slot_at(level)
                      for level in ("processed", "confirmed", "finalized")},
            "transactions": len(self.ledger.by_signature), "websockets": len(self.clients),
            "subscriptions": len(self.pubsub.subs), "notifications_sent": self.pubsub.sent,
        }, dumps=_dumps)


def _set(target: Any, **values: Any) -> None:
    for name, value in values.items():
        setattr(target, name, value)


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _json(value: Any) -> web.Response:
    """What ``web.json_response`` answers, serialized once, straight to bytes."""
    return web.Response(body=orjson.dumps(value), content_type="application/json", charset="utf-8")
