"""Solana JSON-RPC, sans I/O: request bodies in, results or classified errors out.

Every error a node or a provider can answer is translated here, once, into the
indexer's exception tree, so the retry policy (``indexer.errors.is_transient``) sees
one vocabulary. Codes and their meaning, with where we saw each (../shared/fixtures/errors):

==========  =============================================  =========================
code        meaning                                        class
==========  =============================================  =========================
-32700      parse error (our request was not JSON)         permanent (RpcError)
-32600      invalid request                                permanent
-32601      method not found                               permanent
-32602      invalid params                                 permanent
-32603      internal error                                 transient (RpcUnavailable)
-32002      transaction simulation / preflight failed      permanent
-32004      block not available for slot (yet)             transient
-32005      node unhealthy / behind by N slots             transient
-32007      slot skipped or missing (snapshot jump)        permanent
-32009      slot missing in long-term storage              permanent
-32014      block status not yet available                 transient
-32015      transaction version not supported              permanent
-32016      minimum context slot not reached               transient
HTTP 429    rate limited (Retry-After honoured)            transient (RpcRateLimited)
HTTP 5xx    provider or node failure                       transient
HTTP 408    request timeout                                transient
HTTP 401/3  bad or missing API key                         permanent
==========  =============================================  =========================

A body that is not a JSON-RPC answer (an HTML error page from a proxy, a truncated
read) is transient: the next try, or the next endpoint, usually answers properly.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from indexer.errors import IndexerError, RpcError, RpcRateLimited, RpcUnavailable
from indexer.records import quick_init

TRANSIENT_CODES = frozenset({-32603, -32004, -32005, -32014, -32016})
RATE_LIMIT_CODES = frozenset({429, -32429})


@quick_init  # one per getTransaction: see indexer.records
@dataclass(frozen=True, slots=True)
class Request:
    method: str
    params: list[Any]
    id: int

    def to_dict(self) -> dict[str, Any]:
        return {"jsonrpc": "2.0", "id": self.id, "method": self.method, "params": self.params}


@quick_init  # a page holds 1,000: see indexer.records
@dataclass(frozen=True, slots=True)
class SignatureInfo:
    """One entry of getSignaturesForAddress."""

    signature: str
    slot: int
    err: Any
    memo: str | None
    block_time: int | None
    confirmation_status: str | None


@dataclass(frozen=True, slots=True)
class SignatureStatus:
    """One entry of getSignatureStatuses (None entries mean "unknown")."""

    slot: int
    confirmations: int | None
    err: Any
    confirmation_status: str | None


def encode(requests: Sequence[Request]) -> bytes:
    """One request as an object, several as a JSON-RPC batch array."""
    if len(requests) == 1:
        return orjson.dumps(requests[0].to_dict())
    return orjson.dumps([r.to_dict() for r in requests])


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def classify_http(status: int, retry_after: str | None, method: str) -> IndexerError | None:
    """The error for a non-200 HTTP answer, or None when the body should be read."""
    if status == 200:
        return None
    if status == 429:
        return RpcRateLimited(f"{method}: HTTP 429 rate limited", retry_after_seconds(retry_after))
    if status >= 500 or status == 408:
        return RpcUnavailable(f"{method}: HTTP {status}")
    if status in (401, 403):
        return RpcError(status, "endpoint refused the credentials (check the API key)", method)
    return RpcError(status, f"HTTP {status}", method)


def error_from(obj: Mapping[str, Any], method: str) -> IndexerError:
    """The exception for a JSON-RPC error object."""
    code = obj.get("code")
    message = str(obj.get("message", ""))[:300]
    if not isinstance(code, int):
        return RpcUnavailable(f"{method}: malformed error object")
    if code in RATE_LIMIT_CODES:
        return RpcRateLimited(f"{method}: {message}")
    if code in TRANSIENT_CODES:
        return RpcUnavailable(f"{method} failed with {code}: {message}")
    return RpcError(code, message, method, obj.get("data"))


def decode(body: bytes, requests: Sequence[Request]) -> list[Any]:
    """Results (or exceptions) in the order of ``requests``, matched by id."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RpcUnavailable("answer is not JSON (a proxy error page?)") from None
    answers = parsed if isinstance(parsed, list) else [parsed]
    by_id: dict[Any, Mapping[str, Any]] = {}
    for answer in answers:
        if not isinstance(answer, dict):
            raise RpcUnavailable("answer is not a JSON-RPC object")
        if answer.get("id") is None and "error" in answer and len(requests) == 1:
            raise error_from(answer["error"], requests[0].method)
        by_id[answer.get("id")] = answer
    results: list[Any] = []
    for request in requests:
        answer = by_id.get(request.id)
        if answer is None:
            results.append(RpcUnavailable(f"{request.method}: no answer for request id {request.id}"))
        elif isinstance(answer.get("error"), dict):
            results.append(error_from(answer["error"], request.method))
        elif "result" in answer:
            results.append(answer["result"])
        else:
            results.append(RpcUnavailable(f"{request.method}: answer has neither result nor error"))
    return results


def parse_signature_infos(result: Any) -> list[SignatureInfo]:
    if not isinstance(result, list):
        raise RpcUnavailable("getSignaturesForAddress: result is not a list")
    infos = []
    for entry in result:
        try:
            infos.append(SignatureInfo(  # positional: a page is 1,000 of them
                str(entry["signature"]), int(entry["slot"]), entry.get("err"), entry.get("memo"),
                entry.get("blockTime"), entry.get("confirmationStatus")))
        except (KeyError, TypeError, ValueError):
            raise RpcUnavailable("getSignaturesForAddress: malformed entry") from None
    return infos


def parse_signature_statuses(result: Any) -> list[SignatureStatus | None]:
    value = result.get("value") if isinstance(result, dict) else None
    if not isinstance(value, list):
        raise RpcUnavailable("getSignatureStatuses: malformed result")
    statuses: list[SignatureStatus | None] = []
    for entry in value:
        if entry is None:
            statuses.append(None)
            continue
        try:
            statuses.append(SignatureStatus(
                slot=int(entry["slot"]), confirmations=entry.get("confirmations"),
                err=entry.get("err"), confirmation_status=entry.get("confirmationStatus")))
        except (KeyError, TypeError, ValueError):
            raise RpcUnavailable("getSignatureStatuses: malformed entry") from None
    return statuses


def parse_block_slots(result: Any) -> list[int]:
    """getBlocksWithLimit's answer: slots, ascending."""
    if not isinstance(result, list) or not all(type(slot) is int and slot >= 0 for slot in result):
        raise RpcUnavailable("getBlocksWithLimit: result is not a list of slots")
    return result


def parse_block_time(result: Any) -> int | None:
    """getBlockTime's answer: the block's Unix time in seconds; None for a block stored
    without one (null)."""
    if result is None:
        return None
    if type(result) is not int:
        raise RpcUnavailable("getBlockTime: result is not a Unix time")
    return result


def parse_block_signatures(result: Any) -> list[str]:
    """getBlock's answer with ``transactionDetails: signatures``: the block's signatures, in
    the block's order."""
    signatures = result.get("signatures") if isinstance(result, dict) else None
    if not isinstance(signatures, list) or not all(isinstance(s, str) for s in signatures):
        raise RpcUnavailable("getBlock: result has no list of signatures")
    return signatures
