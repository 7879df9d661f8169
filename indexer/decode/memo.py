"""The AMOCA memo protocol v1 (DESIGN section 3), parsed by a total function.

Grammar::

    amoca:1:<type>[;<key>=<value>]*
    type := funding | payment | refund | subscription

Decisions the design leaves open, written down here:

* Keys belong to types: ``task`` to payment and refund, ``refund_of`` to refund,
  ``period`` to subscription. A key on a type it does not belong to is an unknown key
  for that type and, like every unknown key, ignored (listed in ``Memo.ignored_keys``).
* Required keys: payment needs ``task`` (a payment not tied to a task is a funding);
  refund needs ``task`` (the task it refunds) while ``refund_of`` (the payment's
  signature) is optional; subscription needs ``period``. Missing -> ``missing_key``.
* "Lower-case" covers the prefix, the type, the keys and the task UUID. The
  ``refund_of`` value is base58, where case is significant, so it is exempt. A memo
  that would be valid once lower-cased is ``not_lowercase``.
* ``task`` is a canonical lower-case UUID (8-4-4-4-12 hex); ``refund_of`` is base58
  decoding to exactly 64 bytes; ``period`` is ``YYYY-MM`` with month 01..12.
* Empty fields (``amoca:1:payment;;task=...``, a trailing ``;``) and keys outside
  ``[a-z0-9_]`` are ``malformed``. Any key appearing twice, known or not, is
  ``duplicate_key``.
* The 256-byte limit is on the UTF-8 bytes; it is checked before anything else, so an
  oversized memo is ``too_long`` whatever it holds.

:func:`parse_memo` never raises. It answers a :class:`Memo` or a
:class:`MemoRejection` whose ``reason`` is one of ``MEMO_REJECTION_REASONS``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from uuid import UUID

from indexer.decode.base58 import is_signature
from indexer.decode.models import Memo, MemoRejection, TransactionType

PREFIX = "amoca:"
PROTOCOL_VERSION = 1
MAX_MEMO_BYTES = 256
MEMO_TYPES: tuple[TransactionType, ...] = ("funding", "payment", "refund", "subscription")
KEYS_BY_TYPE: dict[str, frozenset[str]] = {
    "funding": frozenset(),
    "payment": frozenset({"task"}),
    "refund": frozenset({"task", "refund_of"}),
    "subscription": frozenset({"period"}),
}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "funding": (),
    "payment": ("task",),
    "refund": ("task",),
    "subscription": ("period",),
}

MEMO_REJECTION_REASONS = (
    "not_amoca",  # no "amoca:" prefix: some other memo (e.g. a wallet's "transfer")
    "too_long",  # more than 256 bytes
    "not_utf8",  # bytes that are not UTF-8
    "not_lowercase",  # prefix, type, key or task UUID with upper-case letters
    "unknown_version",  # "amoca:<v>:" with v other than 1
    "unknown_type",  # a type outside funding|payment|refund|subscription
    "malformed",  # structure broken: missing ':', empty field, key without '=', bad key
    "bad_task_id",  # task is not a UUID
    "bad_signature",  # refund_of is not a base58 64-byte signature
    "bad_period",  # period is not YYYY-MM with month 01..12
    "duplicate_key",  # a key given twice
    "missing_key",  # a key the type requires is absent
    "multiple_memos",  # several different AMOCA memos in one transaction
    "unknown_task",  # the task is not known to the marketplace (decode with task_owner)
    "task_agent_mismatch",  # the task belongs to another agent (decode with task_owner)
)

_KEY = re.compile(r"[a-z0-9_]+")
_KNOWN_KEYS = frozenset({"task", "refund_of", "period"})
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
_VERSION_TEXT = str(PROTOCOL_VERSION)


def parse_memo(data: bytes | bytearray | memoryview | str) -> Memo | MemoRejection:
    """Parse one memo instruction's data. Total: never raises, for any input."""
    if type(data) is bytes:  # the usual case (json/base64 data): no copy
        raw = data
    elif isinstance(data, str):
        try:
            raw = data.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: not representable as UTF-8
            return MemoRejection("not_utf8", "text is not encodable as UTF-8", None)
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
    else:
        return MemoRejection("malformed", f"memo data of type {type(data).__name__}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        shown = raw.decode("utf-8", "replace")
        if len(raw) > MAX_MEMO_BYTES:
            return MemoRejection("too_long", f"{len(raw)} bytes > {MAX_MEMO_BYTES}", shown)
        return MemoRejection("not_utf8", "memo bytes are not UTF-8", shown)
    if len(raw) > MAX_MEMO_BYTES:
        return MemoRejection("too_long", f"{len(raw)} bytes > {MAX_MEMO_BYTES}", text)
    return _parse_text(text)


# Memos repeat: every payment of a task carries the same text, and funding and
# subscription memos have a handful of forms. The parse is pure and its results are
# frozen, so a repeated text costs one dict lookup instead of a parse (a UUID, a base58
# signature): 7-9 us of a 26 us decode on the workload's transfers. Bounded: 4,096 texts
# of at most MAX_MEMO_BYTES each.
@functools.lru_cache(maxsize=4096)
def _parse_text(text: str) -> Memo | MemoRejection:
    if not text.startswith(PREFIX):
        if text[: len(PREFIX)].lower() == PREFIX:
            return MemoRejection("not_lowercase", "prefix must be 'amoca:'", text)
        return MemoRejection("not_amoca", "", text)
    version, colon, body = text[len(PREFIX) :].partition(":")
    if not colon or not version:
        return MemoRejection("malformed", "expected amoca:<version>:<type>", text)
    if version != _VERSION_TEXT:
        return MemoRejection("unknown_version", f"version {version[:16]!r}", text)
    fields = body.split(";")
    memo_type = fields[0]
    if memo_type not in KEYS_BY_TYPE:
        if memo_type.lower() in KEYS_BY_TYPE:
            return MemoRejection("not_lowercase", f"type {memo_type!r}", text)
        if not memo_type:
            return MemoRejection("malformed", "empty type", text)
        return MemoRejection("unknown_type", f"type {memo_type[:32]!r}", text)
    allowed = KEYS_BY_TYPE[memo_type]
    values: dict[str, str] = {}
    ignored: list[str] = []
    seen: set[str] = set()
    for index, field in enumerate(fields[1:], start=1):
        key, equals, value = field.partition("=")
        if not equals or not key:
            return MemoRejection("malformed", f"field {index} is not key=value", text)
        if key not in _KNOWN_KEYS and _KEY.fullmatch(key) is None:
            if _KEY.fullmatch(key.lower()) is not None:
                return MemoRejection("not_lowercase", f"key {key!r}", text)
            return MemoRejection("malformed", f"field {index}: bad key", text)
        if key in seen:
            return MemoRejection("duplicate_key", f"key {key!r}", text)
        seen.add(key)
        if key in allowed:
            values[key] = value
        else:
            ignored.append(key)
    for key in REQUIRED_KEYS[memo_type]:
        if key not in values:
            return MemoRejection("missing_key", f"{memo_type} requires {key}", text)
    task_id: UUID | None = None
    refund_of: str | None = None
    period: str | None = None
    if "task" in values:
        task = values["task"]
        if _UUID.fullmatch(task) is None:
            if _UUID.fullmatch(task.lower()) is not None:
                return MemoRejection("not_lowercase", "task UUID", text)
            return MemoRejection("bad_task_id", "task is not a canonical UUID", text)
        task_id = UUID(task)
    if "refund_of" in values:
        refund_of = values["refund_of"]
        if not is_signature(refund_of):
            return MemoRejection("bad_signature", "refund_of is not a base58 signature", text)
    if "period" in values:
        period = values["period"]
        if _PERIOD.fullmatch(period) is None:
            return MemoRejection("bad_period", "period is not YYYY-MM", text)
    # Positional (type, text, task_id, refund_of, period, version, ignored_keys): hot path.
    return Memo(
        memo_type,  # type: ignore[arg-type]  # checked against KEYS_BY_TYPE above
        text,
        task_id,
        refund_of,
        period,
        PROTOCOL_VERSION,
        tuple(ignored),
    )


def format_memo(
    memo_type: TransactionType,
    *,
    task_id: UUID | None = None,
    refund_of: str | None = None,
    period: str | None = None,
) -> str:
    """The canonical memo text for a marketplace transfer (for clients and the workload).

    Raises ``ValueError`` when the result would not parse as a valid memo: a builder
    must not emit what the indexer would reject.
    """
    text = Memo(memo_type, "", task_id=task_id, refund_of=refund_of, period=period).to_text()
    parsed = parse_memo(text)
    if isinstance(parsed, MemoRejection):
        raise ValueError(f"invalid memo: {parsed.reason} ({parsed.detail})")
    if parsed.ignored_keys:
        raise ValueError(f"keys {parsed.ignored_keys} do not belong to {memo_type}")
    return text


def select_memo(memos: Sequence[bytes | str]) -> tuple[str | None, Memo | MemoRejection | None]:
    """Choose the transaction's memo among its memo instructions (execution order).

    Non-AMOCA memos are ignored when an AMOCA one is present (wallets add their own).
    Several AMOCA memos with the same text count as one; different ones make the
    transaction ``multiple_memos``. With no AMOCA memo, the first memo is reported as
    ``not_amoca``. Answers (memo text for display, parse result); (None, None) when
    the transaction has no memo at all.
    """
    if not memos:
        return None, None
    if len(memos) == 1:  # the usual case
        only = parse_memo(memos[0])
        return only.text, only
    parsed = [parse_memo(data) for data in memos]
    candidates = [
        result
        for result in parsed
        if not (isinstance(result, MemoRejection) and result.reason == "not_amoca")
    ]
    if not candidates:
        return parsed[0].text, parsed[0]
    first = candidates[0]
    if any(other.text != first.text for other in candidates[1:]):
        return first.text, MemoRejection(
            "multiple_memos", f"{len(candidates)} different AMOCA memos", first.text
        )
    return first.text, first
