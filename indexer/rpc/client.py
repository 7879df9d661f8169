"""The JSON-RPC client (aiohttp): batches, bounded concurrency, a request-rate limit,
retries with one classifier, fail-over across endpoints, secrets redacted.

Retry policy (tenacity, built once from ``indexer.errors.is_transient``): exponential
backoff with full jitter, at least the provider's Retry-After, until ``give_up_after``
seconds; then the last transient error is raised. On a transient failure the client
moves to the next endpoint (round robin); a permanent error never fails over. Inside a
batch, items answered with a transient error are retried alone; items answered with a
permanent error come back as that exception, in place, so one bad signature never
fails its neighbours.
"""

from __future__ import annotations

import asyncio
import itertools
import operator
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import structlog
from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_random_exponential,
)

from indexer.config import redact_url
from indexer.errors import IndexerError, RpcRateLimited, RpcUnavailable, TransientError, is_transient
from indexer.metrics import Metrics, observe_many
from indexer.retries import retried
from indexer.rpc import protocol
from indexer.rpc.protocol import Request, SignatureInfo, SignatureStatus

log = structlog.get_logger(__name__)
TOKEN_PROGRAMS = ("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA",
                  "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
_base_wait = wait_random_exponential(multiplier=0.1, max=5.0)
_METHOD = operator.attrgetter("method")


def _wait(state: RetryCallState) -> float:
    delay = float(_base_wait(state))
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RpcRateLimited) and exc.retry_after:
        delay = max(delay, exc.retry_after)
    return delay


class RpcClient:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        session: aiohttp.ClientSession | None = None,
        max_concurrency: int = 16,
        requests_per_second: float | None = None,
        timeout: float = 30.0,
        give_up_after: float = 60.0,
        batch_size: int = 100,
        encoding: str = "base64",
        commitment: str = "confirmed",
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not urls:
            raise ValueError("at least one RPC URL is needed")
        self.urls = tuple(urls)
        self._session = session
        self._owns_session = session is None
        self._semaphore = asyncio.Semaphore(max_concurrency)
        # The limit counts calls, not HTTP requests: providers charge every call of a batch
        # against it (Infura, Moralis and others say so), so a batch of 100 is 100
        # requests. A batch never holds more calls than one second's allowance (the
        # bucket's size); below one call a second, the bucket holds one.
        self._limiter: AsyncLimiter | None = None
        if requests_per_second:
            rate = float(requests_per_second)
            self._limiter = AsyncLimiter(rate, 1.0) if rate >= 1 else AsyncLimiter(1, 1.0 / rate)
            batch_size = max(1, min(batch_size, int(rate)))
        self.timeout = timeout
        self.give_up_after = give_up_after
        self.batch_size = batch_size
        self.encoding = encoding
        self.commitment = commitment
        self.metrics = metrics
        self.sleep = sleep
        self._current = 0
        self._ids = itertools.count(1)
        self.max_concurrency = max_concurrency

    async def __aenter__(self) -> RpcClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_concurrency * 2),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                headers={"Content-Type": "application/json"},
            )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
            self._session = None

    # -- transport ------------------------------------------------------------------------
    def _count(self, method: str, outcome: str, seconds: float | None = None, times: int = 1) -> None:
        """``times`` calls of ``method`` ended in ``outcome``, each taking ``seconds``."""
        if self.metrics is None:
            return
        self.metrics.child(self.metrics.rpc_requests, method, outcome).inc(times)
        if seconds is not None:
            observe_many(self.metrics.child(self.metrics.rpc_latency, method), seconds, times)

    async def _exchange(self, requests: Sequence[Request]) -> list[Any]:
        """One HTTP POST to the current endpoint; results or exceptions, in order."""
        assert self._session is not None, "use `async with RpcClient(...)`"
        url = self.urls[self._current % len(self.urls)]
        method = requests[0].method if len(requests) == 1 else f"batch:{requests[0].method}"
        started = time.monotonic()
        async with self._semaphore:
            if self._limiter is not None:
                await self._limiter.acquire(len(requests))
            try:
                async with self._session.post(url, data=protocol.encode(requests)) as response:
                    failure = protocol.classify_http(
                        response.status, response.headers.get("Retry-After"), method)
                    if failure is not None:
                        raise failure
                    body = await response.read()
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                raise RpcUnavailable(
                    f"{method}: {type(exc).__name__} talking to {redact_url(url)}") from None
        results = protocol.decode(body, requests)
        elapsed = time.monotonic() - started
        # Calls by method, then those that failed moved to their outcome: most batches
        # hold one method and no failure.
        outcomes = Counter((name, "ok") for name in map(_METHOD, requests))
        for request, result in zip(requests, results, strict=True):
            if isinstance(result, Exception):
                outcomes[(request.method, "ok")] -= 1
                outcomes[(request.method, type(result).__name__)] += 1
        for (name, outcome), times in outcomes.items():
            if times:
                self._count(name, outcome, elapsed, times)
        return results

    def _fail_over(self, exc: BaseException) -> None:
        if len(self.urls) > 1:
            failed = redact_url(self.urls[self._current % len(self.urls)])
            self._current += 1
            log.warning("rpc_failover", from_endpoint=failed,
                        to_endpoint=redact_url(self.urls[self._current % len(self.urls)]),
                        error=str(exc))

    async def _attempt(self, requests: Sequence[Request], results: list[Any], pending: list[int],
                       number: int) -> list[int]:
        """One exchange of the ``pending`` requests, their answers put in ``results``; those
        answered with a transient error stay pending (returned). A transient failure of the
        whole exchange is counted, fails over and is raised."""
        try:
            answers = await self._exchange([requests[i] for i in pending])
        except TransientError as exc:
            for request in (requests[i] for i in pending):
                self._count(request.method, type(exc).__name__)
            self._fail_over(exc)
            log.info("rpc_retry", method=requests[pending[0]].method, error=str(exc), attempt=number)
            raise
        still: list[int] = []
        for index, answer in zip(pending, answers, strict=True):
            results[index] = answer
            if isinstance(answer, TransientError):
                still.append(index)
        return still

    async def _call_batch(self, requests: Sequence[Request]) -> list[Any]:
        """Results for ``requests``, transient failures retried (whole or per item); the
        policy's loop is entered only after a first failure (``indexer.retries``)."""
        results: list[Any] = [None] * len(requests)
        pending = list(range(len(requests)))
        attempts = 0

        async def attempt() -> list[Any]:
            nonlocal pending, attempts
            attempts += 1
            pending = await self._attempt(requests, results, pending, attempts)
            if pending:
                raise results[pending[0]]
            return results

        def policy(left: float | None) -> AsyncRetrying:
            return AsyncRetrying(retry=retry_if_exception(is_transient), wait=_wait,
                                 stop=stop_after_delay(left or 0.0),  # never None: a client has a deadline
                                 sleep=self.sleep, reraise=True)

        return await retried(attempt, policy, give_up_after=self.give_up_after)

    async def call(self, method: str, params: list[Any]) -> Any:
        (result,) = await self._call_batch([Request(method, params, next(self._ids))])
        if isinstance(result, IndexerError):
            raise result
        return result

    async def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results or exceptions, in order; chunks of ``batch_size`` run concurrently."""
        requests = [Request(method, params, next(self._ids)) for method, params in calls]
        chunks = [requests[i:i + self.batch_size] for i in range(0, len(requests), self.batch_size)]

        async def run(chunk: list[Request]) -> list[Any]:
            try:
                return await self._call_batch(chunk)
            except IndexerError as exc:
                return [exc] * len(chunk)

        answers = await asyncio.gather(*(run(chunk) for chunk in chunks))
        return [result for chunk in answers for result in chunk]

    # -- methods --------------------------------------------------------------------------
    def _tx_config(self, encoding: str | None, commitment: str | None) -> dict[str, Any]:
        """getTransaction's configuration object (shared by a batch's calls: only read)."""
        return {"encoding": encoding or self.encoding, "commitment": commitment or self.commitment,
                "maxSupportedTransactionVersion": 0}

    async def get_transaction(self, signature: str, *, encoding: str | None = None,
                              commitment: str | None = None) -> dict[str, Any] | None:
        result = await self.call("getTransaction", [signature, self._tx_config(encoding, commitment)])
        return result if isinstance(result, dict) else None

    async def get_transactions(self, signatures: Sequence[str], *, encoding: str | None = None,
                               commitment: str | None = None) -> list[dict[str, Any] | Exception | None]:
        """getTransaction results in order: a result object, None (unknown) or an exception."""
        config = self._tx_config(encoding, commitment)
        answers = await self.batch([("getTransaction", [s, config]) for s in signatures])
        return [a if a is None or isinstance(a, (dict, Exception))
                else RpcUnavailable("getTransaction: result is not an object") for a in answers]

    async def get_signatures_for_address(
        self, address: str, *, before: str | None = None, until: str | None = None,
        limit: int = 1000, commitment: str | None = None,
    ) -> list[SignatureInfo]:
        config: dict[str, Any] = {"limit": limit, "commitment": commitment or self.commitment}
        if before:
            config["before"] = before
        if until:
            config["until"] = until
        return protocol.parse_signature_infos(
            await self.call("getSignaturesForAddress", [address, config]))

    async def iter_signatures(self, address: str, *, until: str | None = None,
                              before: str | None = None, limit: int = 1000
                              ) -> AsyncIterator[list[SignatureInfo]]:
        """Pages newest → oldest, ``before``/``until`` exclusive, until the history ends."""
        while True:
            page = await self.get_signatures_for_address(address, before=before, until=until,
                                                         limit=limit)
            if not page:
                return
            yield page
            if len(page) < limit:
                return
            before = page[-1].signature

    async def get_signature_statuses(self, signatures: Sequence[str]
                                     ) -> list[SignatureStatus | None]:
        """Statuses in order; chunks of 256 (the node's limit), history searched."""
        calls = [("getSignatureStatuses", [list(signatures[i:i + 256]),
                                           {"searchTransactionHistory": True}])
                 for i in range(0, len(signatures), 256)]
        statuses: list[SignatureStatus | None] = []
        for result in await self.batch(calls):
            if isinstance(result, Exception):
                raise result
            statuses.extend(protocol.parse_signature_statuses(result))
        return statuses

    async def get_token_accounts_by_owner(self, owners: Sequence[str]) -> dict[str, set[str]]:
        """Every SPL Token and Token-2022 account of each owner (batched)."""
        calls = [("getTokenAccountsByOwner", [owner, {"programId": program},
                                              {"encoding": "base64", "commitment": self.commitment}])
                 for owner in owners for program in TOKEN_PROGRAMS]
        found: dict[str, set[str]] = {owner: set() for owner in owners}
        for (_, params), result in zip(calls, await self.batch(calls), strict=True):
            if isinstance(result, Exception):
                raise result
            value = result.get("value") if isinstance(result, dict) else None
            if not isinstance(value, list):
                raise RpcUnavailable("getTokenAccountsByOwner: malformed result")
            found[str(params[0])].update(str(entry["pubkey"]) for entry in value if "pubkey" in entry)
        return found

    async def get_blocks_with_limit(self, start_slot: int, limit: int) -> list[int]:
        """Slots holding a block from ``start_slot`` on, at most ``limit`` (confirmed at least)."""
        return protocol.parse_block_slots(await self.call(
            "getBlocksWithLimit", [start_slot, limit, {"commitment": self.commitment}]))

    async def get_block_time(self, slot: int) -> int | None:
        """The Unix time of the block at ``slot`` (None: stored without one)."""
        return protocol.parse_block_time(await self.call("getBlockTime", [slot]))

    async def get_block_signatures(self, slot: int) -> list[str]:
        """The signatures of the block at ``slot``, in the block's order."""
        return protocol.parse_block_signatures(await self.call("getBlock", [slot, {
            "transactionDetails": "signatures", "rewards": False, "maxSupportedTransactionVersion": 0,
            "commitment": self.commitment}]))

    async def get_slot(self, commitment: str = "confirmed") -> int:
        return int(await self.call("getSlot", [{"commitment": commitment}]))
